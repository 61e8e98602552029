#!/usr/bin/env bash
# Regenerates reports/reuters/ from scratch: the runs behind the committed report, then the report.
# Run it from the repository root; the store is ./mlflow.db (+ ./mlartifacts). Cells already in the
# store are skipped, so the script resumes where it stopped. One torch thread per process: on a small
# machine, run several of these commands side by side rather than one with several threads.
# Cost: several CPU hours, most of it the neural runs on reuters and reuters-shuffled. The wall times in
# the committed report's provenance table add up to about 10 h, taken with 4 to 12 jobs sharing 2 cores;
# one seq2seq fit alone takes about 7 minutes on one idle core.
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
mlbench bench paper-reuters --methods cnn-rnn --tasks reuters-trim5 reuters-trim10 reuters-trim20 reuters-trim30 --seeds 0 -q
mlbench bench benchmarks/suites/reuters-trim-neural.yaml --methods seq2seq seq2set -q
mlbench bench benchmarks/suites/reuters-trim-neural.yaml --methods xml-cnn -q

mlbench report --task reuters --out reports/reuters --command-note "bash benchmarks/reuters_report.sh"
