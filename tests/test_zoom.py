"""zoom: the most detailed window, and rows of equal crops for LR, bicubic, each generator and HR."""

import keras
import numpy as np
import pytest

from sr_lib.evaluation import zoom
from sr_lib.nets.models import make_generator
from sr_lib.evaluation.published import published


def _flat_with_texture(top, left, size=16, shape=(64, 80)):
    image = np.full(shape + (3,), 128, np.uint8)
    rng = np.random.default_rng(0)
    image[top:top + size, left:left + size] = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return image


def test_most_detailed_window_finds_the_texture_on_the_scale_grid():
    image = _flat_with_texture(24, 40)
    assert zoom.most_detailed_window(image, 16) == (24, 40)
    top, left = zoom.most_detailed_window(_flat_with_texture(26, 42), 16, multiple=4)
    assert top % 4 == 0 and left % 4 == 0 and abs(top - 26) <= 2 and abs(left - 42) <= 2
    with pytest.raises(ValueError, match="does not fit"):
        zoom.most_detailed_window(image, 65)


def test_zoom_row_crops_every_method_alike():
    keras.utils.set_random_seed(0)
    generator = make_generator(num_blocks=1, channels=8, scale=4)
    image = _flat_with_texture(24, 40)
    row = zoom.zoom_row(image, 4, [("tiny", generator)], size=16)
    assert [label for label, _ in row] == ["LR", "bicubic", "tiny", "HR"]
    assert row[0][1].shape == (4, 4, 3) and all(crop.shape == (16, 16, 3) for _, crop in row[1:])
    np.testing.assert_array_equal(row[-1][1], image[24:40, 40:56])
    with pytest.raises(ValueError, match="multiple of the scale"):
        zoom.zoom_row(image, 4, [], size=18)
    with pytest.raises(ValueError, match="corner"):
        zoom.zoom_row(image, 4, [], size=16, window=(2, 0))


def test_published_numbers():
    assert published("Set5", "SRResNet") == 32.05 and published("Set14", "bicubic") == 26.00
    assert np.isnan(published("Set14", "SRCNN")) and np.isnan(published("Urban100", "bicubic"))
