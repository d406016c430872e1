"""Evaluation of generators and of the bicubic baseline on whole images, with the paper's protocol.

HR is cropped to a multiple of the scale, LR is made from it by the same antialiased bicubic downsampling as training
(``sr_lib.data.bicubic_downsample``), SR is rounded to uint8 as a saved image would be, and PSNR/SSIM are measured on
Y (ITU-R BT.601) with ``scale`` border pixels removed, and on RGB with the same border.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from sr_lib.core import ranges, storage
from sr_lib.nets.saving import load_generator, model_scale
from sr_lib.evaluation import metrics
from sr_lib.evaluation.tables import Table
from sr_lib.data import bicubic_downsample, bicubic_upscale, find_images, load_images, png_bytes

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

    def gains_over(self, baseline: "Evaluation", metric="psnr_y") -> dict:
        """Image name -> this method's ``metric`` minus ``baseline``'s on that image (e.g. the PSNR-Y gain over
        bicubic), in this evaluation's order; both must hold the same images."""
        theirs = {row["name"]: row[metric] for row in baseline.per_image}
        if sorted(theirs) != sorted(row["name"] for row in self.per_image):
            raise ValueError(f"{self.method} and {baseline.method} were evaluated on different images")
        return {row["name"]: row[metric] - theirs[row["name"]] for row in self.per_image}


def benchmark_name(folder) -> str:
    """A table label for an image folder: ``.../Set5/HR`` -> ``Set5``, ``.../Set14`` -> ``Set14`` (also for a URL,
    ``gs://bucket/Set5/HR`` -> ``Set5``)."""
    path = storage.as_path(folder)
    path = path if isinstance(path, storage.URLPath) else path.resolve()
    return path.parent.name if path.name.lower() in ("hr", "gt", "images") else path.name


def load_benchmark(folder):
    """(names, images) of a folder of HR images (a local folder or a ``tf.io.gfile`` URL); unreadable files are skipped
    with one warning, and the names stay aligned with the images that were decoded.

    Raises:
        ValueError: a missing or empty folder; OSError: naming the folder, when its store cannot be read.
    """
    with storage.gfile_errors(folder):
        paths = find_images(folder)
        images, problems = load_images(paths)
    bad = {path for path, _ in problems}
    return [storage.as_path(path).stem for path in paths if path not in bad], images


def _measure(hr_unit, sr_unit, scale):
    """The four numbers of the protocol, on Y and RGB with a border of ``scale`` pixels, and the colour shift."""
    return {"psnr_y": metrics.psnr_y(hr_unit, sr_unit, crop_border=scale),
            "ssim_y": metrics.ssim_y(hr_unit, sr_unit, crop_border=scale),
            "psnr_rgb": metrics.psnr_rgb(hr_unit, sr_unit, crop_border=scale),
            "ssim_rgb": metrics.ssim_rgb(hr_unit, sr_unit, crop_border=scale),
            "color_shift": metrics.color_shift(hr_unit, sr_unit, crop_border=scale)}


def load_model(path):
    """A generator to evaluate: a ``.keras`` file (:func:`load_generator`) or a SavedModel folder written by
    ``python -m sr_lib export`` (an :class:`sr_lib.inference.upscaler.Upscaler`, called like the Keras generator); either may be
    a ``tf.io.gfile`` URL."""
    with storage.gfile_errors(path):
        is_dir = storage.as_path(path).is_dir()
    if is_dir:
        from sr_lib.inference.upscaler import load_upscaler

        return load_upscaler(path)
    return load_generator(path)


def resolve_scale(labelled_models, requested=None) -> int:
    """The scale to evaluate at: ``requested``, else the models' (4 without models); every model must match it.

    Args:
        labelled_models: (label, model) pairs.
        requested: the --scale given, or None.
    """
    scales = {label: model_scale(model) for label, model in labelled_models}
    scale = requested or next(iter(scales.values()), 4)
    wrong = [f"{label} (x{value})" for label, value in scales.items() if value != scale]
    if wrong:
        raise ValueError(f"every --model must upscale x{scale}" + (" (--scale)" if requested else "") +
                         f"; not: {', '.join(wrong)}")
    return scale


def method_labels(paths) -> list:
    """Table labels for model paths: the file or folder name, with as many parent folders as it takes to tell them
    apart (``a/pretrain/generator_final.keras`` and ``b/pretrain/...`` -> ``a/pretrain/...``, ``b/pretrain/...``)."""
    parts = [tuple(str(path).split("://", 1)[1].strip("/").split("/")) if storage.is_url(path)
             else Path(path).resolve().parts for path in paths]
    depth = 1
    while depth < max(map(len, parts), default=1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
        depth += 1
    return [str(path) for path in paths]


def min_image_size(scale: int) -> int:
    """The smallest HR side the protocol can measure: a multiple of ``scale`` that keeps the SSIM window after the
    ``scale``-pixel border is removed."""
    return -(-(metrics.SSIM_WINDOW + 2 * scale) // scale) * scale


def make_lr(hr_uint8, scale: int):
    """HR uint8 (H, W, 3) -> (HR in [0, 1] cropped to a multiple of ``scale``, LR in [0, 1])."""
    height, width = (hr_uint8.shape[0] // scale) * scale, (hr_uint8.shape[1] // scale) * scale
    if height == 0 or width == 0:
        raise ValueError(f"image of shape {hr_uint8.shape} is smaller than the scale {scale}")
    hr_unit = ranges.uint8_to_unit(hr_uint8[:height, :width])
    return hr_unit, bicubic_downsample(hr_unit, scale)


def predict(generator, lr_unit, batch_size=8) -> np.ndarray:
    """SR in [-1, 1] of a batch of LR crops in [0, 1], by calling the generator (Keras model or Upscaler) batch by
    batch. Not ``Model.predict``: that traces a new function per model (a comparison evaluates many), and on a model
    built under a ``tf.distribute`` strategy it splits the batches across the replicas and, with several workers,
    gathers them with collectives every worker must join; a direct call uses this process's copy of the weights."""
    lr_unit = np.asarray(lr_unit, np.float32)
    return np.concatenate([np.asarray(generator(tf.constant(lr_unit[start:start + batch_size]), training=False))
                           for start in range(0, len(lr_unit), batch_size)], axis=0)


def super_resolve(generator, lr_unit) -> tf.Tensor:
    """One LR image in [0, 1] (H, W, 3) -> SR as uint8, through a fully convolutional generator."""
    sr = generator(tf.convert_to_tensor(lr_unit)[tf.newaxis], training=False)[0]
    return ranges.hr_to_uint8(sr)


def evaluate_images(images, scale: int, generator=None, method="bicubic", dataset="", names=None,
                    save_dir=None, where=None) -> Evaluation:
    """Metrics of ``generator`` (or bicubic upscaling when None) on a list of HR uint8 images.

    Images too small for the protocol (see :func:`min_image_size`) are skipped with one warning that lists them.

    Args:
        images: HR images, uint8 (H, W, 3), any sizes.
        scale: the upscaling factor; also the border removed before measuring.
        generator: a Keras generator taking LR in [0, 1] (or an :class:`sr_lib.inference.upscaler.Upscaler`); None evaluates
            bicubic upscaling.
        method, dataset: labels for the table.
        names: optional image names for the per-image rows.
        save_dir: when given, each SR image is written there as ``<name>.png`` (uint8, as measured); a local
            folder or a ``tf.io.gfile`` URL.
        where: how the warning names the image set (default: ``dataset``).

    Raises:
        ValueError: when no image is large enough.
    """
    result = Evaluation(method, dataset)
    names = list(names) if names else [str(index) for index in range(len(images))]
    need = min_image_size(scale)
    small = [index for index, image in enumerate(images) if min(np.asarray(image).shape[:2]) < need]
    if len(small) == len(images):
        raise ValueError(f"{where or dataset or 'evaluation'}: no image is at least {need}x{need} px, the size x{scale} "
                         f"needs (the {metrics.SSIM_WINDOW}x{metrics.SSIM_WINDOW} SSIM window after a {scale}-px border)")
    if small:
        listing = "".join(f"\n  {names[i]}: {images[i].shape[0]}x{images[i].shape[1]} px" for i in small)
        warnings.warn(f"{where or dataset or 'evaluation'}: skipping {len(small)} of {len(images)} image(s) smaller "
                      f"than {need}x{need} px (x{scale} with the {metrics.SSIM_WINDOW}x{metrics.SSIM_WINDOW} SSIM "
                      f"window after a {scale}-px border):{listing}", stacklevel=2)
    if save_dir is not None:
        save_dir = storage.as_path(save_dir)
        with storage.gfile_errors(save_dir):
            save_dir.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        if index in small:
            continue
        hr_unit, lr_unit = make_lr(np.asarray(image), scale)
        if generator is None:
            sr_uint8 = ranges.unit_to_uint8(bicubic_upscale(lr_unit, scale))
        else:
            sr_uint8 = super_resolve(generator, lr_unit)
        if save_dir is not None:
            storage.write_bytes(save_dir / f"{names[index]}.png", png_bytes(sr_uint8))
        values = _measure(hr_unit, ranges.uint8_to_unit(sr_uint8), scale)
        result.per_image.append({"index": index, "name": names[index],
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
        sr_uint8 = ranges.hr_to_uint8(predict(generator, lr_unit, batch_size))
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
    outputs = [(name, ranges.hr_to_uint8(predict(generator, lr_unit)).numpy())
               for name, generator in named_generators]
    hr_uint8 = ranges.hr_to_uint8(hr).numpy()
    return [[("LR", lr_uint8[i]), ("bicubic", bicubic[i])] + [(name, sr[i]) for name, sr in outputs]
            + [("HR", hr_uint8[i])] for i in range(len(lr_uint8))]


def evaluate_folders(folders, models, scale: int, out, save_images=False) -> list:
    """``python -m sr_lib evaluate``: bicubic and every ``(label, model)`` on every folder of HR images, written to
    ``out/evaluation.json`` (and, with ``save_images``, every SR image under ``out/images/<dataset>/<method>/``).
    ``out`` may be a URL. Returns the Evaluations."""
    from tqdm import tqdm

    from sr_lib.core import storage

    out = storage.as_path(out)
    with storage.gfile_errors(out):
        out.mkdir(parents=True, exist_ok=True)
    results = []
    for folder in tqdm(folders, desc="datasets", disable=len(folders) < 2):
        names, images = load_benchmark(folder)
        for method, model in [("bicubic", None)] + list(models):
            save_dir = (out / "images" / benchmark_name(folder) / method.replace("/", "__") if save_images else None)
            results.append(evaluate_images(images, scale, model, method, benchmark_name(folder), names,
                                           save_dir=save_dir, where=folder))
    payload = [{"dataset": e.dataset, "method": e.method, "means": e.means, "per_image": e.per_image}
               for e in results]
    with storage.gfile_errors(out / "evaluation.json"):
        storage.write_text(out / "evaluation.json", json.dumps(payload, indent=2) + "\n")
    return results


def evaluation_table(entries) -> Table:
    """The means of ``evaluation.json`` entries as one :class:`~sr_lib.evaluation.tables.Table`."""
    return Table([{"dataset": e["dataset"], "method": e["method"], **e["means"]} for e in entries], digits=4)
