"""``python -m sr_lib upscale --model MODEL INPUT... --out DIR``: super-resolve photographs of any size.

MODEL is a ``.keras`` generator or a SavedModel folder written by ``export``; each INPUT is an image file or a folder
(searched recursively; its sub-folders are mirrored under DIR). Each image is written as ``<stem>_x<scale>.png``, never
over an input. Images are processed in tiles whose results equal whole-image inference within one grey level
(:mod:`sr_lib.inference.tiling`), with the kernels TensorFlow picks for this CPU; each tile reads a measured context
(:func:`default_context`), not the whole receptive field, around the pixels it keeps. The output is assembled on the
host as uint8, so memory is bounded by the tile. Unusable inputs are reported by path and skipped; the others are
still written.

MODEL, the INPUTs and DIR may also be ``tf.io.gfile`` URLs (``gs://bucket/photos``; see :mod:`sr_lib.core.storage`): a
remote model is downloaded once, remote images are read whole, and each output is written as one object.
"""

from __future__ import annotations

import math
import posixpath
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from sr_lib.core import storage
from sr_lib.data import DataError, decode_image, find_images, png_bytes
from sr_lib.inference.tiling import upscale_tiled

# The context a tile reads by default, LR pixels per side, per precision. Measured by benchmarks/tile_context.py
# (tile_context.json): with the shipped SRResNet-16 x4 (field 40 px) on Set14 and a 2000x1500 photo, in tiles of
# 32 px, the smallest context that keeps tiles within 1 grey level of the whole image (same precision) on at most 1
# pixel in 10^4. bfloat16 needs the whole field: its 8-bit roundings turn a far pixel's tiny contribution into whole
# rounding steps that cascade through the layers (1.6% of pixels off by 1 at 16 px, 0.03% at 32, none at 40).
MEASURED_CONTEXT = {"float32": 12, "mixed_bfloat16": 40}
MEASURED_FIELD = 40
PRECISIONS = ("auto", "float32", "mixed_bfloat16")


def default_context(field, precision="float32") -> int:
    """LR pixels of context per side for a model with this receptive field: the exact field when it is at most the
    measured context, else the larger of the measured context and the same fraction of the field."""
    # Why this rule: a trained network's influence decays with distance, and its effective field grows more slowly
    # with depth than the exact field (Luo et al. 2016: about as its square root), so the measured absolute context
    # covers shallower nets and the measured fraction over-covers deeper ones; fields within it stay exact (tiny nets).
    measured = MEASURED_CONTEXT[precision]
    return min(field.radius, max(measured, math.ceil(field.radius * measured / MEASURED_FIELD)))


def native_bf16() -> bool:
    """Whether TensorFlow computes bfloat16 with this CPU's own bf16 instructions: the CPU has them (and
    ONEDNN_MAX_CPU_ISA does not hide them) and oneDNN's ops are on (Eigen's bfloat16 is emulated in float32)."""
    import os

    from sr_lib.core.device import cpu_bf16_flags

    return bool(cpu_bf16_flags()) and os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").lower() not in ("0", "false")


def resolve_precision(upscaler, precision="auto") -> str:
    """``float32`` or ``mixed_bfloat16``. ``auto``: bfloat16 for a ``.keras`` generator where it is native
    (:func:`native_bf16`), since it costs at most 0.01 dB PSNR-Y there (benchmarks/bf16_quality.json); float32
    otherwise, and always for exports (SavedModel, ONNX), whose graphs are float32.

    Raises:
        ValueError: for an unknown precision, or bfloat16 asked of an export.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    import keras

    keras_model = isinstance(getattr(upscaler, "model", None), keras.Model)
    if precision == "auto":
        return "mixed_bfloat16" if keras_model and native_bf16() else "float32"
    if precision == "mixed_bfloat16" and not keras_model:
        raise ValueError(f"{upscaler.name} is an export, whose graph is float32; mixed_bfloat16 needs a .keras "
                         "generator")
    return precision


def with_precision(upscaler, precision: str):
    """``upscaler`` itself for float32; for mixed_bfloat16 a copy whose functions run a copy of its Keras model
    (same weights) computing under that policy: bfloat16 activations, float32 weights, float32 output."""
    if precision == "float32":
        return upscaler
    import dataclasses

    import keras
    import tensorflow as tf

    from sr_lib.core import ranges

    def layer_copy(layer):
        config = layer.get_config()
        config["dtype"] = precision
        return layer.__class__.from_config(config)

    model = keras.models.clone_model(upscaler.model, clone_function=layer_copy)
    model.set_weights(upscaler.model.get_weights())
    spec = (None, None, None, 3)

    @tf.function(input_signature=[tf.TensorSpec(spec, tf.uint8)])
    def uint8_fn(images):
        return ranges.hr_to_uint8(tf.cast(model(ranges.uint8_to_unit_exact(images), training=False), tf.float32))

    @tf.function(input_signature=[tf.TensorSpec(spec, tf.float32)])
    def hr_fn(images):
        return tf.cast(model(images, training=False), tf.float32)

    copy = dataclasses.replace(upscaler, uint8_fn=uint8_fn, hr_fn=hr_fn)
    copy.model, copy.precision = model, precision
    return copy


@dataclass
class UpscaleReport:
    """What an ``upscale`` run did: ``written`` (input, output) pairs, ``failed`` (input, message naming it), and the
    tile (0: whole images) and context (LR px per side) it used; ``whole_images``: how many of the written images
    were small enough to run whole at the default tile."""

    scale: int
    tile: int
    context: int | None = None
    precision: str = "float32"
    written: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    whole_images: int = 0


def output_name(path, scale: int) -> str:
    return f"{storage.as_path(path).stem}_x{scale}.png"


def _identity(path):
    """What makes two paths the same file: the resolved local path, or the URL."""
    return str(path) if isinstance(path, storage.URLPath) else path.resolve()


def _relative_folder(file, folder) -> str:
    """The POSIX folder of ``file`` relative to ``folder`` (which holds it), "" when directly in it."""
    if isinstance(folder, storage.URLPath):
        relative = str(file)[len(str(folder)):].strip("/")
        return posixpath.dirname(relative)
    parent = Path(file).relative_to(folder).parent.as_posix()
    return "" if parent == "." else parent


def plan_outputs(inputs, out_dir, scale: int):
    """(jobs, failed): ``(input, output)`` for every image found in ``inputs``, and ``(input, message)`` for inputs
    that are missing, empty folders, or whose output would overwrite an input or another input's output. Inputs and
    ``out_dir`` may be local paths or URLs."""
    out_dir = storage.as_path(out_dir)
    found, failed = [], []
    for item in inputs:
        try:
            item = storage.as_path(item)
            with storage.gfile_errors(item):
                is_dir = item.is_dir()
                is_file = not is_dir and item.is_file()
                files = find_images(item) if is_dir else []
        except (DataError, OSError, ValueError) as error:  # ValueError: a URL without a path (``gs://``).
            failed.append((item, str(error)))
            continue
        if is_dir:
            for name in files:
                source = storage.as_path(name)
                folder = _relative_folder(source, item)
                found.append((source, (out_dir / folder if folder else out_dir) / output_name(source, scale)))
        elif is_file:
            found.append((item, out_dir / output_name(item, scale)))
        else:
            failed.append((item, f"input not found: {item}"))
    sources = {_identity(path) for path, _ in found}
    jobs, claimed, seen = [], {}, set()
    for source, target in found:
        if _identity(source) in seen:  # Given twice (e.g. a file and its folder): done once.
            continue
        seen.add(_identity(source))
        key = _identity(target)
        if key in sources:
            failed.append((source, f"{source}: refusing to write {target}, which is an input"))
        elif key in claimed:
            failed.append((source, f"{source}: its output {target} is also the output of {claimed[key]}"))
        else:
            claimed[key] = source
            jobs.append((source, target))
    return jobs, failed


def read_image(path) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` of an image file (modes, 16 bits, transparency and EXIF rotation handled by
    :func:`sr_lib.data.decode_image`); images over Pillow's decompression-bomb limit are refused, not decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return decode_image(path)


def write_png(image, target) -> None:
    """Writes ``image`` to ``target`` as PNG, whole (never a half-written file): see :func:`sr_lib.core.storage.write_bytes`."""
    storage.write_bytes(target, png_bytes(image))


def resolve_context(upscaler, context=None, precision="float32"):
    """LR pixels of context per side: ``context`` clamped to the exact receptive field, or :func:`default_context`
    for ``precision`` (None); None when the field is unknown (whole images only).

    Raises:
        ValueError: for a negative context.
    """
    if context is not None and context < 0:
        raise ValueError(f"--context must be a number of LR pixels >= 0, got {context}")
    if upscaler.field is None:
        return None
    return default_context(upscaler.field, precision) if context is None else min(context, upscaler.field.radius)


def resolve_tile(upscaler, tile, context=None, precision="float32") -> int:
    """The kept tile side in LR pixels: ``tile`` (0 = whole image), or the default: the largest whose read window
    (tile + ``context`` on each side; None: the exact field) keeps the largest activation within
    :data:`sr_lib.inference.tiling.DEFAULT_ACTIVATION_BUDGET` bytes in ``precision`` (bfloat16: 2 bytes a value).

    Raises:
        ValueError: for a negative tile, or a tile with a model whose receptive field is unknown.
    """
    from sr_lib.inference.tiling import DEFAULT_ACTIVATION_BUDGET

    if tile is not None and tile < 0:
        raise ValueError(f"--tile must be 0 (whole image) or a positive number of LR pixels, got {tile}")
    if upscaler.field is None:
        if tile:
            raise ValueError(f"the receptive field of {upscaler.name} is unknown, so tiles could not equal the whole "
                             "image; use --tile 0")
        return 0
    if tile is not None:
        return tile
    budget = DEFAULT_ACTIVATION_BUDGET * (2 if precision == "mixed_bfloat16" else 1)  # field's bytes are float32's.
    if onednn_below_avx512():
        budget = min(budget, AVX2_ONEDNN_BUDGET)
    return upscaler.field.with_context(context).default_tile(budget)


def tile_for_image(field, tile: int, context, shape) -> int:
    """The default tile for one image of ``shape`` (H, W, ...): 0 (the whole image at once) when the image has no
    more pixels than one tile's read window, so its activations are no larger than a tile's; else ``tile``. Whole is
    exact and recomputes no borders (a 500x375 LR image at the bf16 default computes 16% more pixels tiled)."""
    if not tile:
        return 0
    field = field.with_context(context)
    window = (tile + field.before[0] + field.after[0]) * (tile + field.before[1] + field.after[1])
    return 0 if shape[0] * shape[1] <= window else tile


# Below AVX-512, oneDNN runs convolutions as im2col + GEMM, and for large problems it falls back to its reference
# kernel, hundreds of times slower (ONEDNN_MAX_CPU_ISA=AVX2, measured: a 3x3 64->256 conv from 650x650 px, whose
# output is 413 MiB; a 9x9 64->3 conv from 1448x1448 px). Default tiles stay below both there.
AVX2_ONEDNN_BUDGET = 384 * 2**20


def onednn_below_avx512() -> bool:
    """Whether oneDNN's ops are on and run code below AVX-512 (the CPU lacks it, or ONEDNN_MAX_CPU_ISA limits it)."""
    import os

    from sr_lib.core.device import onednn_isa_below_avx512

    if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").lower() in ("0", "false"):
        return False
    return onednn_isa_below_avx512()


def upscale_files(upscaler, inputs, out_dir, tile=None, progress=True, context=None,
                  precision="auto") -> UpscaleReport:
    """Upscales every image of ``inputs`` into ``out_dir`` (see the module docstring).

    Args:
        upscaler: an :class:`sr_lib.inference.upscaler.Upscaler`.
        inputs: image files and/or folders.
        out_dir: the output folder (created), local or a URL.
        tile: kept tile side in LR pixels; 0 for whole images; None for the default (images within one default
            tile's memory then run whole, :func:`tile_for_image`).
        progress: show progress bars over images and tiles.
        context: LR pixels of context per side, clamped to the receptive field; None for :func:`default_context`.
        precision: ``auto``, ``float32`` or ``mixed_bfloat16`` (:func:`resolve_precision`).

    Raises:
        ValueError: for a bad ``tile``, ``context`` or ``precision``; OSError: naming ``out_dir``, when its store
            cannot be reached.
    """
    import tensorflow as tf
    from tqdm import tqdm

    out_dir = storage.as_path(out_dir)
    if isinstance(out_dir, storage.URLPath):  # An unusable store fails once, by name, not once per image.
        with storage.gfile_errors(out_dir):
            out_dir.exists()
    precision = resolve_precision(upscaler, precision)
    context = resolve_context(upscaler, context, precision)
    default_tile = tile is None
    tile = resolve_tile(upscaler, tile, context, precision)
    upscaler = with_precision(upscaler, precision)
    report = UpscaleReport(upscaler.scale, tile, context if tile else None, precision)
    jobs, report.failed = plan_outputs(inputs, out_dir, upscaler.scale)
    images = tqdm(jobs, desc="images", unit="image", disable=not progress or not jobs)
    tiles = tqdm(desc="tiles", unit="tile", leave=False, disable=not progress or not jobs)
    try:
        for source, target in images:
            image_tile = tile
            try:
                image = read_image(source)
                image_tile = tile_for_image(upscaler.field, tile, context, image.shape) if default_tile else tile
                sr = upscale_tiled(upscaler.upscale_uint8, image, upscaler.field, image_tile, progress=tiles,
                                   context=context)
                write_png(sr, target)
            except DataError as error:
                report.failed.append((source, str(error)))
            except tf.errors.ResourceExhaustedError:
                report.failed.append((source, f"{source}: out of memory at tile {image_tile or 'whole image'}; use a "
                                              "smaller --tile"))
            except (tf.errors.OpError, ValueError, OSError, MemoryError) as error:
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                report.failed.append((source, f"{source}: {first[:300]}"))
            else:
                report.written.append((source, target))
                report.whole_images += bool(tile) and not image_tile
    finally:
        tiles.close()
        images.close()
    return report
