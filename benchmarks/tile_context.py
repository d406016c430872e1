"""How much context a tile needs: tiled against whole-image inference of the shipped generator, as a function of the
context each tile reads around the cells it keeps (LR pixels per side), on real photographs.

    python benchmarks/tile_context.py --out benchmarks/tile_context.json

The exact context is the receptive field (SRResNet-16 x4: 40 LR px), but the influence of far pixels on a trained
network's output decays, so a smaller context may change no uint8 pixel by more than rounding does. Measured on
Set14 (HR bicubic-downscaled x4 by the evaluation protocol's ``make_lr``, LR rounded to uint8 as a saved photo is) and
on one 2000x1500 HR photograph (an embedded scikit-image photo, cropped to 4:3 and resized; its 500x375 LR has a real
photo's statistics), with small tiles (``--tile``, default 32 LR px) so that nearly every pixel is near a tile edge:
a stricter test than the default tile, whose edges are about ten times sparser. Per context: the largest uint8
difference (grey levels), the number and fraction of pixels (any channel) that differ, and the largest float
difference before rounding (grey levels). The chosen context is the smallest whose every larger measured context
also keeps "at most 1 grey level, at most 1 pixel in 10^4". Runs with the kernels TensorFlow picks (as ``upscale``),
in float32 and, where the CPU has bf16 instructions, under mixed_bfloat16 (``upscale``'s precision there), each
against the whole image in the same precision: bfloat16 rounds every activation to 8 bits, so a far pixel's small
contribution can flip a rounding and needs more context to vanish.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from sr_lib.core import ranges  # noqa: E402
from sr_lib.core.device import cpu_name  # noqa: E402
from sr_lib.inference.upscale import native_bf16, with_precision  # noqa: E402
from sr_lib.data import default_images  # noqa: E402
from sr_lib.evaluation.evaluate import load_benchmark, make_lr  # noqa: E402
from sr_lib.inference.tiling import upscale_tiled  # noqa: E402
from sr_lib.inference.upscaler import load_upscaler  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "saved_models" / "srresnet_x4" / "srresnet_x4.keras"
SET14 = ROOT.parent / "shared" / "sr-benchmarks" / "Set14" / "HR"
PHOTO_HR = (1500, 2000)  # (height, width)
MAX_GREY_LEVELS, MAX_PIXEL_FRACTION = 1, 1e-4  # The bound tiles must keep (tests/tolerances.py).


def photo_hr() -> np.ndarray:
    """A 2000x1500 HR photograph: the embedded rocket photo (427x640), centre-cropped to 4:3 and resized (bicubic)."""
    image = default_images("train")[1]
    height, width = image.shape[:2]
    crop = min(width, height * 4 // 3)
    image = image[:, (width - crop) // 2:(width - crop) // 2 + crop]
    return np.asarray(Image.fromarray(image).resize(PHOTO_HR[::-1], Image.Resampling.BICUBIC))


def lr_uint8(hr: np.ndarray, scale: int) -> np.ndarray:
    _, lr = make_lr(hr, scale)
    return np.asarray(ranges.unit_to_uint8(lr))


def _float_and_uint8(upscaler, image_uint8, field, tile, context=None):
    """SR in [-1, 1] (float32) and as uint8, from one pass: the uint8 image is ``hr_to_uint8`` of the float one, which
    is elementwise, so it is what ``upscale`` writes for the same tiles."""
    unit = np.asarray(ranges.uint8_to_unit_exact(image_uint8))
    sr = upscale_tiled(upscaler.hr_fn, unit, field, tile, context=context)
    return sr, np.asarray(ranges.hr_to_uint8(sr))


def compare(whole, tiled) -> dict:
    (whole_f, whole_u), (tiled_f, tiled_u) = whole, tiled
    diff = np.abs(whole_u.astype(np.int16) - tiled_u.astype(np.int16)).max(axis=-1)
    return {"max_grey_levels": int(diff.max(initial=0)), "pixels_differ": int(np.count_nonzero(diff)),
            "pixels": int(diff.size), "float_max_grey_levels": float(np.abs(whole_f - tiled_f).max()) * 127.5}


def _total(rows) -> dict:
    total = {"max_grey_levels": max(r["max_grey_levels"] for r in rows),
             "pixels_differ": sum(r["pixels_differ"] for r in rows), "pixels": sum(r["pixels"] for r in rows),
             "float_max_grey_levels": max(r["float_max_grey_levels"] for r in rows)}
    total["fraction"] = total["pixels_differ"] / total["pixels"]
    return total


def keeps_bound(row) -> bool:
    return row["max_grey_levels"] <= MAX_GREY_LEVELS and row["fraction"] <= MAX_PIXEL_FRACTION


def measure(upscaler, images, groups, contexts, tile) -> dict:
    """Rows of tiled-against-whole differences per context, printed as each finishes, and the chosen context."""
    field = upscaler.field
    start = time.perf_counter()
    whole = {key: _float_and_uint8(upscaler, image, field, 0) for key, image in images.items()}
    print(f"whole-image references: {len(images)} images, {time.perf_counter() - start:.0f} s; receptive field "
          f"{field.radius} LR px; tiles of {tile} LR px", flush=True)
    header = f"{'context':>7} {'max grey':>8} {'pixels differ':>14} {'fraction':>10} {'float max':>9}  bound   seconds"
    print(header + "   (Set14 | photo)", flush=True)
    rows = []
    for context in contexts:
        start = time.perf_counter()
        per_image = {key: compare(whole[key], _float_and_uint8(upscaler, image, field, tile, context))
                     for key, image in images.items()}
        row = {"context": min(context, field.radius), **_total(per_image.values()),
               "by_set": {name: _total([per_image[k] for k in keys]) for name, keys in groups.items()},
               "worst_image": max(per_image, key=lambda k: (per_image[k]["max_grey_levels"],
                                                            per_image[k]["pixels_differ"])),
               "seconds": time.perf_counter() - start}
        row["keeps_bound"] = keeps_bound(row)
        rows.append(row)
        parts = " | ".join(f"{s['max_grey_levels']} grey, {s['pixels_differ']} px" for s in row["by_set"].values())
        print(f"{row['context']:>7} {row['max_grey_levels']:>8} {row['pixels_differ']:>14} {row['fraction']:>10.2e} "
              f"{row['float_max_grey_levels']:>9.1e}  {'yes' if row['keeps_bound'] else 'no ':<5} "
              f"{row['seconds']:>8.0f}   ({parts})", flush=True)
    chosen = None
    for row in sorted(rows, key=lambda r: r["context"], reverse=True):  # Smallest with every larger one passing.
        if not row["keeps_bound"]:
            break
        chosen = row["context"]
    print(f"smallest context keeping <= {MAX_GREY_LEVELS} grey level on <= {MAX_PIXEL_FRACTION:g} of pixels: "
          f"{chosen} LR px (receptive field {field.radius})", flush=True)
    return {"contexts": rows, "chosen_context": chosen}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(MODEL))
    parser.add_argument("--set14", default=str(SET14))
    parser.add_argument("--contexts", default="4,8,10,12,14,16,20,24,32,40", help="LR px per side, comma-separated")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16",
                        help="mixed_bfloat16 is measured only where the CPU has bf16 instructions")
    parser.add_argument("--tile", type=int, default=32, help="kept tile side (LR px) of the measurement")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "tile_context.json"))
    args = parser.parse_args(argv)

    upscaler = load_upscaler(args.model)
    names, hrs = load_benchmark(args.set14)
    images = {f"Set14/{name}": lr_uint8(hr, upscaler.scale) for name, hr in zip(names, hrs)}
    images["photo 2000x1500"] = lr_uint8(photo_hr(), upscaler.scale)
    groups = {"Set14": [k for k in images if k.startswith("Set14/")], "photo 2000x1500": ["photo 2000x1500"]}
    contexts = [int(v) for v in args.contexts.split(",")]
    out = Path(args.out)
    earlier = json.loads(out.read_text()).get("precisions", {}) if out.is_file() else {}
    precisions = {}  # Those measured now replace their earlier results in --out; the others are kept.
    for precision in args.precisions.split(","):
        if precision == "mixed_bfloat16" and not native_bf16():
            print("mixed_bfloat16: skipped, bf16 emulated on this CPU", flush=True)
            continue
        print(f"--- {precision}", flush=True)
        precisions[precision] = measure(with_precision(upscaler, precision), images, groups, contexts, args.tile)
    result = {"machine": {"processor": cpu_name(), "tensorflow": tf.__version__,
                          "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
                          "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA")},
              "model": os.path.relpath(args.model, ROOT), "receptive_field": upscaler.field.to_json(),
              "tile": args.tile, "images": {key: list(image.shape[:2]) for key, image in images.items()},
              "bound": {"max_grey_levels": MAX_GREY_LEVELS, "max_pixel_fraction": MAX_PIXEL_FRACTION},
              "precisions": {**earlier, **precisions}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
