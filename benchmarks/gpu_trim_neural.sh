#!/usr/bin/env bash
# The neural trim series of reports/reuters (Figure 1: Seq2Seq, Seq2Set and XML-CNN with the
# reuters-trim-neural suite, k = 0, 5, 10, 20, 30, seeds 0-2) on a GPU machine that has no network and no
# mlbench install, then merged into the committed report here. The same cells run anywhere with
# `bash benchmarks/reuters_report.sh` (about 10 CPU hours); on one H200 they took 160 s.
#
#   bash benchmarks/gpu_trim_neural.sh prepare        # here: wheels, the mlbench wheel, the converted corpus
#   bash benchmarks/gpu_trim_neural.sh run            # there, from the repository root (writes $OUT/stores.tgz)
#   bash benchmarks/gpu_trim_neural.sh merge FILE.tgz # here: unpack, tag the commit, merge into reports/reuters
#
# `prepare` fills ./.whl (git-ignored): the wheels the GPU image lacks (MLflow's client and its store,
# Optuna, Dask, for CPython 3.12), mlbench itself built from the current commit (its methods live under
# mlbench.methods only once installed), the converted Reuters split, and that commit's hash. `run` is one
# `mlbench bench` command: the 45 cells on $WORKERS (default 18) Dask workers sharing the GPU, one store,
# each Seq2Set cell a task depending on its Seq2Seq cell; it packs the store without model files. (The
# earlier recipe started 18 bench processes, each with a store of its own, and merged the stores: 160 s for
# the 45 cells on one H200; the one-command run has not been timed on a GPU yet.) A run there cannot see the
# git checkout, so `merge` sets its `mlbench.git_commit` tag to the commit the wheel was built from (the code
# digest of every run is checked against this checkout's first).
set -euo pipefail
WHL=.whl
SUITE=benchmarks/suites/reuters-trim-neural.yaml
MB='import sys; from mlbench.cli.main import main; sys.argv[0] = "mlbench"; sys.exit(main())'

prepare() {
    [ -z "$(git status --porcelain --untracked-files=no)" ] || { echo "commit first: the wheel is built from HEAD" >&2; exit 1; }
    mkdir -p $WHL/data/reuters
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d $WHL \
        mlflow-skinny==3.17.2 alembic==1.20.1 SQLAlchemy==2.1.9 Mako==1.4.3 optuna==5.1.0 colorlog==6.12.0 \
        databricks-sdk==0.167.0 google-auth==2.63.0 pyasn1==0.6.5 pyasn1_modules==0.4.2 \
        opentelemetry-api==1.45.2 opentelemetry-proto==1.45.2 opentelemetry-sdk==1.45.2 \
        opentelemetry-semantic-conventions==0.66b2 sqlparse==0.6.1 GitPython==3.2.1 gitdb==4.0.12 smmap==5.0.3 \
        cachetools==7.3.3 importlib_metadata==9.1.0 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 \
        typing-inspection==0.4.5 python-dotenv==1.2.4 fastapi==0.165.0 starlette==1.10.0 uvicorn==0.55.0 \
        typing_extensions==4.16.0 cryptography==50.0.2 cffi==2.1.1 pycparser==3.12 \
        dask==2026.8.0 distributed==2026.8.0 cloudpickle toolz partd locket fsspec tornado msgpack psutil \
        sortedcontainers tblib zict click
    python3 -m pip wheel -q --no-deps --no-build-isolation -w $WHL .
    local reuters
    reuters=$(python3 -c "from mlbench.data.reuters import load_reuters, reuters_dir; load_reuters(); print(reuters_dir())")
    cp "$reuters"/modapte-approx-v1.json.gz* $WHL/data/reuters/
    git rev-parse HEAD > $WHL/COMMIT
    du -sh $WHL
}

run() {
    local t0 deadline st
    t0=$(date +%s); deadline=${DEADLINE:-540}; st=${ST:-/tmp/st}
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $WHL/*.whl
    # -P: the repository root must not shadow the installed package (its methods/ folder is mapped at install)
    export PYTHONPATH=/tmp/site OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 MLBENCH_DATA=$PWD/$WHL/data PYTHONUNBUFFERED=1
    mkdir -p $st/logs && cp $WHL/COMMIT $st/
    { date -u; uptime; nvidia-smi; python3 -c "import sys, torch; print(sys.version, torch.__version__, torch.cuda.get_device_name(0))"; } > $st/device.txt 2>&1
    python3 -P -c "$MB" list > $st/logs/list.txt 2>&1 || { cat $st/logs/list.txt; exit 4; }
    timeout -s INT $(( deadline - ($(date +%s) - t0) )) python3 -P -c "$MB" bench $SUITE \
        --methods seq2seq seq2set xml-cnn --tasks reuters reuters-trim5 reuters-trim10 reuters-trim20 reuters-trim30 \
        --seeds 0 1 2 --device cuda --workers ${WORKERS:-18} -q --tracking-uri sqlite:///$st/mlflow.db \
        --artifact-dir $st/art --log-dir $st/logs > $st/bench.log 2>&1 || true
    echo "elapsed $(( $(date +%s) - t0 )) s"; grep -h "^\[\| run, " $st/bench.log
    tar -C $st --exclude='*/model/*' -czf "$OUT/stores.tgz" .
}

merge() {
    local tgz=$1 dir=${STORES:-/tmp/st}
    mkdir -p $dir && tar -C $dir -xzf "$tgz"  # the stores name their artifacts under /tmp/st: unpack there
    python3 - "$dir" <<'EOF'
import glob, sys
from pathlib import Path
from mlflow.tracking import MlflowClient
from mlbench.runs.identity import code_digest
from mlbench.registry import get_method

folder = Path(sys.argv[1]); commit = (folder / "COMMIT").read_text().strip(); n = 0
for db in sorted(glob.glob(str(folder / "*.db"))):
    client = MlflowClient(f"sqlite:///{db}")
    for exp in client.search_experiments():
        for r in client.search_runs([exp.experiment_id], filter_string="attributes.status = 'FINISHED'"):
            tags = r.data.tags
            here = code_digest(get_method(tags["mlbench.method"]).__module__)
            if tags["mlbench.code_digest"] != here:
                sys.exit(f"{db}: run {r.info.run_id} has code digest {tags['mlbench.code_digest']}, this checkout {here}")
            if tags.get("mlbench.git_commit") == "unknown":
                client.set_tag(r.info.run_id, "mlbench.git_commit", commit); n += 1
print(f"{n} runs tagged with commit {commit}")
EOF
    mlbench report --task reuters --out reports/reuters --merge reports/reuters --tracking-uri "sqlite:///$dir/mlflow.db" \
        --command-note "bash benchmarks/reuters_report.sh" > /dev/null
    echo "merged the GPU store into reports/reuters"
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    merge) merge "${2:?the stores.tgz that run wrote}" ;;
    *) echo "usage: $0 prepare | run | merge FILE.tgz" >&2; exit 2 ;;
esac
