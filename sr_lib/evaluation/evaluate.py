"""Evaluation of generators and of the bicubic baseline on whole images, with the paper's protocol.

HR is cropped to a multiple of the scale, LR is made from it by the same antialiased bicubic downsampling as training
(``sr_lib.data.bicubic_downsample``), SR is rounded to uint8 as a saved image would be, and PSNR/SSIM are measured on
Y (ITU-R BT.601) with ``scale`` border pixels removed, and on RGB with the same border. With ``niqe=True`` the
no-reference NIQE (:mod:`sr_lib.evaluation.niqe`, lower is better) of the same uint8 SR is measured too, on Y of YCbCr
with the same border; the :data:`HR` "method" scores the HR images themselves (their PSNR/SSIM are NaN: not a
measurement).
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
from sr_lib.evaluation import metrics, niqe as niqe_lib
from sr_lib.evaluation.tables import Table
from sr_lib.data import bicubic_downsample, bicubic_upscale, find_images, load_images, png_bytes

METRIC_NAMES = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "color_shift")
# color_shift (largest |per-channel mean of SR - HR|, grey levels) is summarised by its worst image, not its mean:
# one cast image is a defect that an average would hide.
_WORST_CASE = {"color_shift": np.max}
NIQE = "niqe"  # The key of the NIQE column, present when an evaluation measured it.


class _Reference:
    """The type of :data:`HR`."""

    def __repr__(self):
        return "HR"


# Pass as the generator to score the HR images themselves: NIQE of natural images, the perceptual reference point.
HR = _Reference()


def _nanmean(values):
    """The mean of the defined values (NaN if none): an image NIQE cannot score is left out, not averaged as NaN."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.mean(values[~np.isnan(values)])) if np.any(~np.isnan(values)) else float("nan")


@dataclass
class Evaluation:
    """Per-image and mean metrics of one method on one image set."""

    method: str
    dataset: str
    per_image: list = field(default_factory=list)  # dicts: index, name, and each metric.
    # The uint8 SR batch that was measured (evaluate_arrays only), so a caller that also needs it does not run the
    # generator again.
    outputs: object = field(default=None, repr=False, compare=False)

    @property
    def means(self) -> dict:
        keys = METRIC_NAMES + ((NIQE,) if self.per_image and NIQE in self.per_image[0] else ())
        summary = {**_WORST_CASE, NIQE: _nanmean}
        return {key: float(summary.get(key, np.mean)([row[key] for row in self.per_image])) for key in keys}

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


def niqe_defined(shape, scale: int) -> bool:
    """Whether NIQE can score an HR image of ``shape`` (H, W, ...): it needs two whole 96x96 blocks once the image is
    cropped to a multiple of ``scale`` and a ``scale``-pixel border is removed."""
    height, width = (side // scale * scale - 2 * scale for side in shape[:2])
    return height > 0 and width > 0 and (height // niqe_lib.BLOCK) * (width // niqe_lib.BLOCK) >= 2


def _niqe_scores(images_uint8, names, scale: int, where) -> list:
    """NIQE (Y of YCbCr, ``scale``-pixel border) of each uint8 image; NaN for those too small, with one NIQESkip
    warning naming them. The warning's text is the same for every method of a set, so Python shows it once."""
    too_small = [index for index, image in enumerate(images_uint8) if not niqe_defined(np.shape(image), scale)]
    if too_small:
        listing = "".join(f"\n  {names[i]}: {np.shape(images_uint8[i])[0]}x{np.shape(images_uint8[i])[1]} px"
                          for i in too_small)
        warnings.warn(f"{where}: NIQE is undefined (NaN) for {len(too_small)} of {len(images_uint8)} image(s) with "
                      f"fewer than two {niqe_lib.BLOCK}x{niqe_lib.BLOCK} blocks after the {scale}-px border:{listing}",
                      niqe_lib.NIQESkip, stacklevel=3)
    return [float("nan") if index in too_small else
            niqe_lib.niqe(np.asarray(image), border=scale, gray="ycbcr", name=f"{where}/{names[index]}")
            for index, image in enumerate(images_uint8)]


def load_model(path):
    """A generator to evaluate: a ``.keras`` file (:func:`load_generator`), or a SavedModel folder or ``.onnx`` file
    written by ``python -m sr_lib export`` (an :class:`sr_lib.inference.upscaler.Upscaler`, called like the Keras
    generator; ``.onnx`` runs in onnxruntime, an optional dependency); any may be a ``tf.io.gfile`` URL."""
    with storage.gfile_errors(path):
        is_dir = storage.as_path(path).is_dir()
    if is_dir or storage.as_path(path).suffix.lower() == ".onnx":
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
                    save_dir=None, where=None, niqe=False) -> Evaluation:
    """Metrics of ``generator`` (or bicubic upscaling when None, or the HR images themselves for :data:`HR`) on a list
    of HR uint8 images.

    Images too small for the protocol (see :func:`min_image_size`) are skipped with one warning that lists them.

    Args:
        images: HR images, uint8 (H, W, 3), any sizes.
        scale: the upscaling factor; also the border removed before measuring.
        generator: a Keras generator taking LR in [0, 1] (or an :class:`sr_lib.inference.upscaler.Upscaler`); None evaluates
            bicubic upscaling; :data:`HR` scores the HR images (NIQE only; the other metrics are NaN).
        method, dataset: labels for the table.
        names: optional image names for the per-image rows.
        save_dir: when given, each SR image is written there as ``<name>.png`` (uint8, as measured); a local
            folder or a ``tf.io.gfile`` URL. Not used for :data:`HR`.
        where: how the warnings name the image set (default: ``dataset``).
        niqe: also measure NIQE (the ``niqe`` key); images too small for it get NaN and one NIQESkip warning.

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
    reference = generator is HR
    if save_dir is not None and not reference:
        save_dir = storage.as_path(save_dir)
        with storage.gfile_errors(save_dir):
            save_dir.mkdir(parents=True, exist_ok=True)
    measured = []
    for index, image in enumerate(images):
        if index in small:
            continue
        if reference:
            height, width = (np.asarray(image).shape[0] // scale) * scale, (np.asarray(image).shape[1] // scale) * scale
            sr_uint8 = np.asarray(image)[:height, :width]  # The HR the other methods are measured against.
            values = dict.fromkeys(METRIC_NAMES, float("nan"))  # HR against itself measures nothing.
        else:
            hr_unit, lr_unit = make_lr(np.asarray(image), scale)
            if generator is None:
                sr_uint8 = ranges.unit_to_uint8(bicubic_upscale(lr_unit, scale))
            else:
                sr_uint8 = super_resolve(generator, lr_unit)
            if save_dir is not None:
                storage.write_bytes(save_dir / f"{names[index]}.png", png_bytes(sr_uint8))
            values = _measure(hr_unit, ranges.uint8_to_unit(sr_uint8), scale)
        if niqe:
            measured.append(np.asarray(sr_uint8))
        result.per_image.append({"index": index, "name": names[index],
                                 **{key: float(value) for key, value in values.items()}})
    if niqe:
        scores = _niqe_scores(measured, [row["name"] for row in result.per_image], scale, where or dataset or method)
        for row, score in zip(result.per_image, scores):
            row[NIQE] = score
    return result


def evaluate_arrays(lr_unit, hr, scale: int, generator=None, method="bicubic", dataset="validation",
                    batch_size=8, niqe=False) -> Evaluation:
    """Metrics on prepared (LR in [0, 1], HR in [-1, 1]) batches such as a run's fixed validation crops; ``generator``
    and ``niqe`` as for :func:`evaluate_images`."""
    result = Evaluation(method, dataset)
    hr_unit = ranges.hr_to_unit(hr)
    if generator is HR:
        sr_uint8 = ranges.hr_to_uint8(hr)
        values = {key: np.full(len(hr_unit), np.nan) for key in METRIC_NAMES}
    else:
        if generator is None:
            sr_uint8 = ranges.unit_to_uint8(bicubic_upscale(lr_unit, scale))
        else:
            sr_uint8 = ranges.hr_to_uint8(predict(generator, lr_unit, batch_size))
        values = _measure(hr_unit, ranges.uint8_to_unit(sr_uint8), scale)
        values = {key: np.atleast_1d(np.asarray(value, dtype=np.float64)) for key, value in values.items()}
    names = [str(index) for index in range(len(hr_unit))]
    scores = _niqe_scores(list(np.asarray(sr_uint8)), names, scale, dataset) if niqe else None
    for index in range(len(hr_unit)):
        result.per_image.append({"index": index, "name": names[index],
                                 **{key: float(values[key][index]) for key in METRIC_NAMES},
                                 **({NIQE: scores[index]} if niqe else {})})
    result.outputs = np.asarray(sr_uint8)
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


def evaluate_folders(folders, models, scale: int, out, save_images=False, niqe=True) -> list:
    """``python -m sr_lib evaluate``: bicubic and every ``(label, model)`` on every folder of HR images, written to
    ``out/evaluation.json`` (and, with ``save_images``, every SR image under ``out/images/<dataset>/<method>/``).
    ``out`` may be a URL. Returns the Evaluations.

    With ``niqe`` every method also gets NIQE, and each folder ends with an ``HR`` entry: the HR images' own NIQE
    (its PSNR/SSIM are NaN, null in the file). A folder none of whose images NIQE can score gets no HR entry: it would
    hold only NaN.
    """
    from tqdm import tqdm

    from sr_lib.core import storage

    out = storage.as_path(out)
    with storage.gfile_errors(out):
        out.mkdir(parents=True, exist_ok=True)
    results = []
    for folder in tqdm(folders, desc="datasets", disable=len(folders) < 2):
        names, images = load_benchmark(folder)
        # One call site for every method: Python then shows each (identical) size warning once per folder.
        for method, model in [("bicubic", None)] + list(models) + ([("HR", HR)] if niqe else []):
            save_dir = (out / "images" / benchmark_name(folder) / method.replace("/", "__")
                        if save_images and model is not HR else None)
            evaluation = evaluate_images(images, scale, model, method, benchmark_name(folder), names,
                                         save_dir=save_dir, where=folder, niqe=niqe)
            if model is not HR or np.isfinite(evaluation.means[NIQE]):
                results.append(evaluation)
    # NaN (the HR row's PSNR/SSIM, NIQE of an image too small for it) is written as null: valid JSON for any reader.
    payload = [{"dataset": e.dataset, "method": e.method, "means": _nan_to_none(e.means),
                "per_image": [_nan_to_none(row) for row in e.per_image]} for e in results]
    with storage.gfile_errors(out / "evaluation.json"):
        storage.write_text(out / "evaluation.json", json.dumps(payload, indent=2) + "\n")
    return results


def _nan_to_none(row: dict) -> dict:
    return {key: None if isinstance(value, float) and np.isnan(value) else value for key, value in row.items()}


def evaluation_table(entries) -> Table:
    """The means of ``evaluation.json`` entries as one :class:`~sr_lib.evaluation.tables.Table` (null, e.g. the HR
    row's PSNR, reads as NaN and shows as "—")."""
    rows = [{"dataset": e["dataset"], "method": e["method"],
             **{key: float("nan") if value is None else value for key, value in e["means"].items()}} for e in entries]
    return Table(rows, digits=4)
