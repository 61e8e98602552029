#!/usr/bin/env bash
# Device-busy fractions of the neural methods' training steps (benchmarks/rcv1_scale.py, preset paper, RCV1
# shape) on a GPU machine that has no network and no mlbench install: the "device busy" column of
# reports/performance/rcv1_scale_gpu.md, with the back-to-back step it is a share of.
#
#   bash benchmarks/gpu_trim_neural.sh prepare      # here: the wheels the GPU image lacks and mlbench's own (.whl)
#   bash benchmarks/gpu_device_busy.sh              # there, from the repository root, with .whl carried along;
#                                                   # writes $OUT/rcv1_scale_gpu.md and .json
#
# N (default 200000) is the corpus size: the training rows do not depend on it (a fixed number of batches),
# only the tokenization rows and the projected epoch do. DEVICE (default cuda) and SKIP_INSTALL=1 (use the
# installed mlbench) let the same lines be tried on a CPU. The fine-tuned transformer rows cannot be made this
# way: the encoder's wheel (88 MB) is larger than what a device call carries, and that machine has no network.
set -euo pipefail
WHL=.whl
OUT=${OUT:-reports/performance}
if [ -z "${SKIP_INSTALL:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $WHL/*.whl
    export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
{ date -u; uptime; nvidia-smi 2>/dev/null || echo "no nvidia-smi"; } > "$OUT/device_busy_machine.txt" 2>&1
# the script's own folder, not the repository root, goes on sys.path: the installed mlbench is the one imported
python3 benchmarks/rcv1_scale.py --preset paper --device "${DEVICE:-cuda}" --sizes "${N:-200000}" \
    --train-batches "${BATCHES:-8}" --out "$OUT/rcv1_scale_gpu.md" ${EXTRA_ARGS:-}
