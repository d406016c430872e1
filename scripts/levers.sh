#!/usr/bin/env bash
# Equal-budget phase-1 runs of the levers considered for the shipped SRResNet (saved_models/srresnet_x4/README.md):
# each trains STEPS steps on ../shared/sr-train with 10 images held apart, and reports its validation PSNR-Y.
# Usage: scripts/levers.sh [STEPS] [OUT]   (default 800 steps, runs/levers)
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-800}
OUT=${2:-runs/levers}
PY=${PYTHON:-.venv/bin/python}
common=(--preset paper --phase pretrain --data ../shared/sr-train
        --set data.valid_holdout=10 --set data.valid_hr_size=128 --set data.valid_crops_per_image=2
        --set model.batch_norm=false --set train.learning_rate=0.0002 --set train.mixed_precision=auto
        --set train.pretrain_steps="$STEPS" --set train.validate_every=200 --set train.images_every="$STEPS")
run() {  # NAME then extra --set flags
  local name=$1; shift
  echo "== $name"
  "$PY" -m sr_lib train "${common[@]}" "$@" --out "$OUT/$name" 2>&1 | grep -E "phase 1|error" || true
}
run A_paper_noBN
run B_bicubic_residual --set model.global_residual=bicubic
run C_residual_l1 --set model.global_residual=bicubic --set train.pretrain_loss=l1
run D_residual_l1_init01_b099 --set model.global_residual=bicubic --set train.pretrain_loss=l1 \
    --set model.residual_init_scale=0.1 --set train.beta_2=0.99
