"""What bfloat16 inference costs in quality: PSNR-Y of the shipped generator on Set5 and Set14 (the evaluation
protocol of ``python -m sr_lib evaluate``), computed in float32 and under the mixed_bfloat16 policy (bfloat16
compute, float32 weights: ``sr_lib.inference.upscale.with_precision``, what ``upscale`` runs on a bf16 CPU).

    python benchmarks/bf16_quality.py --out benchmarks/bf16_quality.json

``upscale`` may use bfloat16 by default only where the CPU has it natively and where |delta PSNR-Y| <= 0.01 dB on
both sets (issue 19); this measures the delta. Where bf16 is not native it still runs, emulated and slowly.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from sr_lib.core.device import cpu_name  # noqa: E402
from sr_lib.evaluation.evaluate import evaluate_images, load_benchmark  # noqa: E402
from sr_lib.inference.upscale import native_bf16, with_precision  # noqa: E402
from sr_lib.inference.upscaler import load_upscaler  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "saved_models" / "srresnet_x4" / "srresnet_x4.keras"
SETS = ROOT.parent / "shared" / "sr-benchmarks"
LIMIT_DB = 0.01


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(MODEL))
    parser.add_argument("--sets", default="Set5,Set14")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "bf16_quality.json"))
    args = parser.parse_args(argv)
    upscaler = load_upscaler(args.model)
    generators = {"float32": upscaler, "mixed_bfloat16": with_precision(upscaler, "mixed_bfloat16")}
    print(f"{'set':<6} {'float32':>8} {'bf16':>8} {'delta dB':>9} {'max |delta| image':>18}", flush=True)
    rows = []
    for name in args.sets.split(","):
        names, images = load_benchmark(SETS / name / "HR")
        results = {policy: evaluate_images(images, upscaler.scale, generator, method=policy, dataset=name,
                                           names=names) for policy, generator in generators.items()}
        ours, theirs = results["float32"], results["mixed_bfloat16"]
        per_image = theirs.gains_over(ours)
        row = {"set": name, "images": len(names), "psnr_y_float32": ours.means["psnr_y"],
               "psnr_y_bf16": theirs.means["psnr_y"], "delta_db": theirs.means["psnr_y"] - ours.means["psnr_y"],
               "per_image_delta_db": per_image, "max_abs_image_delta_db": max(map(abs, per_image.values()))}
        rows.append(row)
        print(f"{name:<6} {row['psnr_y_float32']:8.3f} {row['psnr_y_bf16']:8.3f} {row['delta_db']:+9.4f} "
              f"{row['max_abs_image_delta_db']:18.4f}", flush=True)
    allowed = native_bf16() and all(abs(row["delta_db"]) <= LIMIT_DB for row in rows)
    print(f"bf16 for upscale by default: {'allowed' if allowed else 'no'} (needs native bf16 and |delta| <= "
          f"{LIMIT_DB} dB on every set)")
    out = Path(args.out)
    out.write_text(json.dumps({"machine": {"processor": cpu_name(), "tensorflow": tf.__version__,
                                           "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS")},
                               "model": os.path.relpath(args.model, ROOT), "limit_db": LIMIT_DB, "sets": rows,
                               "bf16_allowed_by_default": allowed}, indent=2, default=float) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
