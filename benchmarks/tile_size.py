"""Throughput and memory against tile size: the shipped SRResNet-16 x4 on a 2000x1500 HR photo (its 500x375 LR), whole
and in tiles of several sizes at the default (measured) context, in the precision `upscale` picks (``--precision``),
with the kernels TensorFlow picks.

    python benchmarks/tile_size.py --out benchmarks/tile_size.json

Each configuration runs in its own process, so that its peak RSS (``ru_maxrss``) is its own. Per row: HR MP/s on the
photo (the best of ``--repeats`` runs after a warm-up), and the rate of an image much larger than the tile, measured on
one interior tile: its read window (tile + 2 x context per axis) run whole, counting only the pixels it keeps, which
is what every interior tile of a large photo costs. Ratios are to the whole photo, in the same process set-up. The
peak RSS is the photo's (read before the window run), TensorFlow and the model included.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "saved_models" / "srresnet_x4" / "srresnet_x4.keras"


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _best(function, repeats):
    function()  # Warm-up: traces the function, creates the kernels' primitives for these shapes.
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def _worker(spec: dict) -> dict:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import numpy as np

    from sr_lib.inference.tiling import upscale_tiled
    from sr_lib.inference.upscale import default_context, resolve_precision, resolve_tile, with_precision
    from sr_lib.inference.upscaler import load_upscaler
    from tile_context import lr_uint8, photo_hr

    upscaler = load_upscaler(spec["model"])
    precision = resolve_precision(upscaler, spec["precision"])
    upscaler = with_precision(upscaler, precision)
    field, scale = upscaler.field, upscaler.scale
    context = default_context(field, precision) if spec["context"] is None else spec["context"]
    image = lr_uint8(photo_hr(), scale)
    height, width = image.shape[:2]
    tile = resolve_tile(upscaler, None, context, precision) if spec["tile"] == "default" else spec["tile"]
    baseline = _rss_mib()
    run = upscaler.upscale_uint8
    seconds = _best(lambda: upscale_tiled(run, image, field, tile, context=context), spec["repeats"])
    result = {"tile": tile, "context": context if tile else None, "precision": precision, "lr_size": [height, width],
              "seconds": seconds, "hr_megapixels_per_second": height * width * scale**2 / 1e6 / seconds,
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Before the window run.
    if tile:
        side = tile + 2 * min(context, field.radius)
        window = np.ascontiguousarray(np.resize(image, (side, side, 3)))
        window_seconds = _best(lambda: run(window[np.newaxis]), spec["repeats"])
        result.update(window=side, window_seconds=window_seconds,
                      large_image_hr_megapixels_per_second=tile**2 * scale**2 / 1e6 / window_seconds,
                      pixel_overhead=(side / tile) ** 2)
    rows, columns = (min(size, tile + 2 * context) if tile else size for size in (height, width))
    value_bytes = 2 if precision == "mixed_bfloat16" else 4
    result.update(baseline_rss_mib=baseline,
                  largest_activation_mib=rows * columns * field.bytes_per_pixel * value_bytes / 4 / 2**20)
    return result


def run_worker(spec: dict, env=None) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise RuntimeError(f"worker {spec} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(MODEL))
    parser.add_argument("--tiles", default="64,128,192,256,384,default", help="kept tile sides (LR px)")
    parser.add_argument("--context", type=int, help="LR px per side (default: upscale's default)")
    parser.add_argument("--precision", default="auto", help="auto (as upscale), float32 or mixed_bfloat16")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "tile_size.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return
    from sr_lib.core.device import cpu_name

    base = {"model": args.model, "context": args.context, "repeats": args.repeats, "precision": args.precision}
    rows = []
    whole = run_worker({**base, "tile": 0})
    rows.append(whole)
    print(f"{whole['precision']}; {cpu_name()}", flush=True)
    print(f"{'tile':>8} {'context':>7} {'HR MP/s':>8} {'x whole':>7} {'large image':>11} {'x whole':>7} "
          f"{'activation':>10} {'peak RSS':>8}", flush=True)

    def show(row):
        large = row.get("large_image_hr_megapixels_per_second")
        print(f"{row['tile'] or 'whole':>8} {row['context'] or '':>7} {row['hr_megapixels_per_second']:8.3f} "
              f"{row['hr_megapixels_per_second'] / whole['hr_megapixels_per_second']:7.3f} "
              + (f"{large:11.3f} {large / whole['hr_megapixels_per_second']:7.3f} " if large else f"{'':>20}")
              + f"{row['largest_activation_mib']:8.0f} MiB {row['peak_rss_mib']:5.0f} MiB", flush=True)

    show(whole)
    for tile in args.tiles.split(","):
        row = run_worker({**base, "tile": tile if tile == "default" else int(tile)})
        row["default"] = tile == "default"
        rows.append(row)
        show(row)
    out = Path(args.out)
    out.write_text(json.dumps({"machine": {"processor": cpu_name(),
                                           "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
                                           "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA")},
                               "model": os.path.relpath(args.model, ROOT), "rows": rows}, indent=2) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
