"""The loss comparison: several generator objectives trained from the same pretrained SRResNet, with the same data,
seed and step budget, then one report (:mod:`sr_lib.training.report`: table with PSNR/SSIM and NIQE, PSNR curves,
image grid, network interpolation, the perception-distortion plane).

Layout of a comparison directory::

    config.json                the base configuration (each variant's own config.json sits in its folder)
    pretrain/                  phase 1, shared by every variant
    variants/<slug>/           one run per variant (phase 2, or MSE-only fine-tuning for the SRResNet row)
    report/results.md|csv|json the table; psnr_curves.png; comparison_grid.png; interpolation.png;
                               perception_distortion.png

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

The variants (``ALL_VARIANTS``): SRResNet-MSE (the control), the paper's SRGAN (VGG54 + modified), and each TF-GAN loss
with the pixel-MSE content loss (the paper's SRGAN-MSE family, meaningful without VGG weights) and with Per-Pix (pixel
MSE + VGG54). ``DEFAULT_VARIANTS`` is the subset ``make demo`` trains in its few CPU minutes; ``--variants all`` runs
every one.

Re-running the same command resumes: finished runs are skipped, interrupted ones continue from their checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

from sr_lib.config import Config, ConfigError
from sr_lib.core import storage
from sr_lib.core.stopwatch import Stopwatch
from sr_lib.evaluation import evaluate as evaluate_lib
from sr_lib.nets.interpolation import check_same_architecture
from sr_lib.nets.saving import load_generator
from sr_lib.training import distribute
from sr_lib.training.distribute import WorkerFailedError, make_strategy
from sr_lib.training.phases import RunResult, build_generator, prepare_data, pretrain, train_gan
# The report's names, re-exported: experiment.write_report, experiment.collapse_status, ... as before the split.
from sr_lib.training.report import (COLLAPSE_CRITERION, COLLAPSE_PSNR_MARGIN_DB, COLLAPSE_STD_RATIO,  # noqa: F401
                                    INTERPOLATION_ALPHAS, INTERPOLATION_PREFERENCE, collapse_status,
                                    interpolation_sweep, label, read_report, write_report)


@dataclass(frozen=True)
class Variant:
    name: str  # Shown in the table and plots.
    slug: str  # Folder name.
    overrides: tuple  # (dotted config key, value) pairs applied to the base config.


# The TF-GAN losses each content loss is paired with: (config name, label, slug suffix). "hinge" is TF-GAN's
# wasserstein_hinge; the slugs of the Per-Pix variants predate the MSE ones and stay as they were.
_ADVERSARIAL = (
    ("modified", "modified", "modified"),
    ("least_squares", "least-squares", "least_squares"),
    ("wasserstein_gp", "Wasserstein-GP", "wasserstein_gp"),
    ("relativistic", "relativistic", "relativistic"),
    ("wasserstein_hinge", "hinge", "hinge"),
)


def _losses(content: str, adversarial: str) -> tuple:
    return (("loss.content", content), ("loss.adversarial", adversarial))


ALL_VARIANTS = (
    Variant("SRResNet (MSE)", "srresnet_mse", _losses("mse", "none")),
    # Pixel MSE + adversarial: the paper's Table 1 "SRGAN-MSE"; needs no VGG weights to mean something.
    *(Variant("SRGAN-MSE (MSE + modified)" if name == "modified" else f"MSE + {text}", f"mse_{suffix}",
              _losses("mse", name)) for name, text, suffix in _ADVERSARIAL),
    Variant("SRGAN (VGG54 + modified)", "vgg54_modified", _losses("vgg54", "modified")),
    *(Variant(f"Per-Pix + {text}", f"perpix_{suffix}", _losses("perpix", name)) for name, text, suffix in _ADVERSARIAL),
)
_BY_SLUG = {variant.slug: variant for variant in ALL_VARIANTS}
# make demo's list, within its CPU minutes: the control, two pixel + adversarial losses (the paper's and ESRGAN's),
# and one Per-Pix (a perceptual result with ImageNet VGG weights; labelled "random VGG" without them).
DEFAULT_VARIANTS = tuple(_BY_SLUG[slug] for slug in ("srresnet_mse", "mse_modified", "mse_relativistic",
                                                     "perpix_modified"))


SEED_MARK = "@seed"  # "mse_modified@seed1": that variant again with train.seed=1, for the seed-to-seed spread.


def seed_repeat(variant: Variant, seed: int) -> Variant:
    """The same variant trained with another ``train.seed`` (another discriminator init and crop stream; the same
    pretrained generator and validation crops): the report measures the seed-to-seed spread from such pairs."""
    return Variant(f"{variant.name} (seed {seed})", f"{variant.slug}_seed{seed}",
                   variant.overrides + (("train.seed", seed),))


def get_variants(slugs=None) -> tuple:
    """The default variants, every variant for ``["all"]``, or those named by slug, where ``slug@seedN`` repeats a
    variant with ``train.seed=N`` (ValueError listing the valid slugs)."""
    if not slugs:
        return DEFAULT_VARIANTS
    if list(slugs) == ["all"]:
        return ALL_VARIANTS
    variants = []
    for text in slugs:
        slug, mark, seed = text.partition(SEED_MARK)
        if slug not in _BY_SLUG:
            raise ValueError(f"unknown variant {slug!r}; choose from all, {', '.join(_BY_SLUG)} (a seed repeat: "
                             f"SLUG{SEED_MARK}N)")
        if mark and not seed.isdigit():
            raise ValueError(f"variant {text!r}: the seed after {SEED_MARK!r} must be a whole number, e.g. "
                             f"{slug}{SEED_MARK}1")
        variants.append(seed_repeat(_BY_SLUG[slug], int(seed)) if mark else _BY_SLUG[slug])
    slugs_seen = [variant.slug for variant in variants]
    duplicate = next((slug for slug in slugs_seen if slugs_seen.count(slug) > 1), None)
    if duplicate:
        raise ValueError(f"variant {duplicate!r} is listed twice")
    return tuple(variants)


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
    same_seed = [v.slug for v in variants if dict(v.overrides).get("train.seed") == config.train.seed]
    if same_seed:
        raise ConfigError(f"variant {same_seed[0]}: a seed repeat needs a seed other than train.seed="
                          f"{config.train.seed}, which every other variant uses")
    if pretrained is not None:
        pretrained = storage.as_path(pretrained)
        _check_pretrained(config, pretrained)
    elif config.train.pretrain_steps == 0:
        raise ConfigError("train.pretrain_steps is 0 and no pretrained generator was given: pass --pretrained PATH "
                          "(e.g. saved_models/srresnet_x4/srresnet_x4.keras) or set train.pretrain_steps")
    stopwatch = Stopwatch()
    with stopwatch.stage("data"):
        benchmark_sets = [(evaluate_lib.benchmark_name(folder), evaluate_lib.load_benchmark(folder))
                          for folder in benchmarks]
        train_data = prepare_data(config)
    if pretrained is None:
        with stopwatch.stage("phase 1"):
            base = pretrain(config, out_dir / "pretrain", train_data, verbose=verbose)  # Refuses a different config.
    else:
        base = RunResult(pretrained.parent, 0, float("nan"), -1, pretrained, pretrained, None)
    if chief:
        with storage.gfile_errors(out_dir / "config.json"):
            config.to_json(out_dir / "config.json")
    runs = []
    for variant in variants:
        variant_config = config.replace(**dict(variant.overrides), name=f"{config.name}_{variant.slug}")
        with stopwatch.stage("training"):  # A finished run that is resumed takes no time here.
            result = train_gan(variant_config, out_dir / "variants" / variant.slug, base.final_path, train_data,
                               verbose=verbose)
        runs.append((variant, result))
    report_dir = out_dir / "report"
    report = None
    if chief:
        report = write_report(report_dir, config, train_data, runs, benchmark_sets, pretrained=pretrained,
                              stopwatch=stopwatch)
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
