"""Zoomed visual comparisons: the same small window of LR, bicubic, each model's SR and HR, side by side.

Differences between super-resolution methods are a few pixels wide, invisible on a whole image shrunk to a notebook
cell. The window defaults to the most detailed part of the image (the largest luma gradient energy), where methods
differ most; SR is computed on the whole image and then cropped, so every method sees the context it would in use.
"""

from __future__ import annotations

import numpy as np

from sr_lib.core import ranges
from sr_lib.evaluation import metrics
from sr_lib.data import bicubic_upscale
from sr_lib.evaluation.evaluate import make_lr, super_resolve


def most_detailed_window(image_uint8, size: int, multiple: int = 1) -> tuple[int, int]:
    """(top, left) of the ``size x size`` window with the largest luma gradient energy, both multiples of
    ``multiple`` (the scale, so that the window maps onto whole LR pixels)."""
    image = np.asarray(image_uint8)
    height, width = image.shape[:2]
    if size > min(height, width):
        raise ValueError(f"a {size}x{size} window does not fit an image of {height}x{width}")
    luma = metrics.rgb_to_y(ranges.uint8_to_unit(image)).numpy()[..., 0].astype(np.float64)
    energy = np.zeros_like(luma)
    energy[:, 1:] += np.diff(luma, axis=1) ** 2
    energy[1:, :] += np.diff(luma, axis=0) ** 2
    # Window sums for every top-left corner from one 2-D cumulative sum.
    table = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    tops, lefts = np.arange(0, sums.shape[0], multiple), np.arange(0, sums.shape[1], multiple)
    grid = sums[np.ix_(tops, lefts)]
    row, column = np.unravel_index(np.argmax(grid), grid.shape)
    return int(tops[row]), int(lefts[column])


def zoom_row(hr_uint8, scale: int, named_generators, size: int = 64, window=None) -> list:
    """One image-grid row (for ``plots.save_image_grid``): LR, bicubic, each generator's SR and HR, cropped to the
    same ``size x size`` HR window (the LR crop is ``size / scale`` pixels, shown enlarged).

    Args:
        hr_uint8: the HR image, uint8 (H, W, 3); LR is made from it as in evaluation.
        scale: the upscaling factor.
        named_generators: (label, generator) pairs; a generator takes LR in [0, 1] (Keras model or Upscaler).
        size: the window side in HR pixels, a multiple of ``scale``.
        window: (top, left) in HR pixels, multiples of ``scale``; default :func:`most_detailed_window`.
    """
    if size % scale:
        raise ValueError(f"the window size {size} must be a multiple of the scale {scale}")
    hr_unit, lr_unit = make_lr(np.asarray(hr_uint8), scale)
    hr = ranges.unit_to_uint8(hr_unit).numpy()
    top, left = most_detailed_window(hr, size, scale) if window is None else window
    if top % scale or left % scale:
        raise ValueError(f"the window corner ({top}, {left}) must be a multiple of the scale {scale}")
    crop = np.s_[top:top + size, left:left + size]
    lr_crop = np.s_[top // scale:(top + size) // scale, left // scale:(left + size) // scale]
    row = [("LR", ranges.unit_to_uint8(lr_unit).numpy()[lr_crop]),
           ("bicubic", ranges.unit_to_uint8(bicubic_upscale(lr_unit, scale)).numpy()[crop])]
    row += [(label, np.asarray(super_resolve(generator, lr_unit))[crop]) for label, generator in named_generators]
    return row + [("HR", hr[crop])]
