"""Generators on disk: load a ``.keras`` file safely, save one atomically, and read a generator's scale.

Both take local paths or ``tf.io.gfile`` URLs (:mod:`sr_lib.core.storage`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sr_lib.core import storage


def load_generator(path):
    """A generator saved as ``.keras`` (a local file or a ``tf.io.gfile`` URL, downloaded to a temporary file first),
    loaded with ``safe_mode=True``; a clear ValueError naming ``path`` if it can't be."""
    import keras  # sr_lib/__init__ has registered the custom layers the file refers to.

    path = storage.as_path(path)
    with storage.gfile_errors(path):
        if not path.is_file():
            raise ValueError(f"model file not found: {path}")
    try:
        with storage.local_copy(path) as local:
            return keras.saving.load_model(local, safe_mode=True)
    except Exception as error:  # Keras raises TypeError/ValueError/OSError/zipfile errors for bad files.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"could not load the model {path} (expected a .keras generator saved by sr_lib): "
                         f"{first_line[:300]}") from None


def save_model_atomic(model, path):
    """``model.save`` to a temporary name, then rename, so a crash never leaves a truncated ``.keras`` file. A remote
    ``path`` (``gs://...``) is saved locally first and uploaded as one object."""
    path = storage.as_path(path)
    if isinstance(path, storage.URLPath):
        with tempfile.TemporaryDirectory(prefix="sr_lib_") as tmp:
            model.save(str(Path(tmp) / path.name))
            storage.upload(Path(tmp) / path.name, path)
        return path
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(str(tmp))
    os.replace(tmp, path)
    return path


def model_scale(model) -> int:
    """The upscaling factor of a generator (Keras model or Upscaler)."""
    if hasattr(model, "scale"):
        return int(model.scale)
    return int(model.compute_output_shape((1, 8, 8, 3))[1]) // 8
