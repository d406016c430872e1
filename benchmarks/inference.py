"""Inference benchmark: HR megapixels per second of the paper-size generator (16 blocks, 64 channels, x4; random
weights, which do not change the speed), whole-image and tiled, float32 and mixed precision, and the peak memory
(RSS) of `python -m sr_lib upscale` on a 2000x1500 photo.

    python benchmarks/inference.py --out benchmarks/inference.json      (part of `make bench`)

Each configuration runs in its own process, because oneDNN can only be switched (TF_ENABLE_ONEDNN_OPTS) before
TensorFlow starts: `upscale` runs with it off, which makes tiles bit-identical to the whole image (sr_lib.inference.tiling); the
table also shows what oneDNN would give. Throughput is uint8 LR in, uint8 SR out, timed after one warm-up run (which
traces the function), the best of ``--repeats`` runs; wall-clock and CPU time (all threads) are both recorded, the
latter being what a machine shared with other jobs can still compare.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHOTO = (1500, 2000)  # (height, width) of the LR photo whose upscaling's peak RSS is measured.


def _worker(spec: dict) -> dict:
    """One throughput measurement, in this (fresh) process."""
    import keras
    import numpy as np
    import tensorflow as tf

    from sr_lib.core import ranges
    from sr_lib.inference.upscaler import load_upscaler
    from sr_lib.nets.models import make_generator
    from sr_lib.inference.tiling import upscale_tiled

    keras.utils.set_random_seed(0)
    height, width = spec["size"]
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    if spec["precision"] == "float32":  # Exactly what `upscale` runs: the .keras file's float32 inference copy.
        with tempfile.TemporaryDirectory() as folder:
            make_generator(num_blocks=spec["blocks"], channels=spec["channels"], scale=4).save(f"{folder}/g.keras")
            upscaler = load_upscaler(f"{folder}/g.keras")
        run, field = upscaler.upscale_uint8, upscaler.field
        tile = field.default_tile() if spec["tile"] == "default" else spec["tile"]
    else:
        keras.mixed_precision.set_global_policy(spec["precision"])
        model = make_generator(num_blocks=spec["blocks"], channels=spec["channels"], scale=4)

        @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8)])
        def run(images):
            return ranges.hr_to_uint8(model(ranges.uint8_to_unit_exact(images), training=False))

        field, tile = None, 0
    upscale_tiled(run, image, field, tile)  # Warm-up: traces the function.
    times, cpu = [], []
    for _ in range(spec["repeats"]):
        start, start_cpu = time.perf_counter(), time.process_time()
        upscale_tiled(run, image, field, tile)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    megapixels = height * width * 16 / 1e6
    return {"seconds": min(times), "cpu_seconds": min(cpu), "hr_megapixels": megapixels, "tile": tile,
            "hr_megapixels_per_second": megapixels / min(times), "hr_megapixels_per_cpu_second": megapixels / min(cpu)}


def _run_worker(spec: dict, onednn: bool) -> dict:
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1" if onednn else "0"}
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark worker {spec} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _peak_rss_of_upscale(blocks, channels, tile) -> dict:
    """Runs `python -m sr_lib upscale` on a 2000x1500 photo (the embedded astronaut, resized) and returns its wall
    time and peak RSS (``wait4`` on that process alone)."""
    from PIL import Image

    from sr_lib.data import default_images
    from sr_lib.nets.models import make_generator

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        make_generator(num_blocks=blocks, channels=channels, scale=4).save(folder / "g.keras")
        photo = Image.fromarray(default_images("train")[0]).resize((PHOTO[1], PHOTO[0]), Image.Resampling.BICUBIC)
        photo.save(folder / "photo.png")
        command = [sys.executable, "-m", "sr_lib", "upscale", "--model", str(folder / "g.keras"),
                   str(folder / "photo.png"), "--out", str(folder / "out"), "--no-progress"]
        if tile is not None:
            command += ["--tile", str(tile)]
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        stdout, stderr = process.stdout.read().decode(), process.stderr.read().decode()
        if process.returncode != 0:
            raise RuntimeError(f"upscale failed:\n{stderr[-3000:]}")
        with Image.open(folder / "out" / "photo_x4.png") as result:
            assert result.size == (PHOTO[1] * 4, PHOTO[0] * 4)
        used = stdout.strip().splitlines()[-1]
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss_mib": usage.ru_maxrss / 1024, "output": f"{PHOTO[1] * 4}x{PHOTO[0] * 4}",
            "upscale_says": used, "hr_megapixels_per_second": PHOTO[0] * PHOTO[1] * 16 / 1e6 / seconds}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="300x400", help="LR image HxW for the throughput rows (default 300x400: "
                                                          "a 1200x1600 output, larger than one default tile)")
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-photo", action="store_true", help="skip the 2000x1500 peak-RSS run (minutes)")
    parser.add_argument("--out", default="benchmarks/inference.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return

    from sr_lib.core.device import cpu_name, resolve_precision

    height, width = (int(v) for v in args.size.lower().split("x"))
    mixed = resolve_precision("auto")
    mixed = mixed if mixed != "float32" else "mixed_bfloat16"
    base = {"size": [height, width], "blocks": args.blocks, "channels": args.channels, "repeats": args.repeats}
    configurations = [  # (label, precision, tile, oneDNN)
        ("whole image (upscale --tile 0)", "float32", 0, False),
        ("tiled (upscale default tile)", "float32", "default", False),
        ("whole image, oneDNN on", "float32", 0, True),
        ("whole image, oneDNN on", mixed, 0, True),
    ]
    rows = []
    for label, precision, tile, onednn in configurations:
        result = _run_worker({**base, "precision": precision, "tile": tile}, onednn)
        rows.append({"benchmark": label, "precision": precision, "onednn": onednn, **result})
        print(f"{label:<32} {precision:<15} {result['hr_megapixels_per_second']:8.3f} HR MP/s, "
              f"{result['hr_megapixels_per_cpu_second']:.3f} HR MP per CPU-second "
              f"({result['seconds']:.1f} s, {result['cpu_seconds']:.1f} CPU-s for {result['hr_megapixels']:.2f} MP)",
              flush=True)
    photo = None
    if not args.skip_photo:
        photo = _peak_rss_of_upscale(args.blocks, args.channels, tile=None)
        print(f"upscale of a {PHOTO[1]}x{PHOTO[0]} photo (x4, default tile): peak RSS {photo['peak_rss_mib']:.0f} MiB, "
              f"{photo['seconds']:.0f} s, {photo['cpu_seconds']:.0f} CPU-s (start-up and PNG writing included)")
    import keras
    import tensorflow as tf

    machine = {"processor": cpu_name(), "cores": os.cpu_count(), "tensorflow": tf.__version__,
               "keras": keras.__version__, "lr_size": [height, width], "blocks": args.blocks,
               "channels": args.channels, "repeats": args.repeats}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "throughput": rows, "photo": photo}, indent=2) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
