#!/usr/bin/env bash
# A short training run of the shipped model's recipe on a borrowed GPU, in one time-limited
# call, then its proxy J&F and demo score beside the shipped model's (issue 14).
#
# Here, first (CPU, a minute): python benchmarks/prepare_gpu_training.py   # -> .gpu-train/
# Then, on the device, with `.gpu-train` carried:
#   bash benchmarks/run_gpu_training.sh "$OUT"
# It trains the shipped model's contrastive trunk recipe (TQ1, weights/MODEL_CARD.md) at the
# paper's crop size: 256 px crops, batch 32, `--amp` (float16 + loss scaling on CUDA), ITERS
# steps or T_TRAIN seconds, whichever ends first (a checkpoint every 100 steps). The last one
# (seed 0) is exported as the shipped file was made: EMA target encoder, BN statistics
# recomputed on 150 training images at 480 px (here the prepared 320 px copies, upsampled).
# Everything it writes goes to OUTDIR, at most 8 files (the device's limit):
#   machine.txt, train.txt, loss.csv, fc-gpu.safetensors, proxy.txt, demo.txt
#   DEVICE=cpu T_TRAIN=20 ITERS=4 IMG=64 BATCH=4 bash benchmarks/run_gpu_training.sh /tmp/dry
set -u -o pipefail
out=${1:-gpu-train}
data=${DATA:-.gpu-train}
device=${DEVICE:-cuda}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
run=$(mktemp -d)  # checkpoints (about 200 MB each) stay out of OUTDIR
{
  date -u
  nvidia-smi --query-gpu=name,memory.total --format=csv || true
  "$py" -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"
} 2>&1 | tee "$out/machine.txt"

echo "== training on $device for at most ${T_TRAIN:-300} s"
timeout "${T_TRAIN:-300}" "$py" -m sfcprop.train --image-root "$data/pretrain" --out-dir "$run" \
  --device "$device" --img-size "${IMG:-256}" --batch-size "${BATCH:-32}" \
  --iterations "${ITERS:-3000}" --lr 1e-3 --amp --preload-short-side 320 \
  --dense-objective infonce --dense-on trunk --batch-negatives --pos-radius 0.35 \
  --temperature 0.05 --workers "${WORKERS:-8}" \
  --save-every 100 --log-every 50 --seed 0 2>&1 | tr '\r' '\n' | grep -v '%|' \
  | tee "$out/train.txt"
cp "$run/loss.csv" "$out/loss.csv" || true
"$py" -m sfcprop.train --export "$run/last.pt" "$out/fc-gpu.safetensors" \
  --export-encoder target --bn-root "$data/pretrain" --bn-count 150 --threads 0 \
  --meta "hardware=$device (run_gpu_training.sh)" 2>&1 | tee -a "$out/train.txt"

echo "== proxy J&F (bench_quick_davis on the prepared frames), trained and shipped"
for model in "$out/fc-gpu.safetensors" fc; do
  timeout "${T_PROXY:-120}" "$py" benchmarks/bench_quick_davis.py "$model" --step 1 \
    --root "$data/davis2016" --device "$device" 2>&1 | tail -9
done | tee "$out/proxy.txt"

echo "== demo (generated photo clip): trained, shipped, random weights"
timeout "${T_DEMO:-60}" "$py" - "$out/fc-gpu.safetensors" "$device" <<'PY' 2>&1 | tee "$out/demo.txt"
import sys, tempfile
from sfcprop.demo import run_demo
for name in (sys.argv[1], "fc"):
    s = run_demo(tempfile.mkdtemp(), backbone=name, device=sys.argv[2], quiet=True)
    print(f"{name}: J&F {s['J&F-Mean']:.3f}, random weights {s['random J&F-Mean']:.3f}")
PY
rm -rf "$run"
echo "== done"
