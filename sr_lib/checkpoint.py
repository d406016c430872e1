"""Atomic training checkpoints: models, optimizers and a small state, written so a crash never leaves a half-written
checkpoint as the latest one.

Layout of ``<run>/checkpoints/``::

    ckpt-000000200/            a complete checkpoint (renamed into place only once every file is written)
        generator.weights.h5   one file per model
        optimizer.npz          one file per optimizer (all its variables, in order)
        state.json             step, best metric, ... (written last)
    latest                     the name of the newest complete checkpoint

Saving writes ``ckpt-N.tmp/``, renames it to ``ckpt-N/`` (atomic on POSIX), then replaces ``latest``. A ``kill -9`` at
any point leaves either the previous or the new checkpoint as the latest, both complete. Weights go through Keras
(``save_weights``/``load_weights``) and optimizer variables through NumPy, so this does not depend on the backend.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

_NAME = re.compile(r"^ckpt-(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint exists but does not match the models being restored."""


class Checkpointer:
    """Saves and restores named models and optimizers under ``directory``.

    Args:
        directory: the checkpoints folder of a run.
        models: name -> keras.Model, saved with ``save_weights``.
        optimizers: name -> built keras optimizer, saved variable by variable.
        keep: how many complete checkpoints to keep.
    """

    def __init__(self, directory, models: dict, optimizers: dict, keep: int = 2):
        self.directory = Path(directory)
        self.models = models
        self.optimizers = optimizers
        self.keep = keep

    def save(self, step: int, state: dict | None = None) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"ckpt-{step:09d}"
        tmp = self.directory / f"ckpt-{step:09d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name, model in self.models.items():
            model.save_weights(str(tmp / f"{name}.weights.h5"))
        for name, optimizer in self.optimizers.items():
            arrays = {f"v{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)}
            with open(tmp / f"{name}.npz", "wb") as handle:
                np.savez(handle, **arrays)
        _write_json(tmp / "state.json", dict(state or {}, step=int(step)))
        _fsync_dir(tmp)
        if final.exists():  # Re-saving the same step (e.g. after a resume): replace it whole.
            shutil.rmtree(final)
        os.replace(tmp, final)
        _write_text(self.directory / "latest", final.name + "\n")
        self._prune()
        return final

    def latest(self) -> Path | None:
        """The newest complete checkpoint, or None. Falls back to scanning if ``latest`` is missing or stale."""
        pointer = self.directory / "latest"
        if pointer.is_file():
            candidate = self.directory / pointer.read_text().strip()
            if (candidate / "state.json").is_file():
                return candidate
        complete = [p for p in self._complete()]
        return complete[-1] if complete else None

    def restore(self, path: Path | None = None) -> dict | None:
        """Loads the latest (or given) checkpoint into the models and optimizers; returns its state or None."""
        path = path or self.latest()
        if path is None:
            return None
        for name, model in self.models.items():
            model.load_weights(str(path / f"{name}.weights.h5"))
        for name, optimizer in self.optimizers.items():
            with np.load(path / f"{name}.npz") as stored:
                arrays = [stored[key] for key in sorted(stored.files)]
            variables = optimizer.variables
            if len(arrays) != len(variables):
                raise CheckpointError(
                    f"{path}/{name}.npz holds {len(arrays)} optimizer variables, the optimizer has {len(variables)}: "
                    "the checkpoint was written by a different model or optimizer configuration")
            for variable, value in zip(variables, arrays):
                if tuple(variable.shape) != value.shape:
                    raise CheckpointError(f"{path}/{name}.npz: variable {variable.path} has shape {variable.shape}, "
                                          f"checkpoint has {value.shape}")
                variable.assign(value)
        return json.loads((path / "state.json").read_text())

    def _complete(self):
        if not self.directory.is_dir():
            return []
        found = []
        for child in self.directory.iterdir():
            match = _NAME.match(child.name)
            if match and (child / "state.json").is_file():
                found.append((int(match.group(1)), child))
        return [path for _, path in sorted(found)]

    def _prune(self):
        for path in self._complete()[:-self.keep]:
            shutil.rmtree(path, ignore_errors=True)


def _write_text(path: Path, text: str):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _write_json(path: Path, value: dict):
    _write_text(path, json.dumps(value, indent=2) + "\n")


def _fsync_dir(path: Path):
    for child in path.iterdir():
        with open(child, "rb") as handle:
            os.fsync(handle.fileno())
