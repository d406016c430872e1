"""``python -m sr_lib upscale --model MODEL INPUT... --out DIR``: super-resolve photographs of any size.

MODEL is a ``.keras`` generator or a SavedModel folder written by ``export``; each INPUT is an image file or a folder
(searched recursively; its sub-folders are mirrored under DIR). Each image is written as ``<stem>_x<scale>.png``, never
over an input. Images are processed in tiles whose results equal whole-image inference bit for bit
(:mod:`sr_lib.tiling`); the output is assembled on the host as uint8, so memory is bounded by the tile. Unusable inputs
are reported by path and skipped; the others are still written.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from sr_lib.data import DataError, decode_image, find_images
from sr_lib.tiling import upscale_tiled


@dataclass
class UpscaleReport:
    """What an ``upscale`` run did: ``written`` (input, output) pairs, ``failed`` (input, message naming it)."""

    scale: int
    tile: int
    written: list = field(default_factory=list)
    failed: list = field(default_factory=list)


def output_name(path, scale: int) -> str:
    return f"{Path(path).stem}_x{scale}.png"


def plan_outputs(inputs, out_dir, scale: int):
    """(jobs, failed): ``(input, output)`` for every image found in ``inputs``, and ``(input, message)`` for inputs
    that are missing, empty folders, or whose output would overwrite an input or another input's output."""
    out_dir = Path(out_dir)
    found, failed = [], []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            try:
                files = find_images(item)
            except DataError as error:
                failed.append((item, str(error)))
                continue
            found += [(Path(f), out_dir / Path(f).relative_to(item).parent / output_name(f, scale)) for f in files]
        elif item.is_file():
            found.append((item, out_dir / output_name(item, scale)))
        else:
            failed.append((item, f"input not found: {item}"))
    sources = {path.resolve() for path, _ in found}
    jobs, claimed, seen = [], {}, set()
    for source, target in found:
        if source.resolve() in seen:  # Given twice (e.g. a file and its folder): done once.
            continue
        seen.add(source.resolve())
        key = target.resolve()
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
    """Writes ``image`` to ``target`` through a temporary file renamed into place (no half-written PNG)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        Image.fromarray(image).save(temporary, format="PNG")
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            temporary.unlink()


def _onednn_enabled() -> bool:
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except Exception:  # Private API: fall back on the variable TensorFlow reads at start-up.
        return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").lower() not in ("0", "false")


def resolve_tile(upscaler, tile) -> int:
    """The kept tile side in LR pixels: ``tile`` (0 = whole image), or the default sized to bounded memory.

    Raises:
        ValueError: for a negative tile, or a tile with a model whose receptive field is unknown.
    """
    if tile is not None and tile < 0:
        raise ValueError(f"--tile must be 0 (whole image) or a positive number of LR pixels, got {tile}")
    if upscaler.field is None:
        if tile:
            raise ValueError(f"the receptive field of {upscaler.name} is unknown, so tiles could not equal the whole "
                             "image; use --tile 0")
        return 0
    return upscaler.field.default_tile() if tile is None else tile


def upscale_files(upscaler, inputs, out_dir, tile=None, progress=True) -> UpscaleReport:
    """Upscales every image of ``inputs`` into ``out_dir`` (see the module docstring).

    Args:
        upscaler: an :class:`sr_lib.inference.Upscaler`.
        inputs: image files and/or folders.
        out_dir: the output folder (created).
        tile: kept tile side in LR pixels; 0 for whole images; None for the default.
        progress: show progress bars over images and tiles.
    """
    import tensorflow as tf
    from tqdm import tqdm

    tile = resolve_tile(upscaler, tile)
    if tile and _onednn_enabled():
        warnings.warn("oneDNN is on (TF_ENABLE_ONEDNN_OPTS was not 0 when TensorFlow started): tiles equal the whole "
                      "image only up to float rounding, not bit for bit")
    report = UpscaleReport(upscaler.scale, tile)
    jobs, report.failed = plan_outputs(inputs, out_dir, upscaler.scale)
    images = tqdm(jobs, desc="images", unit="image", disable=not progress or not jobs)
    tiles = tqdm(desc="tiles", unit="tile", leave=False, disable=not progress or not jobs)
    try:
        for source, target in images:
            try:
                image = read_image(source)
                sr = upscale_tiled(upscaler.upscale_uint8, image, upscaler.field, tile, progress=tiles)
                write_png(sr, target)
            except DataError as error:
                report.failed.append((source, str(error)))
            except tf.errors.ResourceExhaustedError:
                report.failed.append((source, f"{source}: out of memory at tile {tile or 'whole image'}; use a "
                                              "smaller --tile"))
            except (tf.errors.OpError, ValueError, OSError, MemoryError) as error:
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                report.failed.append((source, f"{source}: {first[:300]}"))
            else:
                report.written.append((source, target))
    finally:
        tiles.close()
        images.close()
    return report
