"""Tests for sr_lib.evaluation.plots: PNG files are written where asked, with the expected layout, and bad input is refused."""

import numpy as np
import pytest
from PIL import Image

from sr_lib.evaluation import plots


def _open_png(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def _image(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def test_plot_psnr_curves_writes_a_png_in_new_folders(tmp_path):
    curves = {
        "SRResNet": ([0, 100, 200], [22.0, 25.5, 26.1]),
        "SRGAN-VGG54 (random VGG)": ([200], [24.8]),
    }
    path = plots.plot_psnr_curves(curves, tmp_path / "a" / "b" / "psnr.png", baseline=("bicubic", 23.4), title="x4")
    assert path == str(tmp_path / "a" / "b" / "psnr.png")
    pixels = _open_png(path)
    height, width, _ = pixels.shape
    assert 1.2 < width / height < 2.0  # a 7x4.5 inch figure, trimmed to its content
    assert pixels.std() > 10  # something was drawn, not a blank canvas


def test_save_image_grid_lays_out_equal_cells(tmp_path):
    lr, hr = _image(8, 8), _image(32, 32, seed=1)
    row = [("LR", lr), ("bicubic", hr), ("SRResNet", hr), ("HR", hr)]
    one_row = _open_png(plots.save_image_grid([row], tmp_path / "one_row.png", cell_inches=1.0))
    assert 3.0 < one_row.shape[1] / one_row.shape[0] < 5.0

    grey = _image(16, 24, seed=2)[..., 0]
    two_rows = [row[:2], [("grey", grey), ("tall", _image(40, 20, seed=3))]]
    square = _open_png(plots.save_image_grid(two_rows, tmp_path / "square.png", titles=["a", "b"], cell_inches=1.0))
    assert 0.6 < square.shape[1] / square.shape[0] < 1.6


def test_save_image_grid_default_cells_show_images_at_full_size(tmp_path):
    # A magenta image, so that its drawn extent can be found in the figure.
    magenta = np.zeros((300, 400, 3), np.uint8)
    magenta[..., 0] = magenta[..., 2] = 255
    row = [("LR", _image(75, 100)), ("HR", magenta)]
    pixels = _open_png(plots.save_image_grid([row], tmp_path / "big.png")).astype(int)
    rows, columns = np.nonzero((pixels[..., 0] > 250) & (pixels[..., 1] < 5) & (pixels[..., 2] > 250))
    assert rows.max() - rows.min() + 1 >= 300
    assert columns.max() - columns.min() + 1 >= 400


@pytest.mark.parametrize("curves", [{}, {"a": ([1, 2], [3.0])}, {"a": ([], [])}, {"a": 5}])
def test_plot_psnr_curves_bad_input(tmp_path, curves):
    with pytest.raises(ValueError):
        plots.plot_psnr_curves(curves, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_plot_psnr_curves_bad_baseline(tmp_path):
    with pytest.raises(ValueError, match="baseline"):
        plots.plot_psnr_curves({"a": ([1], [2.0])}, tmp_path / "bad.png", baseline=25.0)


@pytest.mark.parametrize(
    "rows, titles, match",
    [
        ([], None, "non-empty"),
        ([[]], None, "non-empty"),
        ([[("HR", _image(8, 8))]], ["a", "b"], "2 titles for 1 rows"),
        ([[("SR", np.zeros((8, 8, 3), np.float32))]], None, "'SR'.*uint8"),
        ([[("SR", np.zeros((2, 8, 8, 3), np.uint8))]], None, "'SR'.*uint8"),
        ([[_image(8, 8)]], None, "pairs"),
    ],
)
def test_save_image_grid_bad_input(tmp_path, rows, titles, match):
    with pytest.raises(ValueError, match=match):
        plots.save_image_grid(rows, tmp_path / "bad.png", titles=titles)


def test_plot_logit_curves_one_panel_per_run(tmp_path):
    runs = {f"variant {index}": ([20, 40, 60], [1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]) for index in range(4)}
    pixels = _open_png(plots.plot_logit_curves(runs, tmp_path / "logits.png"))
    one = _open_png(plots.plot_logit_curves(dict(list(runs.items())[:1]), tmp_path / "one.png"))
    assert pixels.shape[0] > 1.6 * one.shape[0]  # 4 runs: two rows of three panels.
    with pytest.raises(ValueError, match="equal lengths"):
        plots.plot_logit_curves({"x": ([1, 2], [1.0], [1.0, 2.0])}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="at least one run"):
        plots.plot_logit_curves({}, tmp_path / "none.png")


def test_plot_bars_draws_groups(tmp_path):
    values = {"A": {"baby": 1.5, "bird": 2.0}, "B": {"baby": -0.5, "bird": 0.2}}
    pixels = _open_png(plots.plot_bars(values, tmp_path / "bars.png", ylabel="gain (dB)"))
    assert pixels.std() > 10
    with pytest.raises(ValueError, match="non-empty series"):
        plots.plot_bars({"A": {}}, tmp_path / "bad.png", ylabel="x")
