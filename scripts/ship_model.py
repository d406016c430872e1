"""Turns a run directory into a shipped model folder (saved_models/<name>):

    .venv/bin/python scripts/ship_model.py runs/srresnet_x4/pretrain saved_models/srresnet_x4
    .venv/bin/python scripts/ship_model.py runs/loss_comparison_x4/variants/mse_modified saved_models/srgan_x4 \
        --name srgan_x4 --checkpoint final

Writes <name>.keras (the chosen generator as float32, no optimizer state), config.json, log.csv and psnr_curve.png,
and prints the facts the model card states (steps, wall time, CPU, validation numbers). The test-set table of the card
comes from `python -m sr_lib evaluate`, not from here. A GAN ships its final generator: the best-validation-PSNR one
is the one the adversarial term has moved least, which is not what a GAN is trained for.
"""

import argparse
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from sr_lib.evaluation import plots  # noqa: E402
from sr_lib.core.device import cpu_name  # noqa: E402
from sr_lib.config import Config  # noqa: E402
from sr_lib.evaluation.evaluate import evaluate_arrays  # noqa: E402
from sr_lib.nets.saving import load_generator  # noqa: E402
from sr_lib.nets.models import as_float32  # noqa: E402
from sr_lib.training.phases import prepare_data, read_log  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="a phase-1 run directory (config.json, log.csv, generator_*.keras)")
    parser.add_argument("out", type=Path, help="the model folder to write")
    parser.add_argument("--name", default="srresnet_x4", help="the model file's stem (default: srresnet_x4)")
    parser.add_argument("--checkpoint", choices=("best", "final"), default="best",
                        help="generator_best_psnr_y.keras (default) or generator_final.keras")
    args = parser.parse_args(argv)
    config = Config.from_json(args.run_dir / "config.json")
    log = read_log(args.run_dir)
    if not log:
        sys.exit(f"error: no log.csv rows in {args.run_dir}")
    args.out.mkdir(parents=True, exist_ok=True)
    source = "generator_best_psnr_y.keras" if args.checkpoint == "best" else "generator_final.keras"
    generator = as_float32(load_generator(args.run_dir / source))
    generator.save(args.out / f"{args.name}.keras")
    shutil.copy(args.run_dir / "config.json", args.out / "config.json")
    shutil.copy(args.run_dir / "log.csv", args.out / "log.csv")

    data = prepare_data(config)
    scale = config.data.scale
    bicubic = evaluate_arrays(data.valid_lr, data.valid_hr, scale).means
    shipped = evaluate_arrays(data.valid_lr, data.valid_hr, scale, generator, args.name).means
    steps = [row["step"] for row in log]
    plots.plot_psnr_curves({f"{args.name} (held-apart validation crops)": (steps, [row["psnr_y"] for row in log])},
                           args.out / "psnr_curve.png", baseline=("bicubic", bicubic["psnr_y"]),
                           title=f"Validation PSNR-Y during training (x{scale}, {scale}-px border)")
    times = [row.get("wall_time") for row in log if row.get("wall_time") == row.get("wall_time")]
    per_interval = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else float("nan")
    wall = (times[-1] - times[0]) + per_interval  # The first interval has no earlier row: count it at the mean.
    best = max(log, key=lambda row: row["psnr_y"])
    print(f"cpu: {cpu_name()}")
    print(f"steps: {int(steps[-1])}; wall time about {wall / 60:.0f} min ({wall / steps[-1] * 1000:.0f} ms/step, "
          "validation included)")
    print(f"best validation PSNR-Y {best['psnr_y']:.2f} dB at step {int(best['step'])}")
    print(f"validation crops ({len(data.valid_lr)}): bicubic PSNR-Y {bicubic['psnr_y']:.2f}, shipped "
          f"{shipped['psnr_y']:.2f} (float32, {source})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
