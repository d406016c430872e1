"""The two `make bench` scripts' own logic: what they run where (so a slow CPU finishes in minutes) and the ratios the
issue's targets are read from. Their measurements themselves are not asserted: they depend on the machine."""

import keras
import pytest
from repo_scripts import load_script

from sr_lib import losses
from sr_lib.nets.models import make_generator

inference = load_script("benchmarks/inference.py")
training = load_script("benchmarks/training.py")


def _configs(groups):
    return [config for _, configs, _ in groups for config in configs]


def test_onednn_float32_runs_whole_only_from_avx512_up():
    whole = _configs(inference.plan_groups(eigen_default=False, onednn_below_avx512=False, onnx=True))
    below = _configs(inference.plan_groups(eigen_default=True, onednn_below_avx512=True, onnx=True))
    pick = lambda configs: next(c for c in configs if c["engine"] == "onednn" and c["precision"] == "float32")  # noqa: E731
    assert pick(whole)["tile"] == 0
    assert pick(below)["tile"] == "side"  # A whole image would fall back to oneDNN's reference convolution.
    # Eigen's whole image is measured everywhere, so the default always has a whole-image row to be compared with.
    for configs in (whole, below):
        assert {"engine": "eigen", "precision": "float32", "tile": 0} in configs


def test_default_row_uses_upscales_engine_in_a_process_of_its_own():
    for eigen_default in (True, False):
        groups = inference.plan_groups(eigen_default, eigen_default, onnx=False)
        default = [(onednn, configs) for onednn, configs, _ in groups if any(c.get("default") for c in configs)]
        assert default == [(not eigen_default, [{"engine": "eigen" if eigen_default else "onednn",
                                                 "precision": "auto", "tile": "default", "default": True}])]
        # Tiles of the default side run in the process of that engine's whole image, never in the default's.
        sides = [(onednn, c["engine"]) for onednn, configs, _ in groups for c in configs
                 if c.get("beside_default")]
        assert sides == [(not eigen_default, "eigen" if eigen_default else "onednn")]
    assert not any(c["engine"] == "onnxruntime" for c in _configs(inference.plan_groups(False, False, onnx=False)))
    groups = inference.plan_groups(False, False, onnx=True)
    assert [peaks for _, _, peaks in groups].count(True) == 1  # The matmul peaks are measured once.
    assert groups[0][1][0]["precision"] == "mixed_bfloat16"  # Its skip line comes before a slow float32 row.


def _row(engine, precision, tile, rate, **extra):
    return {"engine": engine, "precision": precision, "tile": tile, "context": 12 if tile else None,
            "hr_megapixels_per_second": rate, **extra}


def _ratio(ratios, start):
    return next(value for name, value in ratios.items() if name.startswith(start))


def test_ratios_compare_the_default_with_its_own_whole_image_and_the_fastest():
    # The default ran whole (the photo fits one tile's memory); tiles of the default side pay their borders.
    rows = [_row("onednn", "float32", 0, 0.5), _row("onednn", "mixed_bfloat16", 0, 1.0),
            _row("onednn", "mixed_bfloat16", 432, 0.8), _row("onednn", "mixed_bfloat16", 0, 0.98, default=True),
            _row("eigen", "float32", 0, 0.3), _row("onnxruntime", "float32", 338, 0.25)]
    ratios = inference._ratios(rows)
    assert ratios["default (whole: the image fits one tile's memory) / whole image"] == {
        "ratio": pytest.approx(0.98), "target": 0.85, "met": True}
    assert ratios["tiles at the default side / whole image"] == {"ratio": pytest.approx(0.8), "target": 0.85,
                                                                 "met": False}
    assert _ratio(ratios, "default's engine and precision")["ratio"] == pytest.approx(1.0)
    assert _ratio(ratios, "default / fastest TensorFlow (onednn mixed_bfloat16")["ratio"] == pytest.approx(0.98)
    assert _ratio(ratios, "default / ONNX Runtime (float32, tiles 338+12 px)")["ratio"] == pytest.approx(3.92)


def test_ratios_say_not_measured_when_a_row_did_not_finish():
    rows = [_row("onednn", "float32", 282, None, skipped="timed out after 180 s (stopped)"),
            _row("eigen", "float32", 282, 0.22, default=True), _row("eigen", "float32", 0, 0.26),
            _row("eigen", "float32", 282, None, skipped="same as the default row (this image needs tiles there)")]
    ratios = inference._ratios(rows)
    assert ratios["default (tiled) / whole image"]["ratio"] == pytest.approx(0.22 / 0.26)
    assert ratios["tiles at the default side / whole image"]["ratio"] == pytest.approx(0.22 / 0.26)
    assert inference._ratios([_row("eigen", "float32", 282, 0.2, default=True)])["default (tiled) / whole image"] == {
        "ratio": None, "target": 0.85, "met": None}
    assert inference._ratios([]) == {}


def _tiny_generator():
    generator = make_generator(num_blocks=1, channels=4, scale=4)
    generator.compile(optimizer=keras.optimizers.Adam(1e-4), loss=losses.pixel_mse)
    return generator, training._random_batch(2, 16)


def test_training_rows_stop_early_once_their_time_is_spent():
    generator, batch = _tiny_generator()
    rate, timed = training._time_fit(generator, batch, warmup=1, steps=6, max_seconds=0.0)
    assert timed == 2 and rate > 0  # At least two timed steps, however slow the CPU.
    rate, timed = training._time_fit(generator, batch, warmup=1, steps=6, max_seconds=1e6)
    assert timed == 6


def test_training_bench_refuses_too_few_steps(capsys):
    with pytest.raises(SystemExit):
        training.main(["--steps", "1"])
    assert "--steps" in capsys.readouterr().err
