"""The pictures a study shows, checked and encoded before any server starts.

Folder layout::

    STUDY/HR/<image>.png        the hidden reference (required; method "HR" in the database)
    STUDY/<method>/<image>.png  one folder per method, the same image names, SR at the HR size

HR is cropped at the top left to a multiple of the scale (as ``sr_lib.evaluate.make_lr`` does); a method's image must
have that cropped size, or the uncropped HR size (it is then cropped the same way). The two low anchors, "nearest" and
"bicubic", are made here from the cropped HR: Pillow's antialiased bicubic downscale by ``scale``, then NEAREST or
BICUBIC upscaling; those two folder names are therefore reserved. Every picture is re-encoded the same way (RGB, alpha
dropped, PNG without metadata), so equal pixels give equal bytes and nothing but pixels reaches the browser.

Dependencies: NumPy (pixel arrays) and Pillow (decoding, resampling, PNG encoding); scikit-image (the embedded
calibration photographs) and sr_lib's generators (the comparison input) are imported only where they are needed.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from sr_lib.mos.store import Stimulus

REFERENCE = "HR"
ANCHORS = ("nearest", "bicubic")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")  # Compared case-insensitively.
# The paper calibrated on NN (=1) and HR (=5) versions of other pictures; these are embedded, so no download.
CALIBRATION_PHOTOS = ("astronaut", "coffee", "chelsea")
CALIBRATION_SIZE = 256
_MAX_LISTED = 8  # Problems named in one error message; the rest are counted.


def encode_png(rgb) -> bytes:
    """uint8 (H, W, 3) -> PNG bytes, always with the same settings and no metadata chunks."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(buffer, "PNG", optimize=False,
                                                                           compress_level=6)
    return buffer.getvalue()


def read_rgb(path) -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3), alpha dropped; OSError naming ``path`` when it cannot be decoded."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except Exception as error:  # Pillow raises OSError, ValueError, SyntaxError, DecompressionBombError...
        raise OSError(f"{path}: unreadable image ({type(error).__name__}: {str(error)[:120]})") from None


def anchors(hr, scale: int) -> dict:
    """The low anchors of one (cropped) HR image: {"nearest": ..., "bicubic": ...}, uint8 at the HR size."""
    height, width = hr.shape[:2]
    lr = Image.fromarray(hr).resize((width // scale, height // scale), Image.Resampling.BICUBIC)  # Antialiased.
    return {"nearest": np.asarray(lr.resize((width, height), Image.Resampling.NEAREST)),
            "bicubic": np.asarray(lr.resize((width, height), Image.Resampling.BICUBIC))}


def calibration_stimuli(scale: int, size: int = CALIBRATION_SIZE) -> list:
    """NN (expected 1) and HR (expected 5) versions of the embedded photographs, each resized to ``size`` px on its
    short side and centre-cropped to a ``size`` square (a multiple of ``scale``)."""
    from skimage import data as skimage_data  # Only the calibration needs scikit-image.

    size = max(scale, size // scale * scale)
    result = []
    for name in CALIBRATION_PHOTOS:
        photo = Image.fromarray(np.asarray(getattr(skimage_data, name)())).convert("RGB")
        ratio = size / min(photo.size)
        photo = photo.resize((max(size, round(photo.width * ratio)), max(size, round(photo.height * ratio))),
                             Image.Resampling.LANCZOS)
        left, top = (photo.width - size) // 2, (photo.height - size) // 2
        hr = np.asarray(photo.crop((left, top, left + size, top + size)))
        result.append(Stimulus(name, REFERENCE, encode_png(hr), "calibration", 5))
        result.append(Stimulus(name, "nearest", encode_png(anchors(hr, scale)["nearest"]), "calibration", 1))
    return result


def _image_files(folder: Path) -> tuple:
    """{stem: path} of the images directly in ``folder``, and the problems (two files with one stem)."""
    files, problems = {}, []
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in files:
                problems.append(f"{files[path.stem]} and {path.name} have the same name")
            files[path.stem] = path
    return files, problems


def _fail(folder, problems):
    listed = "; ".join(problems[:_MAX_LISTED])
    more = f"; and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
    raise ValueError(f"stimuli in {folder}: {listed}{more}")


def load_folder(folder, scale: int = 4) -> list:
    """Every study :class:`Stimulus` of a study folder: HR, each method, and the two anchors, per image.

    Raises:
        ValueError: naming the files, for a missing folder, no HR or no method, unreadable images, an image missing
            for a method (or not in HR), a size that does not match HR, or a reserved method name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"stimuli folder not found: {folder}")
    if scale < 2:
        raise ValueError(f"--scale must be at least 2, got {scale}")
    if not (folder / REFERENCE).is_dir():
        raise ValueError(f"stimuli in {folder}: no {REFERENCE}/ folder (the hidden reference, required)")
    methods = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                     and p.name != REFERENCE)
    problems = [f"the folder name {name!r} is reserved for the anchor made from HR (rename it)"
                for name in methods if name.lower() in ANCHORS or name.lower() == REFERENCE.lower()]
    reference, more = _image_files(folder / REFERENCE)
    problems += more
    if not reference:
        problems.append(f"{folder / REFERENCE} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    if not methods:
        problems.append("no method folder beside HR/ (one folder of SR images per method)")
    files = {}
    for method in methods:
        files[method], more = _image_files(folder / method)
        problems += more
        problems += [f"{folder / method}: no {name} (HR has it)" for name in reference if name not in files[method]]
        problems += [f"{path}: not in HR/" for name, path in files[method].items() if name not in reference]
    if problems:
        _fail(folder, problems)
    stimuli = []
    for name, path in reference.items():
        try:
            hr = read_rgb(path)
        except OSError as error:
            problems.append(str(error))
            continue
        height, width = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
        if height == 0 or width == 0:
            problems.append(f"{path}: {hr.shape[1]}x{hr.shape[0]} px is smaller than the scale {scale}")
            continue
        original, hr = hr.shape[:2], hr[:height, :width]
        pictures = {REFERENCE: hr, **anchors(hr, scale)}
        for method in methods:
            try:
                sr = read_rgb(files[method][name])
            except OSError as error:
                problems.append(str(error))
                continue
            if sr.shape[:2] not in ((height, width), original):
                problems.append(f"{files[method][name]}: {sr.shape[1]}x{sr.shape[0]} px, HR is {width}x{height} "
                                f"px (cropped to a multiple of {scale})")
                continue
            pictures[method] = sr[:height, :width]
        stimuli += [Stimulus(name, method, encode_png(picture)) for method, picture in pictures.items()]
    if problems:
        _fail(folder, problems)
    return stimuli


def folder_names(folder) -> tuple:
    """(sorted image names, sorted method names with anchors and HR) a study folder would give, without decoding."""
    folder = Path(folder)
    if not (folder / REFERENCE).is_dir():
        raise ValueError(f"stimuli in {folder}: no {REFERENCE}/ folder (the hidden reference, required)")
    methods = [p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != REFERENCE]
    return sorted(_image_files(folder / REFERENCE)[0]), sorted(methods + [REFERENCE, *ANCHORS])


def comparison_scale(comparison_dir) -> int:
    """``data.scale`` of a comparison directory's ``config.json``."""
    path = Path(comparison_dir) / "config.json"
    try:
        return int(json.loads(path.read_text())["data"]["scale"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a comparison run's config.json with data.scale ({error})") from None


def final_generator(run_dir) -> Path:
    """A variant run's final generator: ``generator_final.keras`` (what sr_lib.training writes), else the newest
    ``*.keras`` directly in ``run_dir``."""
    run_dir = Path(run_dir)
    if (run_dir / "generator_final.keras").is_file():
        return run_dir / "generator_final.keras"
    candidates = sorted(run_dir.glob("*.keras"), key=lambda path: path.stat().st_mtime)
    if not candidates:
        raise ValueError(f"{run_dir}: no .keras generator (is this variant's training finished?)")
    return candidates[-1]


def from_comparison(comparison_dir, hr_dir, out_dir, variants=None) -> tuple:
    """Writes a study folder (see the module docstring) from a ``python -m sr_lib compare`` run: HR images from
    ``hr_dir`` cropped to a multiple of the scale, and each variant's SR of the bicubic LR of each.

    The only function of sr_lib.mos that needs TensorFlow and the repository's generators.

    Args:
        comparison_dir: the comparison's ``--out`` folder (``config.json``, ``variants/<slug>/``).
        hr_dir: a folder of HR images (e.g. Set5/HR).
        out_dir: the study folder to write.
        variants: slugs to include (default: every variant folder).

    Returns:
        (out_dir, scale).
    """
    # Lazy: TensorFlow and the generators only for this input. (The refactor's layout; before it: sr_lib.ranges and
    # sr_lib.evaluate.)
    from sr_lib.core import ranges
    from sr_lib.evaluation.evaluate import make_lr, predict
    from sr_lib.nets.saving import load_generator

    comparison_dir, hr_dir, out_dir = Path(comparison_dir), Path(hr_dir), Path(out_dir)
    scale = comparison_scale(comparison_dir)
    runs = sorted(p for p in (comparison_dir / "variants").glob("*") if p.is_dir()) if (
        comparison_dir / "variants").is_dir() else []
    if variants:
        unknown = [slug for slug in variants if slug not in {p.name for p in runs}]
        if unknown:
            raise ValueError(f"{comparison_dir / 'variants'}: no variant {', '.join(unknown)}")
        runs = [p for p in runs if p.name in variants]
    if not runs:
        raise ValueError(f"{comparison_dir}: no variants/<slug>/ run folders (not a comparison run directory?)")
    if not hr_dir.is_dir():
        raise ValueError(f"HR folder not found: {hr_dir}")
    reference, problems = _image_files(hr_dir)
    if problems or not reference:
        _fail(hr_dir, problems or [f"no image ({', '.join(IMAGE_SUFFIXES)})"])
    generators = {run.name: final_generator(run) for run in runs}
    (out_dir / REFERENCE).mkdir(parents=True, exist_ok=True)
    prepared = {}
    for name, path in reference.items():
        hr_unit, lr_unit = make_lr(read_rgb(path), scale)
        prepared[name] = np.asarray(lr_unit)
        (out_dir / REFERENCE / f"{name}.png").write_bytes(encode_png(np.asarray(ranges.unit_to_uint8(hr_unit))))
    for slug, model_path in generators.items():
        generator = load_generator(model_path)
        (out_dir / slug).mkdir(exist_ok=True)
        for name, lr_unit in prepared.items():
            sr = np.asarray(ranges.hr_to_uint8(predict(generator, lr_unit[np.newaxis], batch_size=1)))[0]
            (out_dir / slug / f"{name}.png").write_bytes(encode_png(sr))
    return out_dir, scale
