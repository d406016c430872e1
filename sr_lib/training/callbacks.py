"""Keras callbacks used by both training phases: validation (PSNR/SSIM), best/final weights, checkpoints,
image grids, and a guard that stops on a non-finite loss.

Paths may be local or ``tf.io.gfile`` URLs (``gs://...``; see :mod:`sr_lib.core.storage`). Validation and image grids run
the generator on this process's own copy of the weights, with no cross-replica communication, so that under a
multi-worker strategy the chief alone can validate and write while the other workers train on.

One "epoch" of ``fit`` is ``train.validate_every`` steps, so every callback here acts once per validation interval,
and the step count is ``(epoch + 1) * steps_per_epoch``. The callbacks share one ``RunState`` so the order of
validation, checkpoint and CSV row is fixed: validation adds its numbers to the epoch's logs first, then the
checkpoint is written, then ``CSVLog`` writes the row.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import keras

from sr_lib.core import storage
from sr_lib.nets.saving import save_model_atomic
from sr_lib.evaluation import plots
from sr_lib.evaluation.evaluate import comparison_rows, evaluate_arrays


class TrainingDivergedError(RuntimeError):
    """A loss became NaN or infinite; training stopped and the last good checkpoint was kept."""


@dataclass
class RunState:
    """What the callbacks share and what a checkpoint stores besides weights."""

    steps_per_epoch: int
    step: int = 0
    best_psnr_y: float = -math.inf
    best_step: int = -1
    diverged: str | None = None  # The message, once a loss is non-finite.

    def to_state(self) -> dict:
        return {"best_psnr_y": self.best_psnr_y, "best_step": self.best_step}


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops ``fit`` at the first batch whose logged loss terms are NaN or infinite."""

    def __init__(self, state: RunState):
        super().__init__()
        self.state = state
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        for key, value in (logs or {}).items():
            value = float(value)
            if not math.isfinite(value):
                step = self._epoch * self.state.steps_per_epoch + batch + 1
                self.state.diverged = f"loss term '{key}' became {value} at step {step}"
                self.model.stop_training = True
                return


class ValidationCallback(keras.callbacks.Callback):
    """PSNR/SSIM of the generator on the fixed validation crops, on Y with a border of ``scale`` pixels (the paper's
    protocol) and on RGB; SR is rounded to uint8 first, as a saved image would be. Keeps the best generator.
    """

    def __init__(self, generator, valid_lr, valid_hr, scale, state: RunState, run_dir, batch_size=8):
        super().__init__()
        self.generator = generator
        self.valid_lr = valid_lr
        self.valid_hr = valid_hr
        self.scale = scale
        self.state = state
        self.run_dir = storage.as_path(run_dir)
        self.batch_size = batch_size

    def on_epoch_end(self, epoch, logs=None):
        self.state.step = (epoch + 1) * self.state.steps_per_epoch
        if self.state.diverged:
            return
        values = evaluate_arrays(self.valid_lr, self.valid_hr, self.scale, self.generator,
                                 batch_size=self.batch_size).means
        logs.update(values, step=self.state.step)
        if values["psnr_y"] > self.state.best_psnr_y:
            self.state.best_psnr_y, self.state.best_step = values["psnr_y"], self.state.step
            save_model_atomic(self.generator, self.run_dir / "generator_best_psnr_y.keras")


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the generator optimizer's current learning rate to the epoch logs."""

    def __init__(self, optimizer):
        super().__init__()
        self.optimizer = optimizer

    def on_epoch_end(self, epoch, logs=None):
        rate = self.optimizer.learning_rate
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(rate))


class CheckpointCallback(keras.callbacks.Callback):
    """Writes a checkpoint at every epoch end, unless the run diverged (the last good one stays the latest)."""

    def __init__(self, checkpointer, state: RunState):
        super().__init__()
        self.checkpointer = checkpointer
        self.state = state

    def on_epoch_end(self, epoch, logs=None):
        if self.state.diverged:
            return
        self.checkpointer.save((epoch + 1) * self.state.steps_per_epoch, self.state.to_state())


class ImageGridCallback(keras.callbacks.Callback):
    """Saves LR | bicubic | SR | HR for a few validation crops every ``every_epochs`` epochs."""

    def __init__(self, generator, valid_lr, valid_hr, scale, directory, every_epochs, state: RunState, count=3):
        super().__init__()
        self.generator = generator
        self.valid_lr = valid_lr[:count]
        self.valid_hr = valid_hr[:count]
        self.scale = scale
        self.directory = storage.as_path(directory)
        self.every_epochs = max(1, every_epochs)
        self.state = state

    def on_epoch_end(self, epoch, logs=None):
        if self.state.diverged or (epoch + 1) % self.every_epochs:
            return
        step = (epoch + 1) * self.state.steps_per_epoch
        save_comparison_grid(self.generator, self.valid_lr, self.valid_hr, self.scale,
                             self.directory / f"step_{step:09d}.png")


class CSVLog(keras.callbacks.Callback):
    """One row per epoch (``step`` first), appended and flushed, so an interrupted run keeps every finished row.

    Keras' ``CSVLogger`` would add empty ``val_*`` columns for every key here; this writes just the logs. A remote log
    (object stores cannot append) is rewritten whole with the new row.
    """

    def __init__(self, path, state: RunState):
        super().__init__()
        self.path = storage.as_path(path)
        self.state = state

    def on_epoch_end(self, epoch, logs=None):
        # wall_time (Unix seconds) lets a model card state the training time, also across resumed runs.
        row = {"step": self.state.step, **{k: v for k, v in (logs or {}).items() if k != "step"},
               "wall_time": round(time.time(), 1)}
        row = {key: _plain(value) for key, value in row.items()}
        if isinstance(self.path, storage.URLPath):
            self._rewrite_remote(row)
            return
        header = None
        if self.path.is_file() and self.path.stat().st_size:
            with open(self.path, newline="") as handle:
                header = next(csv.reader(handle), None)
        fields = header or list(row)
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore", restval="")
            if header is None:
                writer.writeheader()
            writer.writerow(row)
            handle.flush()
            os.fsync(handle.fileno())


    def _rewrite_remote(self, row):
        old = self.path.read_text() if self.path.is_file() else ""
        header = next(csv.reader(io.StringIO(old)), None) if old else None
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=header or list(row), extrasaction="ignore", restval="")
        if header is None:
            writer.writeheader()
        writer.writerow(row)
        storage.write_text(self.path, old + buffer.getvalue())


def _plain(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def save_comparison_grid(generator, valid_lr, valid_hr, scale, path):
    """One row per crop: LR, bicubic, SR, HR."""
    rows = comparison_rows(valid_lr, valid_hr, scale, [("SR", generator)])
    path = storage.as_path(path)
    if not isinstance(path, storage.URLPath):
        return plots.save_image_grid(rows, path)
    with tempfile.TemporaryDirectory(prefix="sr_lib_") as tmp:
        plots.save_image_grid(rows, Path(tmp) / path.name)
        storage.upload(Path(tmp) / path.name, path)
    return str(path)
