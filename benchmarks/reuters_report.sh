#!/usr/bin/env bash
# Regenerates reports/reuters/ from scratch: the runs behind the committed report, then the report.
# Run it from the repository root; the store is ./mlflow.db (+ ./mlartifacts). Cells already in the
# store are skipped, so the script resumes where it stopped. One torch thread per process: on a small
# machine, run several of these commands side by side rather than one with several threads.
# CPU time on a 2-core machine: about 1.5 h for the linear methods and the trim series, most of it the
# 12 seq2seq/seq2set runs on reuters and reuters-shuffled (7-14 min each).
set -euo pipefail
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

# linear methods (and the omikuji plugin: pip install -e examples/mlbench-omikuji), base and shuffled
# over 3 seeds, the trim series on seed 0
mlbench bench linear-reuters --methods br pcc omikuji --tasks reuters reuters-shuffled --seeds 0 1 2 -q
mlbench bench linear-reuters --methods br pcc omikuji --tasks reuters-trim5 reuters-trim10 reuters-trim20 reuters-trim30 --seeds 0 -q

# neural methods, small preset: base and shuffled over 3 seeds; seq2set starts from seq2seq's model.
# XML-CNN ignores label order, so on reuters-shuffled it trains exactly as on reuters: one seed checks it.
mlbench bench paper-reuters --methods seq2seq seq2set cnn-rnn --tasks reuters reuters-shuffled --seeds 0 1 2 -q
mlbench bench paper-reuters --methods xml-cnn --tasks reuters --seeds 0 1 2 -q
mlbench bench paper-reuters --methods xml-cnn --tasks reuters-shuffled --seeds 0 -q

# trim series, seed 0: CNN-RNN with the preset; the sequence models and XML-CNN trained longer on these
# small tasks (see the suite file for why)
mlbench bench paper-reuters --methods cnn-rnn --tasks reuters-trim10 reuters-trim30 --seeds 0 -q
mlbench bench benchmarks/suites/reuters-trim-neural.yaml --methods seq2seq seq2set -q
mlbench bench benchmarks/suites/reuters-trim-neural.yaml --methods xml-cnn --tasks reuters-trim10 reuters-trim30 -q

mlbench report --task reuters --out reports/reuters --command-note "bash benchmarks/reuters_report.sh"
