"""Inference benchmark, side by side on this machine: HR megapixels per second of the shipped SRResNet-16 x4 on a
2000x1500 HR photo (its 500x375 LR), uint8 in and out, for each engine `upscale` could use, and how far each is from
this machine's own matrix-product peak.

    python benchmarks/inference.py --out benchmarks/inference.json      (part of `make bench`)

Rows (each printed as it finishes):

- TensorFlow with oneDNN's kernels (``TF_ENABLE_ONEDNN_OPTS=1``, TensorFlow's default on x86 Linux): float32 and
  mixed_bfloat16 whole image; bf16 only where it is native (``sr_lib.inference.upscale.native_bf16``; elsewhere a
  "skipped: bf16 emulated" row); float32 at oneDNN's default tiles where it runs below AVX-512 (a whole image falls
  back to its reference convolution there, see ``plan_groups``);
- the `upscale` default: the engine and precision it picks (oneDNN bf16 where native; below AVX-512 Eigen float32),
  at its default tile and context, or whole where the photo fits one tile's memory, as `upscale` runs it
  (``tile_for_image``);
- the same engine and precision at tiles of the default side, what an image larger than one tile pays (where the
  default already tiles the photo, a line saying it is the same row);
- TensorFlow float32 with Eigen's kernels (``TF_ENABLE_ONEDNN_OPTS=0``), whole image;
- ONNX Runtime (CPU provider) on the same network: ``export_generator(..., onnx=True)``'s ``model.onnx`` through
  ``load_upscaler``, as `upscale --model model.onnx` runs it (float32, tiled at its default tile and context; a
  whole 2000x1500 image took 8.6 GiB there).

Each configuration group runs in its own process (oneDNN is switched when TensorFlow starts), and the default in a
process of its own, so that its peak RSS is what `upscale` needs. Times are the best of up to
``--repeats`` runs after a warm-up (one run when a run takes over ``--long-run`` seconds, to bound the time on slow
CPUs); CPU seconds (all threads) are recorded too, what a machine shared with other jobs can still compare.

Peak: a ``--matmul``-sized square ``tf.linalg.matmul``, float32 and (where native) bfloat16, timed in the oneDNN
process. The network's FLOPs per HR pixel count its convolutions' multiply-adds (2 FLOPs each; elementwise layers and
the resized residual branch are left out), so "% of peak" is a lower bound of the arithmetic rate.
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

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "saved_models" / "srresnet_x4" / "srresnet_x4.keras"
PHOTO = (1500, 2000)  # (height, width) of the LR photo of the optional `upscale` command run (--upscale-photo).


def _emit(kind: str, **data):
    """One result line of a worker (read by the parent as it arrives)."""
    print(json.dumps({"kind": kind, **data}), flush=True)


def _best(function, repeats: int, long_run: float):
    """(seconds, cpu_seconds): the fastest of up to ``repeats`` runs after a warm-up (one when a run is long)."""
    function()  # Warm-up: traces the function, creates the kernels' primitives for these shapes.
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        if times[-1] > long_run:
            break
    return min(times), min(cpu), len(times)


def matmul_peak(dtype: str, n: int, repeats: int = 5) -> float:
    """GFLOP/s of an ``n x n`` by ``n x n`` ``tf.linalg.matmul`` in ``dtype`` (the best of ``repeats``)."""
    import tensorflow as tf

    a = tf.cast(tf.random.stateless_uniform((n, n), (1, 2)), dtype)
    b = tf.cast(tf.random.stateless_uniform((n, n), (3, 4)), dtype)
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.linalg.matmul(x, y)[:1, :1], tf.float32)))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def conv_flops_per_hr_pixel(model, scale: int) -> float:
    """2 x the multiply-adds of every convolution per HR output pixel (each at its own resolution)."""
    import keras
    import numpy as np

    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    probe = keras.Model(model.inputs, [layer.output for layer in convs])
    outputs = probe([np.zeros((1, 8, 8, 3), np.float32)])
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    per_lr_pixel = 0.0
    for layer, output in zip(convs, outputs):
        factor = output.shape[1] / 8
        kh, kw = layer.kernel_size
        per_lr_pixel += 2 * kh * kw * layer.kernel.shape[2] * layer.filters * factor**2
    return per_lr_pixel / scale**2


def _onnx_upscaler(model_path, folder):
    """The ONNX Runtime upscaler of the same network, or (None, reason).

    ONNX HOOK: needs ``export_generator(..., onnx=True)`` (sr_lib.inference.export) and ``load_upscaler`` of a
    ``.onnx`` file (sr_lib.inference.upscaler), with tf2onnx and onnxruntime installed."""
    from sr_lib.inference.export import export_generator
    from sr_lib.inference.upscaler import load_upscaler

    start = time.perf_counter()
    try:
        export_generator(model_path, Path(folder) / "export", onnx=True)
        upscaler = load_upscaler(Path(folder) / "export" / "model.onnx")
    except (TypeError, ImportError, ValueError) as error:
        return None, f"skipped: no ONNX export here ({str(error).splitlines()[0][:200]})", 0.0
    return upscaler, None, time.perf_counter() - start


# "default": as `upscale` runs the image (tile_for_image); "side": tiles at the default side even where the image
# would fit one tile (what an image larger than one tile pays).
DEFAULT_TILES = ("default", "side")


def _worker(spec: dict):
    """Runs one group of configurations in this (fresh) process, emitting a line per result."""
    import resource


    sys.path.insert(0, str(ROOT / "benchmarks"))
    from sr_lib.inference.tiling import upscale_tiled
    from sr_lib.inference.upscale import (native_bf16, resolve_context, resolve_precision, resolve_tile,
                                          tile_for_image, with_precision)
    from sr_lib.inference.upscaler import load_upscaler
    from tile_context import lr_uint8, photo_hr

    upscaler = load_upscaler(spec["model"])
    image = lr_uint8(photo_hr(), upscaler.scale)
    megapixels = image.shape[0] * image.shape[1] * upscaler.scale**2 / 1e6
    if spec.get("peaks"):
        _emit("flops", flops_per_hr_pixel=conv_flops_per_hr_pixel(upscaler.model, upscaler.scale))
        _emit("peak", precision="float32", gflops=matmul_peak("float32", spec["matmul"]))
        if native_bf16():
            _emit("peak", precision="bfloat16", gflops=matmul_peak("bfloat16", spec["matmul"]))
    with tempfile.TemporaryDirectory() as folder:
        for config in spec["configs"]:
            row = dict(config)
            run, engine_upscaler = upscaler.upscale_uint8, upscaler
            if config["engine"] == "onnxruntime":
                engine_upscaler, skipped, export_seconds = _onnx_upscaler(spec["model"], folder)
                if skipped:
                    _emit("row", **row, skipped=skipped)
                    continue
                run, row["export_seconds"] = engine_upscaler.upscale_uint8, export_seconds
            else:
                row["precision"] = resolve_precision(upscaler, config["precision"])  # "auto": as `upscale` picks.
                if row["precision"] == "mixed_bfloat16":
                    if not native_bf16():
                        _emit("row", **row, skipped="skipped: bf16 emulated on this CPU (no native bf16 in oneDNN)")
                        continue
                    run = with_precision(upscaler, "mixed_bfloat16").upscale_uint8
            context = resolve_context(engine_upscaler, None, row["precision"]) if config["tile"] else None
            tile = (resolve_tile(engine_upscaler, None, context, row["precision"]) if config["tile"] in DEFAULT_TILES
                    else config["tile"])
            fitted = tile_for_image(engine_upscaler.field, tile, context, image.shape) if context is not None else 0
            if config["tile"] == "default":  # As `upscale` runs it: whole when the image fits one tile's memory.
                tile, context = fitted, context if fitted else None
            elif config.get("beside_default") and fitted:
                _emit("row", **{**row, "tile": tile, "context": context},
                      skipped="same as the default row (this image needs tiles there)")
                continue
            seconds, cpu, runs = _best(lambda: upscale_tiled(run, image, engine_upscaler.field, tile, context=context),
                                       spec["repeats"], spec["long_run"])
            row.update(tile=tile, context=context)
            _emit("row", **row, seconds=seconds, cpu_seconds=cpu, timed_runs=runs,
                  hr_megapixels=megapixels, hr_megapixels_per_second=megapixels / seconds,
                  hr_megapixels_per_cpu_second=megapixels / cpu,
                  peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _run_worker(spec: dict, onednn: bool, on_line, timeout: float):
    """Runs a worker, passing each result line to ``on_line`` as it arrives. A worker still running after
    ``timeout`` seconds is stopped, and its configurations without a result get a "timed out" row (a safety net:
    ``plan_groups`` already keeps oneDNN's whole-image rows off the CPUs where they would take an hour)."""
    import queue
    import threading

    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1" if onednn else "0", "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(spec)], stdout=subprocess.PIPE,
                                   stderr=stderr, text=True, env=env)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in process.stdout] + [lines.put(None)],
                         daemon=True).start()
        deadline, reported = time.perf_counter() + timeout, 0
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                process.kill()
                process.wait()
                for config in spec["configs"][reported:]:
                    on_line({"kind": "row", **config, "tile": config["tile"] or 0,
                             "skipped": f"timed out after {timeout:.0f} s (stopped)"})
                return
            if line is None:
                break
            if line.startswith("{"):
                result = json.loads(line)
                reported += result["kind"] == "row"
                on_line(result)
        if process.wait() != 0:
            stderr.seek(0)
            raise RuntimeError(f"benchmark worker {spec['configs']} failed:\n{stderr.read()[-3000:]}")


def _peak_rss_of_upscale(model, tile) -> dict:
    """Runs `python -m sr_lib upscale` on a 2000x1500 LR photo (an 8000x6000 output; the embedded astronaut,
    resized) and returns its wall time and peak RSS (``wait4`` on that process alone)."""
    from PIL import Image

    from sr_lib.data import default_images

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        photo = Image.fromarray(default_images("train")[0]).resize((PHOTO[1], PHOTO[0]), Image.Resampling.BICUBIC)
        photo.save(folder / "photo.png")
        command = [sys.executable, "-m", "sr_lib", "upscale", "--model", str(model), str(folder / "photo.png"),
                   "--out", str(folder / "out"), "--no-progress"] + (["--tile", str(tile)] if tile is not None else [])
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        stdout, stderr = process.stdout.read().decode(), process.stderr.read().decode()
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"upscale failed:\n{stderr[-3000:]}")
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss_mib": usage.ru_maxrss / 1024, "output": f"{PHOTO[1] * 4}x{PHOTO[0] * 4}",
            "upscale_says": stdout.strip().splitlines()[-1],
            "hr_megapixels_per_second": PHOTO[0] * PHOTO[1] * 16 / 1e6 / seconds}


def plan_groups(eigen_default: bool, onednn_below_avx512: bool, onnx: bool) -> list:
    """The worker processes, in order: ``(oneDNN on, configurations, also measure the peaks)``.

    The `upscale` default runs in a process of its own, so that its peak RSS is its own. Its engine and precision at
    tiles of the default side run beside that engine's whole image. Below AVX-512 oneDNN's float32 row also runs at
    its default tiles (sized under ``sr_lib.inference.upscale.AVX2_ONEDNN_BUDGET``): a whole image falls back to
    oneDNN's reference convolution there and does not finish in minutes, which would only buy a "timed out" row."""
    default_engine = "eigen" if eigen_default else "onednn"
    side = {"engine": default_engine, "precision": "auto", "tile": "side", "beside_default": True}
    onednn = [{"engine": "onednn", "precision": "mixed_bfloat16", "tile": 0},  # First: where bf16 is emulated, its
              {"engine": "onednn", "precision": "float32",  # skip line comes before the slower float32 run.
               "tile": "side" if onednn_below_avx512 else 0}] + ([] if eigen_default else [side])
    groups = [
        (True, onednn, True),
        # The engine `upscale` starts TensorFlow with (sr_lib.console.upscale_engine): Eigen below AVX-512.
        (not eigen_default, [{"engine": default_engine, "precision": "auto", "tile": "default", "default": True}],
         False),
        (False, [{"engine": "eigen", "precision": "float32", "tile": 0}] + ([side] if eigen_default else []), False),
    ]
    if onnx:
        # With TensorFlow started as `upscale` starts it, which sizes the default tile (TensorFlow does not compute).
        groups.append((not eigen_default, [{"engine": "onnxruntime", "precision": "float32", "tile": "default"}],
                       False))
    return groups


LABELS = {"onednn": "TensorFlow, oneDNN", "eigen": "TensorFlow, Eigen", "onnxruntime": "ONNX Runtime (CPU)"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(MODEL))
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row after a warm-up (best kept)")
    parser.add_argument("--long-run", type=float, default=5.0, help="one timed run when a run takes longer (s)")
    parser.add_argument("--matmul", type=int, default=2048, help="side of the square matmul timed for the peak")
    parser.add_argument("--worker-timeout", type=float, default=180.0,
                        help="seconds after which a configuration group is stopped and its rows say so")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime row (its export takes a while)")
    parser.add_argument("--upscale-photo", action="store_true",
                        help="also time `python -m sr_lib upscale` on a 2000x1500 LR photo and record its peak RSS "
                             "(minutes; not part of `make bench`)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "inference.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(json.loads(args.worker))
        return

    from sr_lib.console import upscale_engine
    from sr_lib.core.device import cpu_bf16_flags, cpu_name, onednn_isa_below_avx512

    started = time.perf_counter()
    base = {"model": args.model, "repeats": args.repeats, "long_run": args.long_run, "matmul": args.matmul}
    groups = plan_groups(eigen_default=upscale_engine(["upscale"], os.environ) == {"TF_ENABLE_ONEDNN_OPTS": "0"},
                         onednn_below_avx512=onednn_isa_below_avx512(), onnx=not args.no_onnx)
    state = {"peaks": {}, "flops": None, "rows": []}
    print(f"{cpu_name()}; shipped SRResNet-16 x4 on a 500x375 LR photo (2000x1500 HR), uint8 in and out", flush=True)
    print(f"{'engine':<20} {'precision':<15} {'image':<26} {'HR MP/s':>8} {'MP/CPU-s':>8} {'GFLOP/s':>8} "
          f"{'of peak':>8} {'RSS MiB':>8}", flush=True)

    def on_line(line):
        kind = line.pop("kind")
        if kind == "flops":
            state["flops"] = line["flops_per_hr_pixel"]
            print(f"network: {state['flops'] / 1e3:.0f} kFLOP per HR pixel (convolutions)", flush=True)
        elif kind == "peak":
            state["peaks"][line["precision"]] = line["gflops"]
            print(f"matmul peak {line['precision']:<9} {line['gflops']:8.1f} GFLOP/s ({args.matmul}^2 x {args.matmul})",
                  flush=True)
        else:
            state["rows"].append(line)
            image = ((f"tiles {line['tile']}+{line['context']} px" if line.get("tile") else "whole image")
                     + (" (default)" if line.get("default") else ""))
            if "skipped" in line:
                print(f"{LABELS[line['engine']]:<20} {line['precision']:<15} {line['skipped']}", flush=True)
                return
            gflops = line["hr_megapixels_per_second"] * state["flops"] / 1e3  # Useful pixels only, for tiles.
            line["gflops"] = gflops
            line.update({f"fraction_of_{p}_peak": gflops / g for p, g in state["peaks"].items()})
            own = "bfloat16" if line["precision"] == "mixed_bfloat16" else "float32"
            print(f"{LABELS[line['engine']]:<20} {line['precision']:<15} {image:<26} "
                  f"{line['hr_megapixels_per_second']:8.3f} {line['hr_megapixels_per_cpu_second']:8.3f} {gflops:8.1f} "
                  f"{line[f'fraction_of_{own}_peak']:8.1%} {line['peak_rss_mib']:8.0f}", flush=True)

    for onednn, configs, peaks in groups:
        _run_worker({**base, "configs": configs, "peaks": peaks}, onednn, on_line, args.worker_timeout)
    ratios = _ratios(state["rows"])
    for name, value in ratios.items():
        if value["ratio"] is None:
            print(f"{name}: not measured (a row did not finish)")
        else:
            print(f"{name}: {value['ratio']:.3f} (target >= {value['target']}: {'met' if value['met'] else 'NOT met'})")
    photo = None
    if args.upscale_photo:
        photo = _peak_rss_of_upscale(args.model, tile=None)
        print(f"upscale of a {PHOTO[1]}x{PHOTO[0]} LR photo (x4, default tile): peak RSS {photo['peak_rss_mib']:.0f} "
              f"MiB, {photo['seconds']:.0f} s (start-up and PNG writing included)")
    import tensorflow as tf

    machine = {"processor": cpu_name(), "bf16": cpu_bf16_flags(), "cores": os.cpu_count(),
               "tensorflow": tf.__version__, "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA"),
               "model": os.path.relpath(args.model, ROOT), "lr_size": [375, 500], "repeats": args.repeats,
               "matmul_peak_gflops": state["peaks"], "flops_per_hr_pixel": state["flops"],
               "seconds": time.perf_counter() - started}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "throughput": state["rows"], "ratios": ratios, "photo": photo},
                              indent=2) + "\n")
    print(f"written: {out} ({machine['seconds']:.0f} s)")


def _ratios(rows) -> dict:
    """The issue's targets: the default / the whole image (same engine and precision), and the same for tiles of the
    default side (what an image larger than one tile pays); the default engine and precision / the fastest
    TensorFlow one, on whole images (the choice alone) and as run; the default / ONNX Runtime as `upscale` runs a
    model.onnx. A ratio whose rows did not finish is None."""
    measured = [row for row in rows if "skipped" not in row]
    default = next((row for row in measured if row.get("default")), None)
    if default is None:
        return {}
    key = (default["engine"], default["precision"])
    rate = default["hr_megapixels_per_second"]
    whole = {(row["engine"], row["precision"]): row["hr_megapixels_per_second"] for row in measured
             if not row["tile"] and not row.get("default")}
    default_whole = whole.get(key)
    side = next((row for row in measured if row["tile"] and (row["engine"], row["precision"]) == key), None)
    how = "tiled" if default["tile"] else "whole: the image fits one tile's memory"
    ratios = {f"default ({how}) / whole image": (rate / default_whole if default_whole else None, 0.85),
              "tiles at the default side / whole image": (
                  side["hr_megapixels_per_second"] / default_whole if side and default_whole else None, 0.85)}
    if whole:
        fastest, (engine, precision) = max((v, k) for k, v in whole.items())
        label = f"fastest TensorFlow ({engine} {precision}, whole image)"
        ratios[f"default's engine and precision / {label}"] = (default_whole / fastest if default_whole else None,
                                                                0.95)
        ratios[f"default / {label}"] = (rate / fastest, 0.95)
    onnx = next((row for row in measured if row["engine"] == "onnxruntime"), None)
    if onnx is not None:
        tiles = f"tiles {onnx['tile']}+{onnx['context']} px" if onnx["tile"] else "whole image"
        ratios[f"default / ONNX Runtime ({onnx['precision']}, {tiles})"] = (
            rate / onnx["hr_megapixels_per_second"], 0.9)
    return {name: {"ratio": ratio, "target": target, "met": None if ratio is None else ratio >= target}
            for name, (ratio, target) in ratios.items()}


if __name__ == "__main__":
    main()
