"""Tiled vs whole-image inference for tests/test_upscale.py, run in its own process:

    python tests/tiling_check.py WORKDIR > results.json

A separate process, so that the test can choose the kernels (TF_ENABLE_ONEDNN_OPTS, ONEDNN_MAX_CPU_ISA are read when
TensorFlow starts). For each case (scale x upsampler x global residual, a .keras file and one exported SavedModel) it
writes a generator, loads it as `upscale` does, and reports, for several image shapes, how tiled and whole-image
inference differ (uint8: grey levels and pixels; float32: the largest difference), how much the float32 result moves
when one side of the computed context is one pixel short, and the seam left by tiles with no context at all.
"""

import dataclasses
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from skimage import data as skdata  # noqa: E402

from sr_lib.inference.export import export_generator  # noqa: E402
from sr_lib.inference.upscaler import load_upscaler  # noqa: E402
from sr_lib.nets.models import make_generator  # noqa: E402
from sr_lib.inference.tiling import upscale_tiled  # noqa: E402
from tolerances import uint8_difference  # noqa: E402  (tests/ is this script's folder)

TINY = dict(num_blocks=1, channels=8)
CASES = {f"x{scale}-{upsample}": dict(scale=scale, upsample=upsample)
         for scale in (2, 3, 4, 8) for upsample in ("subpixel", "upsampling")}
CASES["x4-subpixel-bicubic-residual"] = dict(scale=4, global_residual="bicubic", batch_norm=False)
CASES["x2-upsampling-bilinear"] = dict(scale=2, upsample="upsampling", interpolation="bilinear")
CASES["x3-subpixel-bicubic-residual"] = dict(scale=3, global_residual="bicubic", batch_norm=False)
CASES["x3-upsampling-bilinear"] = dict(scale=3, upsample="upsampling", interpolation="bilinear")
SAVED_MODEL_CASE = "x4-subpixel-bicubic-residual"
# (height, width, tile): sizes that are not multiples of the tile, an image smaller than one tile, 1-pixel strips.
SHAPES = [(37, 53, 16), (9, 12, 16), (1, 45, 8), (45, 1, 8), (24, 40, 7)]
# x3 resizes: a strip wide enough (15000 output px) that TensorFlow's own resize weights would drift along it.
WIDE = {"x3-subpixel-bicubic-residual": (2, 5000, 700), "x3-upsampling-bilinear": (2, 2000, 300)}


def _max_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)), initial=0.0))


def _seam(whole, tiled, tile: int, scale: int) -> float:
    """The largest mean grey-level difference along one whole HR row or column at a tile edge."""
    diff = np.abs(np.asarray(whole, np.int16) - np.asarray(tiled, np.int16)).mean(axis=-1)
    edges = [edge * scale + offset for edge in range(tile, diff.shape[0] // scale, tile) for offset in (-1, 0)]
    rows = diff[edges].mean(axis=1).max(initial=0.0)
    edges = [edge * scale + offset for edge in range(tile, diff.shape[1] // scale, tile) for offset in (-1, 0)]
    columns = diff[:, edges].mean(axis=0).max(initial=0.0)
    return float(max(rows, columns))


def check(upscaler, rng, shapes=SHAPES) -> dict:
    field = upscaler.field
    result = {"radius": field.radius, "before": list(field.before), "after": list(field.after), "shapes": []}
    float_fn = upscaler.hr_fn
    for height, width, tile in shapes:
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        whole = upscale_tiled(upscaler.upscale_uint8, image, field, 0)
        tiled = upscale_tiled(upscaler.upscale_uint8, image, field, tile)
        unit = image.astype(np.float32) / 255.0
        whole_f = upscale_tiled(float_fn, unit, field, 0)
        tiled_f = upscale_tiled(float_fn, unit, field, tile)
        result["shapes"].append({"shape": [height, width], "tile": tile, "output": list(tiled.shape),
                                 "uint8": uint8_difference(whole, tiled), "float_max_diff": _max_diff(whole_f, tiled_f)})
    # One pixel short on one side at a time, on an image with many interior tile edges.
    image = rng.random((40, 40, 3), dtype=np.float32)
    whole_f = upscale_tiled(float_fn, image, field, 0)
    short = {}
    for side, axis in (("before", 0), ("before", 1), ("after", 0), ("after", 1)):
        values = list(getattr(field, side))
        values[axis] -= 1
        smaller = dataclasses.replace(field, **{side: tuple(values)})
        short[f"{side}[{axis}]"] = _max_diff(whole_f, upscale_tiled(float_fn, image, smaller, 8))
    result["short_context_max_diff"] = short
    # No context at all: every tile edge reads zero padding instead of the image.
    photo = skdata.astronaut()[::4, ::4][:48, :48]
    no_context = dataclasses.replace(field, before=(0, 0), after=(0, 0))
    result["no_context_seam"] = _seam(upscale_tiled(upscaler.upscale_uint8, photo, field, 0),
                                      upscale_tiled(upscaler.upscale_uint8, photo, no_context, 16), 16, field.scale)
    return result


def main(workdir):
    workdir = Path(workdir)
    rng = np.random.default_rng(0)
    results = {"onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS"), "isa": os.environ.get("ONEDNN_MAX_CPU_ISA")}
    for name, options in CASES.items():
        keras.utils.set_random_seed(len(results))
        path = workdir / f"{name}.keras"
        make_generator(**TINY, **options).save(path)
        results[name] = check(load_upscaler(path), rng, SHAPES + ([WIDE[name]] if name in WIDE else []))
        if name == SAVED_MODEL_CASE:
            export_generator(path, workdir / f"{name}_savedmodel")
            results[f"{name}-savedmodel"] = check(load_upscaler(workdir / f"{name}_savedmodel"), rng)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
