"""Throughput benchmark: patches per second of a generator MSE training step, a full SRGAN step (D + G + VGG54) and
the input pipeline alone, at the paper's sizes (batch 16, 96-px HR crops, 16 blocks, 64 channels), in float32 and in
mixed precision where the device has it natively (``resolve_precision("auto")``; a CPU without bf16 instructions only
emulates bfloat16, so that row is skipped and says so), on whatever device TensorFlow finds. Each row is printed as it
finishes.

    python benchmarks/training.py --out benchmarks/results.json

Training steps are fed one fixed in-memory batch so they measure compute only; the pipeline is measured separately on
the embedded photographs. VGG weights are random here: speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from sr_lib import data as data_lib  # noqa: E402
from sr_lib import losses as losses_lib  # noqa: E402
from sr_lib.nets.models import make_discriminator, make_generator  # noqa: E402
from sr_lib.core.device import cpu_name, resolve_precision  # noqa: E402
from sr_lib.training.trainers import SRGAN  # noqa: E402


class _BatchClock(keras.callbacks.Callback):
    """Step end times; stops ``fit`` once at least two steps after the warm-up have run and ``max_seconds`` have
    passed since it, so that a slow CPU times fewer steps instead of running for many minutes."""

    def __init__(self, warmup, max_seconds):
        super().__init__()
        self.warmup, self.max_seconds, self.times = warmup, max_seconds, []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())
        timed = len(self.times) - self.warmup
        if timed >= 2 and self.times[-1] - self.times[self.warmup - 1] >= self.max_seconds:
            self.model.stop_training = True


def _time_fit(model, batch, warmup, steps, max_seconds):
    """(patches per second, timed steps): up to ``steps`` training steps after ``warmup`` steps, inside one ``fit``
    call (a new ``fit`` call traces its step function again, which would otherwise be timed); fewer when they take
    longer than ``max_seconds``."""
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    clock = _BatchClock(warmup, max_seconds)
    model.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[clock], shuffle=False)
    timed = len(clock.times) - warmup
    return int(batch[0].shape[0]) * timed / (clock.times[-1] - clock.times[warmup - 1]), timed


def bench_generator(policy, batch_size, hr_size, blocks, channels, warmup, steps, max_seconds):
    keras.mixed_precision.set_global_policy(policy)
    generator = make_generator(num_blocks=blocks, channels=channels, scale=4)
    generator.compile(optimizer=keras.optimizers.Adam(1e-4, beta_1=0.9), loss=losses_lib.pixel_mse)
    return _time_fit(generator, _random_batch(batch_size, hr_size), warmup, steps, max_seconds)


def bench_srgan(policy, batch_size, hr_size, blocks, channels, warmup, steps, max_seconds):
    keras.mixed_precision.set_global_policy(policy)
    generator = make_generator(num_blocks=blocks, channels=channels, scale=4)
    discriminator = make_discriminator(hr_size=hr_size, channels=64)
    content = losses_lib.make_content_loss("vgg54", vgg_weights=None)
    adversarial = losses_lib.get_adversarial_loss("modified")
    gan = SRGAN(generator, discriminator)
    gan.compile(keras.optimizers.Adam(1e-4, beta_1=0.9), keras.optimizers.Adam(1e-4, beta_1=0.9),
                losses_lib.GeneratorLoss(content, adversarial), adversarial)
    return _time_fit(gan, _random_batch(batch_size, hr_size), warmup, steps, max_seconds)


def _random_batch(batch_size, hr_size):
    rng = np.random.default_rng(0)
    lr = rng.random((batch_size, hr_size // 4, hr_size // 4, 3), dtype=np.float32)
    hr = rng.random((batch_size, hr_size, hr_size, 3), dtype=np.float32) * 2 - 1
    return tf.constant(lr), tf.constant(hr)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--hr-size", type=int, default=96)
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="timed steps at most")
    parser.add_argument("--max-seconds", type=float, default=20.0,
                        help="a row times fewer steps (at least 2) once its timed steps have taken this long, which "
                             "keeps `make bench` within 10 minutes on a 2-core AVX2 CPU")
    parser.add_argument("--out", default="benchmarks/results.json")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 2:
        parser.error("--warmup must be >= 1 and --steps >= 2")

    started = time.perf_counter()
    mixed = resolve_precision("auto")
    policies = ["float32"] + ([mixed] if mixed != "float32" else [])  # A precision this CPU only emulates: skipped.
    sizes = (args.batch_size, args.hr_size, args.blocks, args.channels, args.warmup, args.steps, args.max_seconds)
    rows = []
    print(f"{'benchmark':<30} {'precision':<18} {'patches/s':>10} {'steps':>6}", flush=True)

    def add(row):
        rows.append(row)
        value = row.get("skipped") or f"{row['patches_per_second']:10.1f} {row.get('timed_steps', ''):>6}"
        print(f"{row['benchmark']:<30} {row['precision']:<18} {value:>10}", flush=True)

    for policy in policies:
        for name, bench in (("generator MSE step", bench_generator), ("SRGAN step (D + G + VGG54)", bench_srgan)):
            rate, timed = bench(policy, *sizes)
            add({"benchmark": name, "precision": policy, "patches_per_second": rate, "timed_steps": timed})
    if mixed == "float32":
        add({"benchmark": "generator and SRGAN steps", "precision": "mixed_bfloat16",
             "skipped": "skipped: bf16 emulated on this CPU (train.mixed_precision: auto picks float32)"})
    keras.mixed_precision.set_global_policy("float32")
    add({"benchmark": "input pipeline", "precision": "uint8 -> float32",
         "patches_per_second": data_lib.crops_per_second(data_lib.default_images("train"), args.batch_size,
                                                         args.hr_size, steps=200)})

    device = tf.config.list_physical_devices("GPU")
    machine = {"device": device[0].name if device else f"CPU ({os.cpu_count()} cores)",
               "processor": cpu_name(), "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA"),
               "tensorflow": tf.__version__,
               "keras": keras.__version__, "batch_size": args.batch_size, "hr_size": args.hr_size,
               "blocks": args.blocks, "channels": args.channels, "max_timed_steps": args.steps,
               "max_seconds": args.max_seconds, "seconds": time.perf_counter() - started}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "results": rows}, indent=2) + "\n")
    print(f"written: {out} ({machine['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
