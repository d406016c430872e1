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

In a remote directory (``gs://...``, any ``tf.io.gfile`` URL; see :mod:`sr_lib.core.storage`) there is no atomic rename:
the files are written locally, uploaded one object each into ``ckpt-N/`` with ``state.json`` last, and only then is
``latest`` written, a small object naming the checkpoint. So ``latest`` only ever names a complete checkpoint, and a
folder without ``state.json`` (an interrupted upload) is never taken for one.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from sr_lib.core import storage

_NAME = re.compile(r"^ckpt-(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint exists but does not match the models being restored."""


class Checkpointer:
    """Saves and restores named models and optimizers under ``directory``.

    Args:
        directory: the checkpoints folder of a run: a local path or a ``tf.io.gfile`` URL.
        models: name -> keras.Model, saved with ``save_weights``.
        optimizers: name -> built keras optimizer, saved variable by variable.
        keep: how many complete checkpoints to keep.
    """

    def __init__(self, directory, models: dict, optimizers: dict, keep: int = 2):
        self.directory = storage.as_path(directory)
        self.models = models
        self.optimizers = optimizers
        self.keep = keep

    def save(self, step: int, state: dict | None = None) -> Path:
        final = self.directory / f"ckpt-{step:09d}"
        # Every other file first, state.json last: a folder with state.json is complete.
        with storage.publish_folder(final, last=("state.json",)) as staging:
            self._write_files(staging, step, state)
        storage.write_text(self.directory / "latest", final.name + "\n")  # The final small write: now it is latest.
        self._prune()
        return final

    def _write_files(self, folder: Path, step: int, state: dict | None):
        for name, model in self.models.items():
            model.save_weights(str(folder / f"{name}.weights.h5"))
        for name, optimizer in self.optimizers.items():
            arrays = {f"v{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)}
            with open(folder / f"{name}.npz", "wb") as handle:
                np.savez(handle, **arrays)
        _write_json(folder / "state.json", dict(state or {}, step=int(step)))  # Written last: marks completeness.

    def _save_remote(self, step: int, state: dict | None):
        final = self.directory / f"ckpt-{step:09d}"
        with tempfile.TemporaryDirectory(prefix="sr_lib_ckpt_") as tmp:
            self._write_files(Path(tmp), step, state)
            if final.exists():  # Re-saving the same step: drop the old one first (its state.json first of all).
                _remove_checkpoint(final)
            # Every other file first, state.json last: a folder with state.json is complete.
            for name in sorted(os.listdir(tmp), key=lambda name: (name == "state.json", name)):
                storage.upload(Path(tmp) / name, final / name)
        storage.write_text(self.directory / "latest", final.name + "\n")  # The final small write: now it is latest.
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
        path = storage.as_path(path) if path is not None else self.latest()
        if path is None:
            return None
        with storage.local_copy(path) as local:  # A remote checkpoint is downloaded once, then read locally.
            for name, model in self.models.items():
                model.load_weights(str(local / f"{name}.weights.h5"))
            for name, optimizer in self.optimizers.items():
                with np.load(local / f"{name}.npz") as stored:
                    arrays = [stored[key] for key in sorted(stored.files)]
                variables = optimizer.variables
                if len(arrays) != len(variables):
                    raise CheckpointError(
                        f"{path}/{name}.npz holds {len(arrays)} optimizer variables, the optimizer has "
                        f"{len(variables)}: the checkpoint was written by a different model or optimizer configuration")
                for variable, value in zip(variables, arrays):
                    if tuple(variable.shape) != value.shape:
                        raise CheckpointError(f"{path}/{name}.npz: variable {variable.path} has shape "
                                              f"{variable.shape}, checkpoint has {value.shape}")
                    variable.assign(value)
            return json.loads((local / "state.json").read_text())

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
            _remove_checkpoint(path)


def _remove_checkpoint(path):
    """state.json first, so that an interrupted removal never leaves a folder that looks complete."""
    storage.remove(path / "state.json")
    storage.rmtree(path)


def _write_json(path: Path, value: dict):
    storage.write_text(path, json.dumps(value, indent=2) + "\n")
