#!/usr/bin/env bash
# The GPU checks in one run (a borrowed GPU is short-lived): the device-aware tests on CUDA
# (golden fixtures, CPU/CUDA agreement, half precision), the speed table, and golden
# agreement per precision. Each part has its own time limit; logs and JSON go to OUTDIR.
# The training run is a second call: benchmarks/run_gpu_training.sh (its own carry folder).
#
#   SFCPROP_SHARED=/path/to/shared bash benchmarks/run_gpu_checks.sh OUTDIR
#
# On a machine that sees only the repository, copy what it reads into an ignored folder
# first (about 50 MB): shared/golden (probe_feats.npz not needed), and of
# shared/data/davis2016 the 480p bmx-trees JPEGs (40 are enough; the clip loops) and
# Annotations/480p/bmx-trees/00000.png; then SFCPROP_SHARED=$PWD/<folder>/shared.
#   DEVICE=cpu QUICK=1 bash benchmarks/run_gpu_checks.sh /tmp/dry   # a dry run of the script
set -u -o pipefail
out=${1:-gpu-results}
device=${DEVICE:-cuda}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export SFCPROP_DATA="${SFCPROP_DATA:-${SFCPROP_SHARED:-../shared}/data}"
py=${PYTHON:-python3}
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
  "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
    'cudnn', torch.backends.cudnn.version(), torch.cuda.is_available() and torch.cuda.get_device_name())"
  nproc
} 2>&1 | tee "$out/machine.txt"

echo "== tests on $device"
SFCPROP_TEST_DEVICE=$device timeout "${T_TESTS:-150}" "$py" -m pytest -q -p no:cacheprovider \
  tests/test_affinity.py tests/test_golden.py tests/test_precision.py 2>&1 | tee "$out/pytest-$device.txt"

echo "== speed table on $device"
quick=(); [ -n "${QUICK:-}" ] && quick=(--quick)
timeout "${T_SPEED:-270}" "$py" benchmarks/bench_propagation.py --device "$device" "${quick[@]}" \
  --json "$out/results-$device.json" 2>&1 | tee "$out/results-$device.txt"

echo "== golden agreement per precision on $device"
cases=(); [ -n "${QUICK:-}" ] && cases=(--cases fc-bmx-trees)
timeout "${T_PRECISION:-120}" "$py" benchmarks/bench_precision.py --device "$device" "${cases[@]}" \
  --json "$out/precision-$device.json" 2>&1 | tee "$out/precision-$device.txt"
echo "== backbone batching on $device"
batches=(); [ -n "${QUICK:-}" ] && batches=(--batches 1 --repeats 1)
timeout "${T_BACKBONE:-45}" "$py" benchmarks/bench_backbone_batch.py --device "$device" \
  "${batches[@]}" --json "$out/backbone-$device.json" 2>&1 | tee "$out/backbone-$device.txt"
echo "== done"
