"""The loss comparison: several generator objectives trained from the same pretrained SRResNet, with the same data,
seed and step budget, then one report (table, PSNR curves, image grid).

Layout of a comparison directory::

    config.json                the base configuration (each variant's own config.json sits in its folder)
    pretrain/                  phase 1, shared by every variant
    variants/<slug>/           one run per variant (phase 2, or MSE-only fine-tuning for the SRResNet row)
    report/results.md|csv|json the table; psnr_curves.png; comparison_grid.png

Re-running the same command resumes: finished runs are skipped, interrupted ones continue from their checkpoints.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sr_lib import evaluate as evaluate_lib
from sr_lib import plots
from sr_lib.config import Config
from sr_lib.training import TrainData, prepare_data, pretrain, read_log, train_gan


@dataclass(frozen=True)
class Variant:
    name: str  # Shown in the table and plots.
    slug: str  # Folder name.
    overrides: tuple  # (dotted config key, value) pairs applied to the base config.


DEFAULT_VARIANTS = (
    Variant("SRResNet (MSE)", "srresnet_mse", (("loss.content", "mse"), ("loss.adversarial", "none"))),
    Variant("SRGAN (VGG54 + modified)", "vgg54_modified", (("loss.content", "vgg54"), ("loss.adversarial", "modified"))),
    Variant("Per-Pix + modified", "perpix_modified", (("loss.content", "perpix"), ("loss.adversarial", "modified"))),
    Variant("Per-Pix + least-squares", "perpix_least_squares",
            (("loss.content", "perpix"), ("loss.adversarial", "least_squares"))),
    Variant("Per-Pix + Wasserstein-GP", "perpix_wasserstein_gp",
            (("loss.content", "perpix"), ("loss.adversarial", "wasserstein_gp"))),
    Variant("Per-Pix + relativistic", "perpix_relativistic",
            (("loss.content", "perpix"), ("loss.adversarial", "relativistic"))),
    Variant("Per-Pix + hinge", "perpix_hinge", (("loss.content", "perpix"), ("loss.adversarial", "wasserstein_hinge"))),
)


def get_variants(slugs=None) -> tuple:
    """The default variants, or those named by slug (ValueError listing the valid slugs)."""
    if not slugs:
        return DEFAULT_VARIANTS
    by_slug = {variant.slug: variant for variant in DEFAULT_VARIANTS}
    unknown = [slug for slug in slugs if slug not in by_slug]
    if unknown:
        raise ValueError(f"unknown variant {unknown[0]!r}; choose from {', '.join(by_slug)}")
    return tuple(by_slug[slug] for slug in slugs)


def label(variant_name: str, vgg_weights) -> str:
    """Variant name, marked when its VGG content loss had random weights (no perceptual meaning)."""
    return f"{variant_name} (random VGG)" if vgg_weights == "random" else variant_name


def run_comparison(config: Config, out_dir, variants=None, benchmarks=(), verbose="auto") -> dict:
    """Pretrains once, trains every variant from that generator, evaluates, and writes the report.

    Args:
        config: base configuration; each variant overrides only its loss keys.
        out_dir: the comparison directory (resumed if it exists with the same configuration).
        variants: Variants to run; DEFAULT_VARIANTS if None.
        benchmarks: folders of HR images (e.g. Set5) evaluated whole, in addition to the validation crops.
    Returns:
        The report as a dict (also written to ``report/results.json``), with the report's paths.
    """
    out_dir = Path(out_dir)
    variants = variants or DEFAULT_VARIANTS
    benchmark_sets = [(evaluate_lib.benchmark_name(folder), evaluate_lib.load_benchmark(folder))
                      for folder in benchmarks]
    train_data = prepare_data(config)
    base = pretrain(config, out_dir / "pretrain", train_data, verbose=verbose)  # Refuses a different config.
    config.to_json(out_dir / "config.json")
    runs = []
    for variant in variants:
        variant_config = config.replace(**dict(variant.overrides), name=f"{config.name}_{variant.slug}")
        result = train_gan(variant_config, out_dir / "variants" / variant.slug, base.final_path, train_data,
                           verbose=verbose)
        runs.append((variant, result))
    return write_report(out_dir / "report", config, train_data, runs, benchmark_sets)


def write_report(report_dir, config: Config, train_data: TrainData, runs, benchmark_sets=()) -> dict:
    """Table (Markdown, CSV, JSON), PSNR-vs-step curves and an image grid for finished runs."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    scale = config.data.scale
    generators = [(label(v.name, r.vgg_weights), evaluate_lib.load_generator(r.final_path))
                  for v, r in runs]
    rows = []
    methods = [("bicubic", None)] + generators
    for method, generator in methods:
        row = {"method": method}
        evaluations = [evaluate_lib.evaluate_arrays(train_data.valid_lr, train_data.valid_hr, scale, generator,
                                                    method, "validation")]
        for name, (names, images) in benchmark_sets:
            evaluations.append(evaluate_lib.evaluate_images(images, scale, generator, method, name, names))
        for evaluation in evaluations:
            for key, value in evaluation.means.items():
                row[f"{evaluation.dataset}/{key}"] = round(value, 4)
        rows.append(row)
    columns = list(rows[0])
    _write_table(report_dir, rows, columns, config)

    bicubic_psnr = rows[0]["validation/psnr_y"]
    curves = {}
    for (variant, result), (name, _) in zip(runs, generators):
        log = read_log(result.run_dir)
        curves[name] = ([row["step"] for row in log], [row["psnr_y"] for row in log])
    curve_path = plots.plot_psnr_curves(curves, report_dir / "psnr_curves.png", baseline=("bicubic", bicubic_psnr),
                                        title=f"Validation PSNR-Y (x{scale}, {scale}-px border) during phase 2")

    first = slice(0, 1)  # The same validation crop for every method.
    rows_of_images = evaluate_lib.comparison_rows(train_data.valid_lr[first], train_data.valid_hr[first], scale,
                                                  generators)
    grid_path = plots.save_image_grid(rows_of_images, report_dir / "comparison_grid.png")

    report = {"rows": rows, "table": str(report_dir / "results.md"), "curves": str(curve_path),
              "grid": str(grid_path), "random_vgg": any(r.vgg_weights == "random" for _, r in runs)}
    (report_dir / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _write_table(report_dir: Path, rows, columns, config: Config):
    with open(report_dir / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    scale = config.data.scale
    lines = [f"# Loss comparison (x{scale})", "",
             f"PSNR (dB) / SSIM on Y (ITU-R BT.601) and RGB, {scale}-pixel border removed, SR rounded to uint8. "
             f"Every variant: {config.train.gan_steps} steps from the same pretrained generator "
             f"({config.train.pretrain_steps} MSE steps), same data and seed.", ""]
    if any("random VGG" in row["method"] for row in rows):
        lines += ["**VGG weights were random (offline run): rows marked '(random VGG)' used a content loss with no "
                  "perceptual meaning. Their numbers show the pipeline works, not what a perceptual loss achieves.**",
                  ""]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for row in rows:
        lines.append("| " + " | ".join(_format(row[column]) for column in columns) + " |")
    (report_dir / "results.md").write_text("\n".join(lines) + "\n")


def _format(value):
    return f"{value:.4f}" if isinstance(value, float) and np.isfinite(value) else str(value)
