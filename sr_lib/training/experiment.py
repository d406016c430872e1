"""The loss comparison: several generator objectives trained from the same pretrained SRResNet, with the same data,
seed and step budget, then one report (table, PSNR curves, image grid).

Layout of a comparison directory::

    config.json                the base configuration (each variant's own config.json sits in its folder)
    pretrain/                  phase 1, shared by every variant
    variants/<slug>/           one run per variant (phase 2, or MSE-only fine-tuning for the SRResNet row)
    report/results.md|csv|json the table; psnr_curves.png; comparison_grid.png; interpolation.png

With ``pretrained=PATH`` (``compare --pretrained``) phase 1 is skipped and every variant starts from that generator,
e.g. the shipped ``saved_models/srresnet_x4``.

The comparison directory, the pretrained generator and the benchmark folders may be ``tf.io.gfile`` URLs
(``gs://bucket/...``): the runs write there directly, and the report is made in a local temporary folder and then
uploaded file by file with ``results.json`` last. Under ``train.strategy=multi_worker`` every worker trains each run
(see :mod:`sr_lib.training.phases`), only the chief writes ``config.json`` and computes and writes the report, and the other
workers wait for it and return the chief's ``results.json``, so the directory must be on storage every worker sees.

Each variant gets a status: ``collapsed`` when its output is near-constant or its validation PSNR-Y is far below
bicubic (``COLLAPSE_CRITERION``), else ``ok``; the table also shows the discriminator's mean real/fake logits at the
end of training. A network-interpolation sweep (ESRGAN) between the MSE generator and one GAN variant ends the report.

Re-running the same command resumes: finished runs are skipped, interrupted ones continue from their checkpoints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sr_lib.config import Config, ConfigError
from sr_lib.core import ranges, storage
from sr_lib.evaluation import evaluate as evaluate_lib
from sr_lib.evaluation import plots
from sr_lib.evaluation.tables import Table
from sr_lib.nets.interpolation import check_same_architecture, interpolate_generators
from sr_lib.nets.saving import load_generator
from sr_lib.training import distribute
from sr_lib.training.distribute import WorkerFailedError, make_strategy
from sr_lib.training.phases import RunResult, TrainData, build_generator, prepare_data, pretrain, read_log, train_gan

# A variant has collapsed when its SR output is near-constant (spatial standard deviation below this fraction of the
# HR crops', averaged over the validation crops) or when its validation PSNR-Y is this many dB below bicubic.
COLLAPSE_STD_RATIO = 0.1
COLLAPSE_PSNR_MARGIN_DB = 5.0
COLLAPSE_CRITERION = (f"collapsed: SR standard deviation < {COLLAPSE_STD_RATIO:g} x HR's (near-constant output), "
                      f"or validation PSNR-Y more than {COLLAPSE_PSNR_MARGIN_DB:g} dB below bicubic")
INTERPOLATION_ALPHAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
# The GAN variant swept against the MSE generator, first found in this order (else the first GAN variant run).
INTERPOLATION_PREFERENCE = ("perpix_modified", "vgg54_modified")


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


def collapse_status(sr, hr, psnr_y, bicubic_psnr_y) -> str:
    """``"collapsed"`` or ``"ok"`` by ``COLLAPSE_CRITERION``, from validation SR and HR crops (any one range)."""
    sr_std = float(np.mean(np.std(np.asarray(sr, np.float64), axis=(1, 2, 3))))
    hr_std = float(np.mean(np.std(np.asarray(hr, np.float64), axis=(1, 2, 3))))
    if sr_std < COLLAPSE_STD_RATIO * hr_std or not np.isfinite(psnr_y) or psnr_y < bicubic_psnr_y - COLLAPSE_PSNR_MARGIN_DB:
        return "collapsed"
    return "ok"


def _check_pretrained(config: Config, pretrained) -> None:
    """A clear error, before any training, when the pretrained generator is not the configured architecture."""
    loaded = load_generator(pretrained)
    try:
        check_same_architecture(build_generator(config), loaded, names=("configured by model.*", str(pretrained)))
    except ValueError as error:
        raise ConfigError(f"{error}; set the model.* keys to the pretrained generator's (see its config.json)") from None


def run_comparison(config: Config, out_dir, variants=None, benchmarks=(), verbose="auto", pretrained=None) -> dict:
    """Pretrains once (or starts from ``pretrained``), trains every variant from that generator, evaluates, and
    writes the report.

    Args:
        config: base configuration; each variant overrides only its loss keys.
        out_dir: the comparison directory, a local folder or a ``tf.io.gfile`` URL (resumed if it exists with the
            same configuration).
        variants: Variants to run; DEFAULT_VARIANTS if None.
        benchmarks: folders (or URLs) of HR images (e.g. Set5) evaluated whole, in addition to the validation crops.
        pretrained: a ``.keras`` generator (a path or a URL) of the configured architecture to start every variant
            from; phase 1 is then skipped.
    Returns:
        The report as a dict (also written to ``report/results.json``), with the report's paths (URLs for a remote
        ``out_dir``). Under ``train.strategy=multi_worker`` the chief computes it; the other workers return the
        chief's ``results.json`` (NaN there reads as None).
    """
    strategy = make_strategy(config.train.strategy)  # First: a multi-worker strategy must precede any TF work.
    chief = distribute.is_chief(strategy)
    out_dir = storage.as_path(out_dir)
    with storage.gfile_errors(out_dir):  # An unknown scheme or an unreachable bucket: one error, before any work.
        out_dir.exists()
    variants = variants or DEFAULT_VARIANTS
    if pretrained is not None:
        pretrained = storage.as_path(pretrained)
        _check_pretrained(config, pretrained)
    elif config.train.pretrain_steps == 0:
        raise ConfigError("train.pretrain_steps is 0 and no pretrained generator was given: pass --pretrained PATH "
                          "(e.g. saved_models/srresnet_x4/srresnet_x4.keras) or set train.pretrain_steps")
    benchmark_sets = [(evaluate_lib.benchmark_name(folder), evaluate_lib.load_benchmark(folder))
                      for folder in benchmarks]
    train_data = prepare_data(config)
    if pretrained is None:
        base = pretrain(config, out_dir / "pretrain", train_data, verbose=verbose)  # Refuses a different config.
    else:
        base = RunResult(pretrained.parent, 0, float("nan"), -1, pretrained, pretrained, None)
    if chief:
        with storage.gfile_errors(out_dir / "config.json"):
            config.to_json(out_dir / "config.json")
    runs = []
    for variant in variants:
        variant_config = config.replace(**dict(variant.overrides), name=f"{config.name}_{variant.slug}")
        result = train_gan(variant_config, out_dir / "variants" / variant.slug, base.final_path, train_data,
                           verbose=verbose)
        runs.append((variant, result))
    report_dir = out_dir / "report"
    report = None
    if chief:
        report = write_report(report_dir, config, train_data, runs, benchmark_sets, pretrained=pretrained)
    _wait_for_chief(strategy, out_dir)
    return report if chief else read_report(report_dir)


def _wait_for_chief(strategy, out_dir):
    """Under ``train.strategy=multi_worker``, waits until every worker gets here, i.e. until the chief has written the
    report (a no-op otherwise); a WorkerFailedError if the chief (or another worker) fails meanwhile."""
    try:
        distribute._barrier(strategy)
    except distribute._WORKER_ERRORS as error:
        first = next((line.strip() for line in str(getattr(error, "message", error)).splitlines() if line.strip()),
                     type(error).__name__)
        raise WorkerFailedError(
            f"a worker of the multi-worker job failed or became unreachable while the chief wrote the comparison "
            f"report ({type(error).__name__}: {first[:300]}); start the same command again on every machine: "
            f"finished runs are skipped (comparison: {out_dir})") from None


def read_report(report_dir) -> dict:
    """The report a comparison wrote (``report/results.json``, local or remote); NaN values read as None."""
    path = storage.as_path(report_dir) / "results.json"
    with storage.gfile_errors(path):
        if not path.is_file():
            raise RuntimeError(f"the comparison report {path} is missing: under train.strategy=multi_worker the "
                               "chief writes it, so the comparison directory must be on storage every worker sees "
                               "(a gs:// bucket or a shared file system)")
        return json.loads(path.read_text())


def _final_logits(run_dir) -> tuple:
    """The discriminator's mean real and fake logits in the last log row (NaN for runs without a discriminator)."""
    log = read_log(run_dir)
    last = log[-1] if log else {}
    return last.get("d_real_logit", float("nan")), last.get("d_fake_logit", float("nan"))


def _note(variant: Variant, vgg_weights, status: str) -> str:
    notes = []
    if vgg_weights == "random":
        content = dict(variant.overrides).get("loss.content")
        notes.append("random VGG: the content loss has no perceptual meaning"
                     + ("; with no pixel term nothing ties this variant to the image, so it is expected to drift "
                        "and, given enough steps, collapse" if content in ("vgg22", "vgg54") else ""))
    if status == "collapsed":
        notes.append("collapsed (see criterion)")
    return "; ".join(notes)


def _interpolation_pair(runs, generators):
    """(MSE generator, GAN variant name, GAN generator) for the sweep, or None without both kinds of run."""
    by_slug = {variant.slug: (variant, generator) for (variant, _), (_, generator) in zip(runs, generators)}
    mse = [generator for (variant, _), (_, generator) in zip(runs, generators)
           if dict(variant.overrides).get("loss.adversarial") == "none"]
    gans = [slug for slug in INTERPOLATION_PREFERENCE if slug in by_slug] + [
        variant.slug for variant, _ in runs if dict(variant.overrides).get("loss.adversarial") != "none"]
    if not mse or not gans:
        return None
    variant, generator = by_slug[gans[0]]
    return mse[0], variant.name, generator


def interpolation_sweep(mse_generator, gan_generator, train_data: TrainData, scale: int, benchmark_sets=(),
                        alphas=INTERPOLATION_ALPHAS) -> dict:
    """PSNR-Y over alpha of ``(1 - alpha) * MSE + alpha * GAN`` on the validation crops and each benchmark set."""
    curves = {"validation": []}
    curves.update({name: [] for name, _ in benchmark_sets})
    for alpha in alphas:
        blended = interpolate_generators(mse_generator, gan_generator, alpha)
        curves["validation"].append(evaluate_lib.evaluate_arrays(train_data.valid_lr, train_data.valid_hr, scale,
                                                                 blended).means["psnr_y"])
        for name, (names, images) in benchmark_sets:
            curves[name].append(evaluate_lib.evaluate_images(images, scale, blended, "", name, names).means["psnr_y"])
    return {"alphas": list(alphas), "psnr_y": curves}


def write_report(report_dir, config: Config, train_data: TrainData, runs, benchmark_sets=(), pretrained=None) -> dict:
    """Table (Markdown, CSV, JSON) with each variant's status, PSNR-vs-step curves, an image grid and the network
    interpolation sweep, for finished runs. ``report_dir`` may be a URL: the files are then made in a local temporary
    folder and uploaded, ``results.json`` last, and the report's paths are URLs."""
    report_dir = storage.as_path(report_dir)
    with storage.publish_folder(report_dir, last=("results.json",)) as staging:
        report = _make_report(staging, report_dir, config, train_data, runs, benchmark_sets, pretrained)
    return report


def _make_report(local_dir: Path, report_dir, config: Config, train_data: TrainData, runs, benchmark_sets,
                 pretrained) -> dict:
    """Writes the report's files into the local folder ``local_dir``; the paths in the report are under ``report_dir``
    (where they end up: ``local_dir`` itself, or the URL they are uploaded to)."""
    scale = config.data.scale
    generators = [(label(v.name, r.vgg_weights), load_generator(r.final_path))
                  for v, r in runs]
    rows = []
    methods = [("bicubic", None, None)] + [(name, generator, run) for (name, generator), run in zip(generators, runs)]
    bicubic_psnr = None
    for method, generator, run in methods:
        row = {"method": method}
        evaluations = [evaluate_lib.evaluate_arrays(train_data.valid_lr, train_data.valid_hr, scale, generator,
                                                    method, "validation")]
        for name, (names, images) in benchmark_sets:
            evaluations.append(evaluate_lib.evaluate_images(images, scale, generator, method, name, names))
        for evaluation in evaluations:
            for key, value in evaluation.means.items():
                row[f"{evaluation.dataset}/{key}"] = round(value, 4)
        if generator is None:
            bicubic_psnr = row["validation/psnr_y"]
            row.update(status="", d_real_logit=float("nan"), d_fake_logit=float("nan"), note="")
        else:
            variant, result = run
            sr = ranges.hr_to_unit(evaluate_lib.predict(generator, train_data.valid_lr)).numpy()
            status = collapse_status(sr, ranges.hr_to_unit(train_data.valid_hr).numpy(), row["validation/psnr_y"],
                                     bicubic_psnr)
            real, fake = _final_logits(result.run_dir)
            row.update(status=status, d_real_logit=round(real, 4), d_fake_logit=round(fake, 4),
                       note=_note(variant, result.vgg_weights, status))
        rows.append(row)
    columns = list(rows[0])
    sweep = None
    pair = _interpolation_pair(runs, generators)
    if pair is not None:
        mse_generator, gan_name, gan_generator = pair
        sweep = interpolation_sweep(mse_generator, gan_generator, train_data, scale, benchmark_sets)
        sweep["gan_variant"] = gan_name
    _write_table(local_dir, rows, columns, config, sweep, pretrained)

    curves = {}
    for (variant, result), (name, _) in zip(runs, generators):
        log = read_log(result.run_dir)
        curves[name] = ([row["step"] for row in log], [row["psnr_y"] for row in log])
    plots.plot_psnr_curves(curves, local_dir / "psnr_curves.png", baseline=("bicubic", bicubic_psnr),
                           title=f"Validation PSNR-Y (x{scale}, {scale}-px border) during phase 2")
    interpolation_path = None
    if sweep is not None:
        plots.plot_psnr_curves({name: (sweep["alphas"], values) for name, values in sweep["psnr_y"].items()},
                               local_dir / "interpolation.png", xlabel="alpha (0: SRResNet-MSE, 1: GAN)",
                               title=f"Network interpolation: SRResNet (MSE) -> {sweep['gan_variant']}")
        interpolation_path = report_dir / "interpolation.png"

    first = slice(0, 1)  # The same validation crop for every method.
    rows_of_images = evaluate_lib.comparison_rows(train_data.valid_lr[first], train_data.valid_hr[first], scale,
                                                  generators)
    plots.save_image_grid(rows_of_images, local_dir / "comparison_grid.png")

    report = {"rows": rows, "table": str(report_dir / "results.md"), "curves": str(report_dir / "psnr_curves.png"),
              "grid": str(report_dir / "comparison_grid.png"), "interpolation": sweep,
              "interpolation_plot": str(interpolation_path) if interpolation_path else None,
              "collapse_criterion": COLLAPSE_CRITERION,
              "random_vgg": any(r.vgg_weights == "random" for _, r in runs)}
    storage.write_text(local_dir / "results.json", json.dumps(_json_safe(report), indent=2) + "\n")
    return report


def _json_safe(value):
    """NaN/inf become null: results.json stays valid JSON for every reader."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def _write_table(report_dir: Path, rows, columns, config: Config, sweep=None, pretrained=None):
    pretrained_note = (f"{pretrained}" if pretrained is not None
                       else f"{config.train.pretrain_steps} MSE steps")
    table = Table(rows, columns, digits=4)
    (report_dir / "results.csv").write_text(table.to_csv())
    scale = config.data.scale
    lines = [f"# Loss comparison (x{scale})", "",
             f"PSNR (dB) / SSIM on Y (ITU-R BT.601) and RGB, {scale}-pixel border removed, SR rounded to uint8. "
             f"Every variant: {config.train.gan_steps} steps from the same pretrained generator "
             f"({pretrained_note}), same data and seed.", ""]
    if any("random VGG" in row["method"] for row in rows):
        lines += ["**VGG weights were random (offline run): rows marked '(random VGG)' used a content loss with no "
                  "perceptual meaning. Their numbers show the pipeline works, not what a perceptual loss achieves.**",
                  ""]
    lines += [f"Status: {COLLAPSE_CRITERION}; else ok. d_real_logit / d_fake_logit: the discriminator's mean logits on "
              "HR and SR in the last logged interval (a fake logit far below the real one means the discriminator "
              "wins easily). color_shift: the worst image's largest |per-channel mean of SR - HR|, grey levels.", ""]
    lines.append(table.to_markdown())
    if sweep is not None:
        sweep_rows = [{"alpha": f"{alpha:.1f}", **{f"{name} PSNR-Y": values[index]
                                                  for name, values in sweep["psnr_y"].items()}}
                      for index, alpha in enumerate(sweep["alphas"])]
        lines += ["", f"## Network interpolation: (1 - alpha) SRResNet-MSE + alpha {sweep['gan_variant']}", "",
                  Table(sweep_rows, digits=4).to_markdown()]
    (report_dir / "results.md").write_text("\n".join(lines) + "\n")
