"""``python -m sr_lib upscale --model MODEL INPUT... --out DIR``: super-resolve photographs of any size.

MODEL is a ``.keras`` generator or a SavedModel folder written by ``export``; each INPUT is an image file or a folder
(searched recursively; its sub-folders are mirrored under DIR). Each image is written as ``<stem>_x<scale>.png``, never
over an input. Images are processed in tiles whose results equal whole-image inference within one grey level
(:mod:`sr_lib.inference.tiling`), with the kernels TensorFlow picks for this CPU; the output is assembled on the host as uint8, so
memory is bounded by the tile. Unusable inputs
are reported by path and skipped; the others are still written.

MODEL, the INPUTs and DIR may also be ``tf.io.gfile`` URLs (``gs://bucket/photos``; see :mod:`sr_lib.core.storage`): a
remote model is downloaded once, remote images are read whole, and each output is written as one object.
"""

from __future__ import annotations

import posixpath
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from sr_lib.core import storage
from sr_lib.data import DataError, decode_image, find_images, png_bytes
from sr_lib.inference.tiling import upscale_tiled


@dataclass
class UpscaleReport:
    """What an ``upscale`` run did: ``written`` (input, output) pairs, ``failed`` (input, message naming it)."""

    scale: int
    tile: int
    written: list = field(default_factory=list)
    failed: list = field(default_factory=list)


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
        upscaler: an :class:`sr_lib.inference.upscaler.Upscaler`.
        inputs: image files and/or folders.
        out_dir: the output folder (created), local or a URL.

    Raises:
        ValueError: for a bad ``tile``; OSError: naming ``out_dir``, when its store cannot be reached.
        tile: kept tile side in LR pixels; 0 for whole images; None for the default.
        progress: show progress bars over images and tiles.
    """
    import tensorflow as tf
    from tqdm import tqdm

    out_dir = storage.as_path(out_dir)
    if isinstance(out_dir, storage.URLPath):  # An unusable store fails once, by name, not once per image.
        with storage.gfile_errors(out_dir):
            out_dir.exists()
    tile = resolve_tile(upscaler, tile)
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
