"""The loss comparison's report: one table of every variant on the validation crops and the benchmark sets (PSNR/SSIM,
NIQE, status, the discriminator's logits), with bicubic and an HR reference row, and its figures.

Files of ``report/``: ``results.md|csv|json`` (the table), ``psnr_curves.png`` (validation PSNR-Y during training),
``comparison_grid.png`` (one validation crop through every variant), ``interpolation.png`` (the network-interpolation
sweep's PSNR-Y) and ``perception_distortion.png`` (PSNR-Y against NIQE: a point per variant, bicubic and HR as
references, the sweep as a line through its alphas).

NIQE (no reference, lower is better) is measured on Y of YCbCr with a ``scale``-pixel border, like PSNR. It needs two
96x96 blocks per image, so small validation crops (the demo's 128 px, ci's 32 px) give NaN, said once in the table's
notes; benchmark images such as Set5's are large enough.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from sr_lib.config import Config
from sr_lib.core import ranges, storage
from sr_lib.core.device import cpu_name, resolve_precision
from sr_lib.core.stopwatch import Stopwatch
from sr_lib.evaluation import evaluate as evaluate_lib
from sr_lib.evaluation import niqe as niqe_lib
from sr_lib.evaluation import plots, zoom
from sr_lib.evaluation.tables import Table
from sr_lib.nets.interpolation import interpolate_generators
from sr_lib.nets.saving import load_generator
from sr_lib.training.phases import TrainData, read_log
from sr_lib.training.seed_spread import seed_spread, spread_lines

# A variant has collapsed when its SR output is near-constant (spatial standard deviation below this fraction of the
# HR crops', averaged over the validation crops) or when its validation PSNR-Y is this many dB below bicubic.
COLLAPSE_STD_RATIO = 0.1
COLLAPSE_PSNR_MARGIN_DB = 5.0
COLLAPSE_CRITERION = (f"collapsed: SR standard deviation < {COLLAPSE_STD_RATIO:g} x HR's (near-constant output), "
                      f"or validation PSNR-Y more than {COLLAPSE_PSNR_MARGIN_DB:g} dB below bicubic")
INTERPOLATION_ALPHAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
# The GAN variant swept against the MSE generator: the first in this order whose loss means something (not a random
# VGG), then the first GAN variant run that does, then the same ignoring VGG weights.
INTERPOLATION_PREFERENCE = ("perpix_modified", "mse_modified", "vgg54_modified")
HR_NOTE = "reference: the HR images' own NIQE (PSNR/SSIM of HR against itself are not measurements)"


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


def _adversarial(variant) -> str:
    return dict(variant.overrides).get("loss.adversarial")


def _note(variant, vgg_weights, status: str) -> str:
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
    entries = [(variant, result, generator) for (variant, result), (_, generator) in zip(runs, generators)]
    mse = [generator for variant, _, generator in entries if _adversarial(variant) == "none"]
    gans = [entry for entry in entries if _adversarial(entry[0]) != "none"]
    if not mse or not gans:
        return None

    def rank(entry):
        variant, result, _ = entry
        preference = INTERPOLATION_PREFERENCE.index(variant.slug) if variant.slug in INTERPOLATION_PREFERENCE else 99
        return result.vgg_weights == "random", preference

    variant, _, generator = min(gans, key=rank)  # min is stable: ties keep the run order.
    return mse[0], variant.name, generator


def _valid_niqe(train_data: TrainData, scale: int) -> bool:
    """Whether the validation crops are large enough for NIQE."""
    return evaluate_lib.niqe_defined(np.shape(train_data.valid_hr)[1:3], scale)


def _evaluations(generator, method, train_data: TrainData, scale: int, benchmark_sets) -> list:
    """Evaluations (with NIQE where defined) of one method on the validation crops and each benchmark set."""
    valid = evaluate_lib.evaluate_arrays(train_data.valid_lr, train_data.valid_hr, scale, generator, method,
                                         "validation", niqe=_valid_niqe(train_data, scale))
    return [valid] + [evaluate_lib.evaluate_images(images, scale, generator, method, name, names, niqe=True)
                      for name, (names, images) in benchmark_sets]


def _means(evaluation) -> dict:
    """An evaluation's means with a NIQE entry always (NaN where it was not measured)."""
    return {**evaluation.means, **({} if evaluate_lib.NIQE in evaluation.means else {evaluate_lib.NIQE: float("nan")})}


def interpolation_sweep(mse_generator, gan_generator, train_data: TrainData, scale: int, benchmark_sets=(),
                        alphas=INTERPOLATION_ALPHAS) -> dict:
    """PSNR-Y and NIQE over alpha of ``(1 - alpha) * MSE + alpha * GAN`` on the validation crops and each benchmark
    set: ``{"alphas": [...], "psnr_y": {set: [...]}, "niqe": {set: [...]}}`` (validation NIQE is NaN for crops too
    small for it)."""
    curves = {"psnr_y": {}, "niqe": {}}
    for alpha in alphas:
        blended = interpolate_generators(mse_generator, gan_generator, alpha)
        for evaluation in _evaluations(blended, "", train_data, scale, benchmark_sets):
            for key in curves:
                curves[key].setdefault(evaluation.dataset, []).append(_means(evaluation)[key])
    return {"alphas": list(alphas), **curves}


ZOOM_WINDOW, ZOOM_IMAGES = 96, 5  # zoomed_crops.png: HR pixels per window side; images of the first benchmark set.


def write_report(report_dir, config: Config, train_data: TrainData, runs, benchmark_sets=(), pretrained=None,
                 stopwatch=None) -> dict:
    """Table (Markdown, CSV, JSON) with each variant's status, PSNR-vs-step curves, an image grid, the network
    interpolation sweep and the perception-distortion figure, for finished runs. ``report_dir`` may be a URL: the files
    are then made in a local temporary folder and uploaded, ``results.json`` last, and the report's paths are URLs."""
    report_dir = storage.as_path(report_dir)
    with storage.publish_folder(report_dir, last=("results.json",)) as staging, warnings.catch_warnings():
        # Images too small for NIQE would warn once per method and alpha; the table's notes say it once instead.
        warnings.simplefilter("ignore", niqe_lib.NIQESkip)
        report = _make_report(staging, report_dir, config, train_data, runs, benchmark_sets, pretrained,
                              stopwatch or Stopwatch())
    return report


def _niqe_notes(train_data: TrainData, scale: int, hr_evaluations) -> list:
    """One line per image set on which NIQE is undefined for some images (too small), from the HR evaluations."""
    notes = []
    if not _valid_niqe(train_data, scale):
        height, width = np.shape(train_data.valid_hr)[1:3]
        notes.append(f"NIQE on the validation crops: undefined (—): {height}x{width} px crops have fewer than two "
                     f"{niqe_lib.BLOCK}x{niqe_lib.BLOCK} blocks after the {scale}-px border (it needs "
                     f"data.valid_hr_size >= {2 * niqe_lib.BLOCK + 2 * scale}); see the benchmark sets' NIQE.")
    for evaluation in hr_evaluations[1:]:
        missing = [row["name"] for row in evaluation.per_image if not np.isfinite(row[evaluate_lib.NIQE])]
        if missing:
            which = "every image" if len(missing) == len(evaluation.per_image) else (
                f"{len(missing)} of {len(evaluation.per_image)} images ({', '.join(missing)}; the set's NIQE is the "
                "mean of the others)")
            notes.append(f"NIQE on {evaluation.dataset}: undefined for {which}: fewer than two "
                         f"{niqe_lib.BLOCK}x{niqe_lib.BLOCK} blocks after the {scale}-px border.")
    return notes


def _make_report(local_dir: Path, report_dir, config: Config, train_data: TrainData, runs, benchmark_sets,
                 pretrained, stopwatch) -> dict:
    """Writes the report's files into the local folder ``local_dir``; the paths in the report are under ``report_dir``
    (where they end up: ``local_dir`` itself, or the URL they are uploaded to)."""
    scale = config.data.scale
    generators = [(label(v.name, r.vgg_weights), load_generator(r.final_path)) for v, r in runs]
    rows = []
    methods = [("bicubic", None, None)] + [(name, generator, run) for (name, generator), run in zip(generators, runs)]
    bicubic_psnr = None
    for method, generator, run in methods:
        row = {"method": method}
        with stopwatch.stage("evaluation"):
            evaluations = _evaluations(generator, method, train_data, scale, benchmark_sets)
        for evaluation in evaluations:
            for key, value in _means(evaluation).items():
                row[f"{evaluation.dataset}/{key}"] = round(value, 4)
        if generator is None:
            bicubic_psnr = row["validation/psnr_y"]
            row.update(status="", d_real_logit=float("nan"), d_fake_logit=float("nan"), note="")
        else:
            variant, result = run
            # The validation SR just measured (evaluations[0]), not a second pass of the generator.
            status = collapse_status(evaluations[0].outputs, ranges.hr_to_uint8(train_data.valid_hr).numpy(),
                                     row["validation/psnr_y"], bicubic_psnr)
            real, fake = _final_logits(result.run_dir)
            row.update(status=status, d_real_logit=round(real, 4), d_fake_logit=round(fake, 4),
                       note=_note(variant, result.vgg_weights, status))
        rows.append(row)
    with stopwatch.stage("evaluation"):
        hr_evaluations = _evaluations(evaluate_lib.HR, "HR", train_data, scale, benchmark_sets)
    hr_row = {"method": "HR", **{f"{e.dataset}/{key}": round(value, 4) for e in hr_evaluations
                                 for key, value in _means(e).items()},
              "status": "", "d_real_logit": float("nan"), "d_fake_logit": float("nan"), "note": HR_NOTE}
    columns = list(rows[0])
    sweep = None
    pair = _interpolation_pair(runs, generators)
    if pair is not None:
        mse_generator, gan_name, gan_generator = pair
        with stopwatch.stage("interpolation sweep"):
            sweep = interpolation_sweep(mse_generator, gan_generator, train_data, scale, benchmark_sets)
        sweep["gan_variant"] = gan_name
    notes = _niqe_notes(train_data, scale, hr_evaluations)
    spread = seed_spread(runs, rows[1:])
    _write_table(local_dir, rows + [hr_row], columns, config, sweep, pretrained, notes, spread)

    with stopwatch.stage("figures"):
        plane = _figures(local_dir, report_dir, config, train_data, runs, generators, rows, hr_row, sweep,
                         bicubic_psnr, benchmark_sets)
    interpolation_path = report_dir / "interpolation.png" if sweep is not None else None
    report = {"rows": rows, "hr_row": hr_row, "table": str(report_dir / "results.md"),
              "curves": str(report_dir / "psnr_curves.png"), "grid": str(report_dir / "comparison_grid.png"),
              "interpolation": sweep, "interpolation_plot": str(interpolation_path) if interpolation_path else None,
              "perception_distortion": str(report_dir / "perception_distortion.png"),
              "zoomed_crops": str(report_dir / "zoomed_crops.png") if benchmark_sets else None,
              "perception_distortion_points": plane, "niqe_notes": notes, "seed_spread": spread,
              "collapse_criterion": COLLAPSE_CRITERION,
              "random_vgg": any(r.vgg_weights == "random" for _, r in runs),
              # Wall-clock seconds per stage of this command (a resumed run's finished variants cost no training).
              "timings": {"seconds": dict(stopwatch.seconds), "total_seconds": stopwatch.total(), "cpu": cpu_name(),
                          "summary": stopwatch.summary()}}
    storage.write_text(local_dir / "results.json", json.dumps(_json_safe(report), indent=2) + "\n")
    return report


def _figures(local_dir: Path, report_dir, config: Config, train_data: TrainData, runs, generators, rows, hr_row,
             sweep, bicubic_psnr, benchmark_sets) -> dict:
    """The PSNR curves, the interpolation plot, the perception-distortion plane (returned) and the image grid."""
    scale = config.data.scale
    curves = {}
    for (variant, result), (name, _) in zip(runs, generators):
        log = read_log(result.run_dir)
        curves[name] = ([row["step"] for row in log], [row["psnr_y"] for row in log])
    plots.plot_psnr_curves(curves, local_dir / "psnr_curves.png", baseline=("bicubic", bicubic_psnr),
                           title=f"Validation PSNR-Y (x{scale}, {scale}-px border) during phase 2")
    if sweep is not None:
        plots.plot_psnr_curves({name: (sweep["alphas"], values) for name, values in sweep["psnr_y"].items()},
                               local_dir / "interpolation.png", xlabel="alpha (0: SRResNet-MSE, 1: GAN)",
                               title=f"Network interpolation: SRResNet (MSE) -> {sweep['gan_variant']}")
    plane = _perception_distortion(local_dir, rows, hr_row, sweep, [name for name, _ in benchmark_sets], scale)

    first = slice(0, 1)  # The same validation crop for every method.
    rows_of_images = evaluate_lib.comparison_rows(train_data.valid_lr[first], train_data.valid_hr[first], scale,
                                                  generators)
    plots.save_image_grid(rows_of_images, local_dir / "comparison_grid.png")
    if benchmark_sets:
        rows_of_zooms, titles = zoomed_rows(benchmark_sets[0][1], generators, scale)
        plots.save_image_grid(rows_of_zooms, local_dir / "zoomed_crops.png", titles=titles)
    return plane


def zoomed_rows(named_images, generators, scale: int) -> tuple:
    """(rows, titles) of ``zoomed_crops.png``: up to ZOOM_IMAGES images of a benchmark set, each zoomed where it is
    most detailed (where GAN texture shows), the window shrunk to fit a smaller image."""
    names, images = named_images
    rows = [zoom.zoom_row(image, scale, generators, size=min(ZOOM_WINDOW, min(np.shape(image)[:2]) // scale * scale))
            for image in images[:ZOOM_IMAGES]]
    return rows, list(names[:ZOOM_IMAGES])


def _perception_distortion(local_dir: Path, rows, hr_row, sweep, benchmark_names, scale: int) -> dict:
    """Draws ``perception_distortion.png`` on the first benchmark set whose NIQE is defined (else the validation
    crops) and returns what it plotted: the set, each variant's (PSNR-Y, NIQE), bicubic's, HR's NIQE."""
    candidates = list(benchmark_names) + ["validation"]
    dataset = next((name for name in candidates if np.isfinite(hr_row[f"{name}/niqe"])), candidates[0])

    def point(row):
        return [row[f"{dataset}/psnr_y"], row[f"{dataset}/niqe"]]

    plane = {"dataset": dataset, "points": {row["method"]: point(row) for row in rows[1:]},
             "bicubic": point(rows[0]), "hr_niqe": hr_row[f"{dataset}/niqe"]}
    line = None
    if sweep is not None:
        line = (f"interpolation SRResNet (MSE) -> {sweep['gan_variant']}", sweep["alphas"], sweep["psnr_y"][dataset],
                sweep["niqe"][dataset])
    note = None if np.isfinite(plane["hr_niqe"]) else (
        f"NIQE is undefined on {dataset}: its images have fewer than two {niqe_lib.BLOCK}x{niqe_lib.BLOCK} blocks "
        f"after the {scale}-px border; pass a benchmark set such as Set5 (--benchmark).")
    where = "validation crops" if dataset == "validation" else dataset
    plots.plot_perception_distortion(plane["points"], local_dir / "perception_distortion.png", bicubic=plane["bicubic"],
                                     hr_niqe=plane["hr_niqe"], sweep=line, note=note,
                                     title=f"Perception-distortion plane, {where} (x{scale}, {scale}-px border)")
    return plane


def _json_safe(value):
    """NaN/inf become null: results.json stays valid JSON for every reader."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def _write_table(report_dir: Path, rows, columns, config: Config, sweep=None, pretrained=None, notes=(),
                 spread=None):
    pretrained_note = (f"{pretrained}" if pretrained is not None
                       else f"{config.train.pretrain_steps} MSE steps")
    table = Table(rows, columns, digits=4)
    (report_dir / "results.csv").write_text(table.to_csv())
    scale = config.data.scale
    lines = [f"# Loss comparison (x{scale})", "",
             f"PSNR (dB) / SSIM on Y (ITU-R BT.601) and RGB, {scale}-pixel border removed, SR rounded to uint8. "
             f"niqe: NIQE (Mittal et al. 2013; no reference, lower is better) of the same uint8 SR on Y of YCbCr, "
             f"same border; the HR row is the HR images' own NIQE. Every variant: {config.train.gan_steps} steps "
             f"from the same pretrained generator ({pretrained_note}), same data and seed "
             f"(train.seed={config.train.seed}, except a '(seed N)' repeat). {_recipe(config)}", ""]
    if any("random VGG" in row["method"] for row in rows):
        lines += ["**VGG weights were random (offline run): rows marked '(random VGG)' used a content loss with no "
                  "perceptual meaning. Their numbers show the pipeline works, not what a perceptual loss achieves.**",
                  ""]
    lines += [f"Status: {COLLAPSE_CRITERION}; else ok. d_real_logit / d_fake_logit: the discriminator's mean logits on "
              "HR and SR in the last logged interval (a fake logit far below the real one means the discriminator "
              "wins easily). color_shift: the worst image's largest |per-channel mean of SR - HR|, grey levels.", ""]
    lines += [f"- {note}" for note in notes] + ([""] if notes else [])
    lines.append(table.to_markdown())
    if sweep is not None:
        sweep_rows = [{"alpha": f"{alpha:.1f}",
                       **{f"{name} {metric}": sweep[key][name][index]
                          for name in sweep["psnr_y"] for key, metric in (("psnr_y", "PSNR-Y"), ("niqe", "NIQE"))}}
                      for index, alpha in enumerate(sweep["alphas"])]
        lines += ["", f"## Network interpolation: (1 - alpha) SRResNet-MSE + alpha {sweep['gan_variant']}", "",
                  Table(sweep_rows, digits=4).to_markdown()]
    lines += spread_lines(spread)
    (report_dir / "results.md").write_text("\n".join(lines) + "\n")


def _recipe(config: Config) -> str:
    """The phase-2 settings every variant shares, in one sentence."""
    t, l, d = config.train, config.loss, config.data
    discriminator_rate = t.learning_rate if t.discriminator_learning_rate is None else t.discriminator_learning_rate
    return (f"Batch {d.batch_size} of {d.hr_size}-px HR crops, adversarial weight {l.adversarial_weight:g}, "
            f"generator rate {t.learning_rate:g} and discriminator rate {discriminator_rate:g} (divided by "
            f"{t.learning_rate / t.decayed_learning_rate:g} at step {t.gan_decay_step}), discriminator warm-up "
            f"{t.discriminator_warmup_steps} steps (generator on its content loss alone), "
            f"{resolve_precision(t.mixed_precision)} (train.mixed_precision={t.mixed_precision}).")


def add_mos_table(report_dir, db_path) -> list:
    """Adds a blind study's MOS per method (``python -m sr_lib mos``, e.g. on this comparison's outputs) to a written
    report: a section of ``results.md`` and ``"mos"`` in ``results.json``. Returns the table's rows."""
    from sr_lib.mos.report import mos_table

    report_dir = storage.as_path(report_dir)
    rows = mos_table(db_path)
    section = ["", f"## Mean opinion score (blind study {Path(db_path).name}: 1 bad to 5 excellent, 95 % two-way "
                   "bootstrap interval, after BT.500 screening)", "", Table(rows, digits=2).to_markdown()]
    storage.write_text(report_dir / "results.md", (report_dir / "results.md").read_text() + "\n".join(section) + "\n")
    report = json.loads((report_dir / "results.json").read_text())
    report["mos"] = rows
    storage.write_text(report_dir / "results.json", json.dumps(_json_safe(report), indent=2) + "\n")
    return rows
