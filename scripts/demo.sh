#!/usr/bin/env bash
# The demo: sets up .venv and runs the whole story on a generated synthetic dataset.
# Everything it writes goes to demo_out/ (override with DEMO_OUT=...). Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh demo
PY=.venv/bin/python
OUT="${DEMO_OUT:-demo_out}"
export TF_CPP_MIN_LOG_LEVEL=2

echo "== 1. synthetic videos (UCF101 layout) -> $OUT/videos"
$PY -m tsn_keras.synthetic --out "$OUT/videos"
$PY -m tsn_keras.splits --dataset ucf101 --video_root "$OUT/videos" \
  --split_dir "$OUT/videos/ucfTrainTestlist" --split 1
