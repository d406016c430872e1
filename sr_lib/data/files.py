"""Finding and decoding images: any folder, the DIV2K layout, or scikit-image's bundled photographs.

Folders and files may also be ``tf.io.gfile`` URLs (``gs://bucket/DIV2K``; see :mod:`sr_lib.core.storage`).
"""

import io
import os
import posixpath
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from sr_lib.core import storage

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")  # Compared case-insensitively.
DIV2K_FOLDERS = {"train": "DIV2K_train_HR", "valid": "DIV2K_valid_HR"}
# Natural colour photographs bundled with installed packages (no download needed), split once and for all:
# scikit-image's astronaut, rocket, the stereo motorcycle pair, chelsea, coffee; matplotlib's grace_hopper.
DEFAULT_IMAGES = {
    "train": ("astronaut", "rocket", "motorcycle_left", "motorcycle_right", "grace_hopper"),
    "valid": ("chelsea", "coffee"),
}


class DataError(ValueError):
    """Unusable image data: a missing or empty folder, an undecodable file, or bad files in strict mode."""


def find_images(folder, recursive=True) -> list[str]:
    """Image files under ``folder`` (extensions in ``IMAGE_EXTENSIONS``, any case), sorted.

    Hidden files and folders (names starting with ".", such as macOS "._x.jpg" resource forks) are skipped.

    Args:
        folder: the folder to search, e.g. a DIV2K_train_HR or COCO train2017 folder, or a URL such as
            ``gs://bucket/DIV2K_train_HR``.
        recursive: also search sub-folders.

    Raises:
        DataError: the folder does not exist or holds no image.
    """
    if storage.is_url(folder):
        return _find_remote_images(str(folder), recursive)
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}" if not root.exists() else f"not a folder: {root}")
    paths = [path for path in root.glob("**/*" if recursive else "*")
             if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
             and not any(part.startswith(".") for part in path.relative_to(root).parts)]
    if not paths:
        raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {root}"
                        + ("" if recursive else " (sub-folders not searched)"))
    # Sorting on the relative POSIX path gives the same order on every OS and file system, hence the same crops.
    return [str(path) for path in sorted(paths, key=lambda path: path.relative_to(root).as_posix())]


def _find_remote_images(root, recursive):
    import tensorflow as tf

    root = str(storage.URLPath(root))
    if not tf.io.gfile.isdir(root):
        raise DataError(f"image folder not found: {root}" if not tf.io.gfile.exists(root) else f"not a folder: {root}")
    found = []  # (relative POSIX path, URL)
    for folder, subfolders, files in tf.io.gfile.walk(root):
        folder = folder.rstrip("/")
        relative = folder[len(root):].strip("/")
        if any(part.startswith(".") for part in relative.split("/") if part):
            continue
        found += [(posixpath.join(relative, name), f"{folder}/{name}") for name in files
                  if posixpath.splitext(name)[1].lower() in IMAGE_EXTENSIONS and not name.startswith(".")]
        if not recursive:
            break
    if not found:
        raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {root}"
                        + ("" if recursive else " (sub-folders not searched)"))
    return [url for _, url in sorted(found)]


def split_holdout(paths, count) -> tuple[list, list]:
    """(train, held-out) lists: ``count`` evenly spaced items of ``paths`` (e.g. a sorted T91 + BSD200 folder) are held
    apart for validation, so both sub-sets are represented; the same paths always give the same split.

    Raises:
        DataError: ``count`` leaves no training image.
    """
    paths = list(paths)
    if not 0 < count < len(paths):
        raise DataError(f"cannot hold {count} of {len(paths)} images apart for validation: at least one must be "
                        "left for training")
    held = set(np.linspace(0, len(paths) - 1, count).round().astype(int).tolist())
    return [p for i, p in enumerate(paths) if i not in held], [p for i, p in enumerate(paths) if i in held]


def is_div2k(root) -> bool:
    """Whether ``root`` holds DIV2K_train_HR/ or DIV2K_valid_HR/."""
    if storage.is_url(root):
        return any((storage.URLPath(root) / name).is_dir() for name in DIV2K_FOLDERS.values())
    return any((Path(root).expanduser() / name).is_dir() for name in DIV2K_FOLDERS.values())


def find_div2k(root, split="train") -> list[str]:
    """The HR images of a DIV2K split: ``root/DIV2K_train_HR`` or ``root/DIV2K_valid_HR``.

    Args:
        root: the folder where DIV2K_train_HR.zip and DIV2K_valid_HR.zip were unpacked.
        split: "train" or "valid".
    """
    _check_split(split, DIV2K_FOLDERS)
    base = storage.URLPath(root) if storage.is_url(root) else Path(root).expanduser()
    folder = base / DIV2K_FOLDERS[split]
    if not folder.is_dir():
        raise DataError(f"DIV2K {split} folder not found: {folder} (unpack {DIV2K_FOLDERS[split]}.zip from "
                        f"https://data.vision.ee.ethz.ch/cvl/DIV2K/ into {base})")
    return find_images(folder)


def _bundled_image(name) -> np.ndarray:
    # Imported here: scikit-image is slow to import and only needed here.
    from skimage import data as skimage_data

    if name == "grace_hopper":
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as handle:
            return decode_image(handle.name)
    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = skimage_data.stereo_motorcycle()
        return left if name == "motorcycle_left" else right
    return getattr(skimage_data, name)()


def bundled_image_label(name) -> str:
    """Where an embedded photograph comes from, e.g. ``skimage.data.astronaut``."""
    return "matplotlib sample_data/grace_hopper.jpg" if name == "grace_hopper" else f"skimage.data.{name}"


def default_images(split="train") -> list[np.ndarray]:
    """The natural colour photographs bundled with scikit-image and matplotlib, as RGB uint8 arrays: the offline
    default data set.

    Args:
        split: "train" (astronaut, rocket, motorcycle_left, motorcycle_right, grace_hopper) or "valid" (chelsea,
            coffee).
    """
    _check_split(split, DEFAULT_IMAGES)
    return [np.ascontiguousarray(_bundled_image(name)[..., :3], dtype=np.uint8) for name in DEFAULT_IMAGES[split]]


def _is_file(path) -> bool:
    return storage.URLPath(path).is_file() if storage.is_url(path) else Path(path).expanduser().is_file()


def _check_split(split, known):
    if split not in known:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(known)}")


# --- Decoding --------------------------------------------------------------------------------------------------------

def decode_image(path) -> np.ndarray:
    """Decodes an image file to RGB uint8 (H, W, 3), upright.

    Grayscale, palette and CMYK images are converted; 16-bit grayscale is scaled to 8 bits (Pillow reads 16-bit RGB
    PNGs as their high bytes); transparent pixels (RGBA, LA, palette or colour-key transparency) are composited on
    white, as a viewer shows them; the EXIF orientation is applied. Colour profiles are ignored.

    Args:
        path: the image file.

    Raises:
        DataError: naming the path, for a missing, truncated, empty, oversized or non-image file.
    """
    try:
        return _decode(path)
    except Exception as error:  # Pillow's plugins raise many types for bad files; see _decode.
        raise DataError(f"cannot decode image {path}: {_describe(error)}") from error


def _source(path):
    """What Pillow opens: the path, or a URL's object read whole through tf.io.gfile (Pillow decodes from memory)."""
    return io.BytesIO(storage.URLPath(path).read_bytes()) if storage.is_url(path) else path


def _decode(path):
    with Image.open(_source(path)) as image:
        # load() decodes every byte now, so a truncated file fails here rather than mid-epoch. We do not set
        # ImageFile.LOAD_TRUNCATED_IMAGES: it would silently fill the missing part with grey.
        image.load()
        try:
            image = ImageOps.exif_transpose(image)
        except Exception:  # A malformed EXIF block should not cost an otherwise good image: keep it as stored.
            pass
        if image.mode.startswith("I"):  # I;16, I;16B, I (16-bit PNG): convert("L") would clip at 255, not scale.
            gray = np.clip(np.round(np.asarray(image, dtype=np.float64) / 257.0), 0, 255).astype(np.uint8)
            return np.repeat(gray[..., None], 3, axis=-1)
        if "A" in image.mode or "a" in image.mode or "transparency" in image.info:
            rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
            alpha = rgba[..., 3:] / 255.0
            return np.round(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _describe(error):
    return f"{type(error).__name__}: {error}"


def load_images(paths, min_size=0, strict=False) -> tuple[list[np.ndarray], list[tuple[str, str]]]:
    """Decodes each image once; reports unreadable and too-small files instead of failing later.

    Args:
        paths: image files, e.g. from ``find_images``.
        min_size: images whose height or width is below this (the HR crop size) are problems.
        strict: raise on any problem instead of warning once and skipping.

    Returns:
        (images, problems): RGB uint8 arrays of the usable files in order, and (path, reason) for each skipped one.

    Raises:
        DataError: in strict mode when any file is a problem, and always when no file is usable.
    """
    paths = [os.fspath(path) for path in paths]
    if not paths:
        raise DataError("no image files given")
    # Pillow releases the GIL while decoding, so threads use every core; map() keeps the order.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        decoded = list(pool.map(_try_decode, paths))
    images, problems = [], []
    for path, (image, reason) in zip(paths, decoded):
        if image is not None and min(image.shape[:2]) < min_size:
            reason = f"too small: {image.shape[0]}x{image.shape[1]} px, needs at least {min_size}x{min_size}"
        if reason:
            problems.append((path, reason))
        else:
            images.append(image)
    _report(problems, strict, any_left=bool(images), total=len(paths))
    return images, problems


def inspect_images(paths) -> list[dict]:
    """What decoding makes of each file: its stored mode and size, and the array it decodes to or why it is skipped.

    For a look at a folder before training (notebook 01), not used by training itself.
    """
    rows = []
    for path in map(os.fspath, paths):
        try:
            with Image.open(_source(path)) as image:
                stored = f"{image.format} {image.mode} {image.width}x{image.height}"
        except Exception as error:  # See decode_image: any failure to read the header is a reason, not a crash.
            stored = f"unreadable header ({type(error).__name__})"
        image, reason = _try_decode(path)
        rows.append({"file": os.path.basename(path), "stored as": stored,
                     "decoded to": reason or f"RGB {image.dtype} {image.shape[0]}x{image.shape[1]}"})
    return rows


def _try_decode(path):
    try:
        return _decode(path), None
    except Exception as error:  # See decode_image.
        return None, f"unreadable ({_describe(error)})"


def _report(problems, strict, any_left, total):
    """One warning (or one DataError) listing every problem, so that nothing fails mid-epoch."""
    listing = "".join(f"\n  {path}: {reason}" for path, reason in problems)
    if problems and strict:
        raise DataError(f"{len(problems)} of {total} image(s) unusable (strict mode):{listing}")
    if not any_left:
        raise DataError(f"no usable image among {total}:{listing}")
    if problems:
        warnings.warn(f"skipping {len(problems)} of {total} image(s):{listing}", stacklevel=3)


def resolve_images(source=None, split="train", min_size=0, strict=False) -> list[np.ndarray]:
    """The decoded images of a data source.

    Args:
        source: None for ``default_images(split)``; a DIV2K root (holding DIV2K_train_HR/ or DIV2K_valid_HR/) for
            that split; any other folder (e.g. COCO train2017/) for all its images, whatever the split, so give a
            separate validation folder; or a list of image files.
        split: "train" or "valid".
        min_size: images smaller than this (the HR crop size) are problems, see ``load_images``.
        strict: raise on any problem instead of warning and skipping.
    """
    _check_split(split, DIV2K_FOLDERS)
    if source is None:
        images, problems = [], []
        for name, image in zip(DEFAULT_IMAGES[split], default_images(split)):
            if min(image.shape[:2]) < min_size:
                problems.append((bundled_image_label(name), f"too small: {image.shape[0]}x{image.shape[1]} px"))
            else:
                images.append(image)
        _report(problems, strict, any_left=bool(images), total=len(DEFAULT_IMAGES[split]))
        return images
    if isinstance(source, str) and not source.strip():
        raise DataError("empty data source; use None for the bundled default images, or a folder")
    if isinstance(source, (list, tuple)):
        paths = source
    elif _is_file(source):
        paths = [source]
    elif is_div2k(source):
        paths = find_div2k(source, split)
    else:
        paths = find_images(source)
    return load_images(paths, min_size=min_size, strict=strict)[0]


def png_bytes(image) -> bytes:
    """A uint8 (H, W, 3) image encoded as PNG."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()
