#!/usr/bin/env bash
# Regenerates reports/mulan/: every built-in method that reads features on the eleven MULAN benchmarks and
# Reuters-21578 (the `mulan` suite: small preset, seeds 0-2; seq2set starts from the seq2seq cell's model),
# then the comparison across the twelve datasets. Run it from the repository root; the store is ./mlflow.db.
# Cells already in the store are skipped, so the script resumes where it stopped; `--workers N` runs N cells
# at a time (one torch thread each). Cost on this project's 2-core machine: about 2 CPU hours for the linear
# and classic methods (ML-kNN on delicious and mediamill is most of it) and many more for the neural ones.
# METHODS="br pcc mlknn rakel lp" runs those methods of the suite only (the committed report's rows so far).
set -euo pipefail
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MLBENCH_TORCH_THREADS="${MLBENCH_TORCH_THREADS:-1}"
export MLBENCH_LINEAR_THREADS="${MLBENCH_LINEAR_THREADS:-1}"
WORKERS="${WORKERS:-1}"
METHODS="${METHODS:-}"

mlbench data fetch mulan
mlbench data fetch reuters
# the omikuji plugin joins the linear methods where it is installed (pip install -e examples/mlbench-omikuji)
# shellcheck disable=SC2086
mlbench bench mulan ${METHODS:+--methods $METHODS} --workers "$WORKERS" -q
if mlbench list 2>/dev/null | grep -q '^  omikuji'; then
    mlbench bench mulan --methods omikuji --workers "$WORKERS" -q
fi

# reports/mulan/published.json (Bogatinovski et al. 2022's figures, from benchmarks/published_figures.py) is
# committed evidence beside the runs: the export keeps it, and the page sets the rows beside it.
TASKS=emotions,scene,yeast,genbase,medical,enron,corel5k,bibtex,delicious,tmc2007,mediamill,reuters
# the methods with their defaults (a seq2set cell starts from its seq2seq cell), the rows the suite runs
mlbench report --tasks "$TASKS" --config default --out reports/mulan \
    --command-note "${METHODS:+METHODS=\"$METHODS\" }bash benchmarks/mulan_report.sh"
mlbench report --overview reports
