"""Running an exported generator the way a user without sr_lib does: a SavedModel in a fresh Python process that
never imports sr_lib, and the TFLite file through ``tf.lite.Interpreter``. Used to check an export (notebook 06)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

# The fresh process: TensorFlow and NumPy only. Importing sr_lib is made impossible, so any hidden dependency of the
# SavedModel on sr_lib's Python code would fail here rather than on the user's server.
_SCRIPT = r"""
import json, sys
sys.modules["sr_lib"] = None
import numpy as np
import tensorflow as tf

folder, inputs, outputs = sys.argv[1:4]
loaded = tf.saved_model.load(folder)
signature = loaded.signatures["serving_default"]
image = np.load(inputs)
result = signature(images=tf.constant(image))
np.save(outputs, result["output_0"].numpy())
spec = signature.structured_input_signature[1]["images"]
print(json.dumps({"signatures": sorted(loaded.signatures),
                  "endpoints": sorted(name for name in ("serving_default", "upscale_float", "metadata")
                                      if hasattr(loaded, name)),
                  "input": f"{spec.name}: {spec.dtype.name} {spec.shape.as_list()}",
                  "outputs": {key: f"{value.dtype.name} {value.shape.as_list()}"
                              for key, value in signature.structured_outputs.items()},
                  "metadata": json.loads(loaded.metadata().numpy().decode())}))
"""


def run_without_sr_lib(folder, lr_uint8, timeout=600) -> tuple[np.ndarray, dict]:
    """Upscales one LR image (uint8 ``(H, W, 3)``) with the SavedModel at ``folder`` through its ``serving_default``
    signature, in a fresh process where sr_lib cannot be imported.

    Returns:
        (SR uint8 ``(sH, sW, 3)``, a description of the SavedModel: its signatures, endpoints, input and output specs
        and the metadata the export recorded).

    Raises:
        RuntimeError: with the process's last error lines when it fails.
    """
    image = np.asarray(lr_uint8, dtype=np.uint8)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected one RGB uint8 image (H, W, 3), got {image.shape}")
    with tempfile.TemporaryDirectory(prefix="standalone-") as scratch:
        inputs, outputs = Path(scratch) / "lr.npy", Path(scratch) / "sr.npy"
        np.save(inputs, image[np.newaxis])
        environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run([sys.executable, "-c", _SCRIPT, os.fspath(folder), str(inputs), str(outputs)],
                              capture_output=True, text=True, timeout=timeout, env=environment)
        if done.returncode != 0:
            raise RuntimeError(f"loading {folder} without sr_lib failed:\n" + "\n".join(
                done.stderr.strip().splitlines()[-8:]))
        return np.load(outputs)[0], json.loads(done.stdout.strip().splitlines()[-1])


def run_tflite(path, lr_uint8) -> np.ndarray:
    """Upscales one LR image (uint8 ``(H, W, 3)``) with an exported ``model.tflite``, resizing its dynamic input to
    the image first."""
    import tensorflow as tf

    image = np.asarray(lr_uint8, dtype=np.uint8)[np.newaxis]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice (LiteRT is its successor).
        interpreter = tf.lite.Interpreter(model_path=os.fspath(path))
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], image.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], image)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
