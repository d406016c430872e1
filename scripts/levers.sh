#!/usr/bin/env bash
# Equal-budget phase-1 runs of the levers considered for the shipped SRResNet (saved_models/srresnet_x4/README.md):
# each trains STEPS steps on ../shared/sr-train with 10 images held apart, and reports its validation PSNR-Y.
# Usage: scripts/levers.sh [STEPS] [OUT] [LEVER...]   (default 800 steps, runs/levers, levers A B C D)
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
# What to run: every lever by name, or those given after STEPS and OUT.
levers=("${@:3}")
[ ${#levers[@]} -gt 0 ] || levers=(A B C D)
for lever in "${levers[@]}"; do
  case $lever in
    A) run A_paper_noBN ;;
    B) run B_bicubic_residual --set model.global_residual=bicubic ;;
    # BasicSR's scaled init (x0.1) of the residual blocks and Adam beta_2 = 0.99, MSE then L1.
    C) run C_residual_init01 --set model.global_residual=bicubic --set model.residual_init_scale=0.1 \
         --set train.beta_2=0.99 ;;
    D) run D_residual_init01_l1 --set model.global_residual=bicubic --set model.residual_init_scale=0.1 \
         --set train.beta_2=0.99 --set train.pretrain_loss=l1 ;;
    *) echo "unknown lever $lever (A, B, C or D)" >&2; exit 2 ;;
  esac
done
