"""The comparison report's perceptual axis (sr_lib.training.report, sr_lib.evaluation.plots): NIQE columns with an HR
row, the perception-distortion figure with one point per variant, and the pixel + adversarial variants at ci size."""

import json
import math

import keras
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from sr_lib.cli import main
from sr_lib.config import get_preset
from sr_lib.evaluation import niqe as niqe_lib
from sr_lib.evaluation import plots
from sr_lib.training import experiment, phases as training

MSE_GAN_SLUGS = ["mse_modified", "mse_least_squares", "mse_wasserstein_gp", "mse_relativistic", "mse_hinge"]


def _scatter_points(figure) -> dict:
    """Legend label -> (x, y) of every one-point scatter drawn on the figure's axes."""
    return {collection.get_label(): tuple(collection.get_offsets()[0]) for collection in figure.axes[0].collections}


# ------------------------------------------------------------------ the figure


def test_perception_distortion_figure_plots_each_point_the_references_and_the_sweep(tmp_path):
    points = {"SRResNet (MSE)": (31.2, 7.0), "SRGAN-MSE (MSE + modified)": (30.1, 5.9)}
    sweep = ("interpolation", [0.0, 0.5, 1.0], [31.2, 30.7, 30.1], [7.0, 6.4, 5.9])
    figure = plots.perception_distortion_figure(points, bicubic=(28.4, 8.5), hr_niqe=5.4, sweep=sweep)
    assert _scatter_points(figure) == {**points, "bicubic": (28.4, 8.5)}
    axes = figure.axes[0]
    lines = {line.get_label(): line for line in axes.get_lines()}
    assert list(lines["interpolation"].get_xdata()) == sweep[2] and list(lines["interpolation"].get_ydata()) == sweep[3]
    hr = next(line for label, line in lines.items() if label.startswith("HR"))
    assert list(hr.get_ydata()) == [5.4, 5.4]  # A horizontal line: HR has no PSNR against itself.
    assert "lower = better" in axes.get_ylabel() and "PSNR-Y" in axes.get_xlabel()
    assert sorted(text.get_text() for text in axes.texts if text.get_text().startswith("α")) == ["α=0", "α=1"]
    path = plots.plot_perception_distortion(points, tmp_path / "pd" / "plane.png", hr_niqe=5.4, sweep=sweep)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 300


@pytest.mark.parametrize("kwargs, message", [
    ({"points": {}}, "at least one point"),
    ({"points": {"a": (1.0,)}}, "point 'a'"),
    ({"points": {"a": (1.0, 2.0)}, "bicubic": "x"}, "bicubic"),
    ({"points": {"a": (1.0, 2.0)}, "sweep": ("s", [0, 1], [1.0], [2.0, 3.0])}, "sweep has 2 alphas"),
])
def test_perception_distortion_figure_refuses_bad_input_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plots.perception_distortion_figure(**kwargs)


# ------------------------------------------------------------------ the variants


def test_every_tf_gan_loss_has_a_pixel_content_variant_and_the_old_slugs_stay():
    variants = {variant.slug: dict(variant.overrides) for variant in experiment.get_variants(["all"])}
    assert len(variants) == len(experiment.ALL_VARIANTS) == 12
    for slug, adversarial in zip(MSE_GAN_SLUGS, ["modified", "least_squares", "wasserstein_gp", "relativistic",
                                                 "wasserstein_hinge"]):
        assert variants[slug] == {"loss.content": "mse", "loss.adversarial": adversarial}
    assert variants["srresnet_mse"] == {"loss.content": "mse", "loss.adversarial": "none"}
    assert variants["vgg54_modified"] == {"loss.content": "vgg54", "loss.adversarial": "modified"}
    for slug in ("perpix_modified", "perpix_least_squares", "perpix_wasserstein_gp", "perpix_relativistic",
                 "perpix_hinge"):
        assert variants[slug]["loss.content"] == "perpix"
    assert [v.slug for v in experiment.get_variants()] == ["srresnet_mse", "mse_modified", "mse_relativistic",
                                                           "perpix_modified"]
    assert next(v.name for v in experiment.ALL_VARIANTS if v.slug == "mse_modified").startswith("SRGAN-MSE")
    with pytest.raises(ValueError, match="choose from all, srresnet_mse"):
        experiment.get_variants(["mse_nope"])


@pytest.fixture(scope="module")
def large_benchmark(tmp_path_factory):
    """A benchmark set NIQE can score (200 px: two 96-px blocks after a 4-px border) and one image it cannot."""
    folder = tmp_path_factory.mktemp("Set3", numbered=False) / "HR"
    folder.mkdir()
    Image.fromarray(skdata.astronaut()[100:300, 150:350]).save(folder / "astronaut.png")
    Image.fromarray(skdata.coffee()[100:300, 200:400]).save(folder / "coffee.png")
    Image.fromarray(skdata.chelsea()[:60, :60]).save(folder / "small.png")
    return folder


@pytest.fixture(scope="module")
def mse_gan_comparison(tmp_path_factory, large_benchmark):
    """Every pixel + adversarial variant and SRResNet-MSE, 2 steps each at ci size from one pretrained generator; the
    figure the report drew is kept for inspection."""
    tmp = tmp_path_factory.mktemp("cmp")
    keras.utils.set_random_seed(3)
    training.build_generator(get_preset("ci")).save(tmp / "g.keras")
    figures, original = [], plots.perception_distortion_figure

    def recording(*args, **kwargs):
        figures.append(original(*args, **kwargs))
        return figures[-1]

    plots.perception_distortion_figure = recording
    try:
        code = main(["compare", "--preset", "ci", "--out", str(tmp / "cmp"), "--pretrained", str(tmp / "g.keras"),
                     "--set", "train.gan_steps=2", "--benchmark", str(large_benchmark),
                     "--variants", ",".join(["srresnet_mse"] + MSE_GAN_SLUGS)])
    finally:
        plots.perception_distortion_figure = original
    assert code == 0
    return dict(out=tmp / "cmp", report=json.loads((tmp / "cmp" / "report" / "results.json").read_text()),
                figures=figures)


def test_the_pixel_adversarial_variants_train_and_get_a_row_each(mse_gan_comparison):
    report, out = mse_gan_comparison["report"], mse_gan_comparison["out"]
    assert [row["method"] for row in report["rows"]] == ["bicubic", "SRResNet (MSE)", "SRGAN-MSE (MSE + modified)",
                                                         "MSE + least-squares", "MSE + Wasserstein-GP",
                                                         "MSE + relativistic", "MSE + hinge"]
    assert report["random_vgg"] is False  # No VGG anywhere: these rows mean what they say offline.
    for slug in MSE_GAN_SLUGS:
        log = training.read_log(out / "variants" / slug)
        assert [row["step"] for row in log] == [2] and math.isfinite(log[-1]["d_real_logit"])
    # With a sweep candidate that needs no VGG, it is the one swept.
    assert report["interpolation"]["gan_variant"] == "SRGAN-MSE (MSE + modified)"


def test_the_report_has_niqe_columns_an_hr_row_and_says_once_where_niqe_is_undefined(mse_gan_comparison,
                                                                                     large_benchmark):
    report = mse_gan_comparison["report"]
    for row in report["rows"]:
        assert row["validation/niqe"] is None  # ci's 32-px crops: too small, NaN in the table.
        assert row["Set3/niqe"] > 0
    hr = report["hr_row"]
    assert hr["method"] == "HR" and hr["Set3/psnr_y"] is None and hr["Set3/ssim_y"] is None
    # HR's NIQE is the mean over the two images NIQE can score, with the protocol's border.
    expected = np.mean([niqe_lib.niqe(np.asarray(Image.open(large_benchmark / f"{name}.png")), border=4)
                        for name in ("astronaut", "coffee")])
    assert hr["Set3/niqe"] == pytest.approx(expected, abs=1e-4)
    assert report["rows"][0]["Set3/niqe"] > hr["Set3/niqe"]  # x4 bicubic is less natural than the HR images.
    table = (mse_gan_comparison["out"] / "report" / "results.md").read_text()
    assert "| HR | — |" in table and "niqe" in table
    assert table.count("NIQE on the validation crops: undefined") == 1
    assert table.count("NIQE on Set3: undefined for 1 of 3 images (small") == 1
    assert "\nHR," in (mse_gan_comparison["out"] / "report" / "results.csv").read_text()
    sweep = report["interpolation"]
    assert len(sweep["niqe"]["Set3"]) == len(sweep["alphas"]) and all(value > 0 for value in sweep["niqe"]["Set3"])
    assert sweep["niqe"]["Set3"][0] == pytest.approx(report["rows"][1]["Set3/niqe"], abs=1e-3)


def test_the_perception_distortion_figure_has_one_point_per_variant(mse_gan_comparison):
    report, figures = mse_gan_comparison["report"], mse_gan_comparison["figures"]
    assert report["perception_distortion"] == str(mse_gan_comparison["out"] / "report" / "perception_distortion.png")
    with Image.open(report["perception_distortion"]) as image:
        assert image.format == "PNG"
    assert len(figures) == 1
    plotted = _scatter_points(figures[0])
    expected = {row["method"]: (row["Set3/psnr_y"], row["Set3/niqe"]) for row in report["rows"]}
    assert plotted == expected  # Every variant and bicubic, at its table values on the benchmark set.
    assert report["perception_distortion_points"]["dataset"] == "Set3"
    axes = figures[0].axes[0]
    hr_line = next(line for line in axes.get_lines() if line.get_label().startswith("HR"))
    assert hr_line.get_ydata()[0] == report["hr_row"]["Set3/niqe"]
    sweep_line = next(line for line in axes.get_lines() if line.get_label().startswith("interpolation"))
    assert list(sweep_line.get_ydata()) == report["interpolation"]["niqe"]["Set3"]


def test_the_report_says_where_the_commands_time_went(mse_gan_comparison):
    timings = mse_gan_comparison["report"]["timings"]
    stages = timings["seconds"]
    # Every stage ran: six variants trained, each method evaluated, the sweep, the figures.
    assert list(stages) == ["data", "training", "evaluation", "interpolation sweep", "figures"]
    assert all(seconds > 0 for seconds in stages.values())
    # Stages do not overlap, so they cannot add up to more than the whole command.
    assert sum(stages.values()) <= timings["total_seconds"]
    assert timings["cpu"] and timings["summary"].startswith("time: data ")


@pytest.fixture(scope="module")
def seed_repeat_comparison(tmp_path_factory, large_benchmark):
    tmp = tmp_path_factory.mktemp("seeds")
    keras.utils.set_random_seed(4)
    training.build_generator(get_preset("ci")).save(tmp / "g.keras")
    code = main(["compare", "--preset", "ci", "--out", str(tmp / "cmp"), "--pretrained", str(tmp / "g.keras"),
                 "--set", "train.gan_steps=2", "--benchmark", str(large_benchmark),
                 "--variants", "srresnet_mse,mse_modified,mse_modified@seed1"])
    assert code == 0
    return dict(out=tmp / "cmp", report=json.loads((tmp / "cmp" / "report" / "results.json").read_text()))


def test_a_seed_repeat_trains_with_its_seed_and_the_report_measures_the_spread(seed_repeat_comparison):
    report, out = seed_repeat_comparison["report"], seed_repeat_comparison["out"]
    assert json.loads((out / "variants" / "mse_modified_seed1" / "config.json").read_text())["train"]["seed"] == 1
    rows = {row["method"]: row for row in report["rows"]}
    base, repeat = rows["SRGAN-MSE (MSE + modified)"], rows["SRGAN-MSE (MSE + modified) (seed 1)"]
    spread = report["seed_spread"]
    column = "Set3/niqe"
    assert spread["spread"][column] == pytest.approx(abs(base[column] - repeat[column]), abs=1e-9)
    assert spread["spread"][column] > 0  # Another discriminator init and crop stream: another result.
    # Only the adversarial variant that is not a repeat is judged against the control, on each NIQE column.
    judged = [item for item in spread["separation"] if item["column"] == column]
    assert [item["method"] for item in judged] == ["SRGAN-MSE (MSE + modified)"]
    difference = base[column] - rows["SRResNet (MSE)"][column]
    assert judged[0]["difference"] == pytest.approx(difference, abs=1e-4)
    assert judged[0]["separates"] == (abs(difference) > spread["spread"][column])
    text = (out / "report" / "results.md").read_text()
    assert "## Seed-to-seed spread, and separation from the control" in text and "discriminator warm-up 0" in text


@pytest.mark.parametrize("variants, message", [
    (["mse_modified@seedx"], "must be a whole number"),
    (["mse_modified", "mse_modified"], "listed twice"),
    (["nope@seed1"], "unknown variant 'nope'"),
])
def test_bad_variant_lists_are_refused_by_name(variants, message):
    with pytest.raises(ValueError, match=message):
        experiment.get_variants(variants)


def test_a_seed_repeat_with_the_base_seed_is_refused(tmp_path):
    with pytest.raises(ValueError, match="seed other than train.seed=0"):
        experiment.run_comparison(get_preset("ci"), tmp_path / "cmp", experiment.get_variants(["mse_modified@seed0"]),
                                  pretrained=tmp_path / "missing.keras")


def test_the_report_zooms_into_the_first_benchmark_sets_images(mse_gan_comparison, large_benchmark):
    assert np.asarray(Image.open(mse_gan_comparison["report"]["zoomed_crops"])).ndim == 3
    from sr_lib.evaluation.evaluate import load_benchmark
    from sr_lib.training import report as report_lib

    generator = training.build_generator(get_preset("ci"))
    rows, titles = report_lib.zoomed_rows(load_benchmark(large_benchmark), [("tiny", generator)], scale=4)
    assert titles == ["astronaut", "coffee", "small"]  # Every image gets a row, the 60-px one too.
    assert [label for label, _ in rows[0]] == ["LR", "bicubic", "tiny", "HR"]
    # The window is 96 HR px where it fits, and shrinks to the 60-px image (a multiple of the scale) where not.
    assert [row[-1][1].shape[:2] for row in rows] == [(96, 96), (96, 96), (60, 60)]
    assert rows[2][0][1].shape[:2] == (15, 15)  # Its LR window: 60 / 4.


def test_publishing_a_comparison_copies_the_report_and_configs_but_no_weights(seed_repeat_comparison, tmp_path):
    from repo_scripts import load_script

    publish = load_script("scripts/publish_comparison.py")
    out = tmp_path / "results" / "cmp"
    publish.main([str(seed_repeat_comparison["out"]), str(out)])
    names = {str(path.relative_to(out)) for path in out.rglob("*") if path.is_file()}
    assert {"results.md", "results.json", "perception_distortion.png", "zoomed_crops.png", "config.json",
            "variants/mse_modified_seed1/config.json", "variants/mse_modified_seed1/log.csv"} <= names
    assert not any(name.endswith((".keras", ".h5", ".npz")) for name in names)  # No weights, no optimizer state.
    report = json.loads((out / "results.json").read_text())
    assert report["table"] == f"{out}/results.md" and report["zoomed_crops"] == f"{out}/zoomed_crops.png"
    with pytest.raises(SystemExit, match="not found"):
        publish.main([str(tmp_path / "nothing"), str(tmp_path / "x")])
