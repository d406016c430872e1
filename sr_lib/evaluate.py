"""Evaluation of generators and of the bicubic baseline on whole images, with the paper's protocol.

HR is cropped to a multiple of the scale, LR is made from it by the same antialiased bicubic downsampling as training
(``sr_lib.data.bicubic_downsample``), SR is rounded to uint8 as a saved image would be, and PSNR/SSIM are measured on
Y (ITU-R BT.601) with ``scale`` border pixels removed, and on RGB with the same border.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from sr_lib import metrics, ranges
from sr_lib.data import bicubic_downsample, bicubic_upscale, find_images, load_images

METRIC_NAMES = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "color_shift")
# color_shift (largest |per-channel mean of SR - HR|, grey levels) is summarised by its worst image, not its mean:
# one cast image is a defect that an average would hide.
_WORST_CASE = {"color_shift": np.max}


@dataclass
class Evaluation:
    """Per-image and mean metrics of one method on one image set."""

    method: str
    dataset: str
    per_image: list = field(default_factory=list)  # dicts: index, name, and each metric.

    @property
    def means(self) -> dict:
        return {key: float(_WORST_CASE.get(key, np.mean)([row[key] for row in self.per_image])) for key in METRIC_NAMES}


def benchmark_name(folder) -> str:
    """A table label for an image folder: ``.../Set5/HR`` -> ``Set5``, ``.../Set14`` -> ``Set14``."""
    path = Path(folder).resolve()
    return path.parent.name if path.name.lower() in ("hr", "gt", "images") else path.name


def load_benchmark(folder):
    """(names, images) of a folder of HR images; unreadable files are skipped with one warning, and the names stay
    aligned with the images that were decoded."""
    paths = find_images(folder)
    images, problems = load_images(paths)
    bad = {path for path, _ in problems}
    return [Path(path).stem for path in paths if path not in bad], images


def _measure(hr_unit, sr_unit, scale):
    """The four numbers of the protocol, on Y and RGB with a border of ``scale`` pixels, and the colour shift."""
    return {"psnr_y": metrics.psnr_y(hr_unit, sr_unit, crop_border=scale),
            "ssim_y": metrics.ssim_y(hr_unit, sr_unit, crop_border=scale),
            "psnr_rgb": metrics.psnr_rgb(hr_unit, sr_unit, crop_border=scale),
            "ssim_rgb": metrics.ssim_rgb(hr_unit, sr_unit, crop_border=scale),
            "color_shift": metrics.color_shift(hr_unit, sr_unit, crop_border=scale)}


def load_generator(path):
    """A generator saved as ``.keras``, loaded with ``safe_mode=True``; a clear ValueError if it can't be."""
    import keras  # sr_lib/__init__ has registered the custom layers the file refers to.

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file not found: {path}")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises TypeError/ValueError/OSError/zipfile errors for bad files.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"could not load the model {path} (expected a .keras generator saved by sr_lib): "
                         f"{first_line[:300]}") from None


def make_lr(hr_uint8, scale: int):
    """HR uint8 (H, W, 3) -> (HR in [0, 1] cropped to a multiple of ``scale``, LR in [0, 1])."""
    height, width = (hr_uint8.shape[0] // scale) * scale, (hr_uint8.shape[1] // scale) * scale
    if height == 0 or width == 0:
        raise ValueError(f"image of shape {hr_uint8.shape} is smaller than the scale {scale}")
    hr_unit = ranges.uint8_to_unit(hr_uint8[:height, :width])
    return hr_unit, bicubic_downsample(hr_unit, scale)


def super_resolve(generator, lr_unit) -> tf.Tensor:
    """One LR image in [0, 1] (H, W, 3) -> SR as uint8, through a fully convolutional generator."""
    sr = generator(tf.convert_to_tensor(lr_unit)[tf.newaxis], training=False)[0]
    return ranges.hr_to_uint8(sr)


def evaluate_images(images, scale: int, generator=None, method="bicubic", dataset="", names=None) -> Evaluation:
    """Metrics of ``generator`` (or bicubic upscaling when None) on a list of HR uint8 images.

    Args:
        images: HR images, uint8 (H, W, 3), any sizes.
        scale: the upscaling factor; also the border removed before measuring.
        generator: a Keras generator taking LR in [0, 1]; None evaluates bicubic upscaling.
        method, dataset: labels for the table.
        names: optional image names for the per-image rows.
    """
    result = Evaluation(method, dataset)
    for index, image in enumerate(images):
        hr_unit, lr_unit = make_lr(np.asarray(image), scale)
        if generator is None:
            sr_uint8 = ranges.unit_to_uint8(bicubic_upscale(lr_unit, scale))
        else:
            sr_uint8 = super_resolve(generator, lr_unit)
        values = _measure(hr_unit, ranges.uint8_to_unit(sr_uint8), scale)
        result.per_image.append({"index": index, "name": names[index] if names else str(index),
                                 **{key: float(value) for key, value in values.items()}})
    return result


def evaluate_arrays(lr_unit, hr, scale: int, generator=None, method="bicubic", dataset="validation",
                    batch_size=8) -> Evaluation:
    """Metrics on prepared (LR in [0, 1], HR in [-1, 1]) batches such as a run's fixed validation crops."""
    result = Evaluation(method, dataset)
    hr_unit = ranges.hr_to_unit(hr)
    if generator is None:
        sr_uint8 = ranges.unit_to_uint8(bicubic_upscale(lr_unit, scale))
    else:
        sr_uint8 = ranges.hr_to_uint8(generator.predict(lr_unit, batch_size=batch_size, verbose=0))
    values = _measure(hr_unit, ranges.uint8_to_unit(sr_uint8), scale)
    values = {key: np.atleast_1d(np.asarray(value, dtype=np.float64)) for key, value in values.items()}
    for index in range(len(hr_unit)):
        result.per_image.append({"index": index, "name": str(index),
                                 **{key: float(values[key][index]) for key in METRIC_NAMES}})
    return result


def comparison_rows(lr_unit, hr, scale: int, named_generators) -> list:
    """Image-grid rows, one per crop: LR, bicubic, each named generator's SR, HR (uint8), for ``plots.save_image_grid``.

    Args:
        lr_unit: LR crops in [0, 1], (N, h, w, 3).
        hr: the matching HR crops in [-1, 1].
        scale: the upscaling factor.
        named_generators: (label, generator) pairs, in column order.
    """
    lr_uint8 = ranges.unit_to_uint8(lr_unit).numpy()
    bicubic = ranges.unit_to_uint8(bicubic_upscale(lr_unit, scale)).numpy()
    outputs = [(name, ranges.hr_to_uint8(generator.predict(lr_unit, verbose=0)).numpy())
               for name, generator in named_generators]
    hr_uint8 = ranges.hr_to_uint8(hr).numpy()
    return [[("LR", lr_uint8[i]), ("bicubic", bicubic[i])] + [(name, sr[i]) for name, sr in outputs]
            + [("HR", hr_uint8[i])] for i in range(len(lr_uint8))]
