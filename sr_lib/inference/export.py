"""Export a trained generator as a TensorFlow SavedModel (and optionally TFLite) that needs nothing from sr_lib.

    python -m sr_lib export --model runs/<run>/pretrain/generator_best_psnr_y.keras --out saved_models/NAME [--tflite]
        [--onnx]

The SavedModel (written with ``keras.export.ExportArchive``, always float32) has three endpoints, each also a
signature for TF Serving:

- ``serving_default``: uint8 images ``[N, H, W, 3]``, any H and W -> uint8 ``[N, sH, sW, 3]``; the [0, 1] input
  scaling, clipping and rounding happen in the graph (``sr_lib.core.ranges``), so callers need no value conventions;
- ``upscale_float``: LR float32 in [0, 1] -> SR float32 in [0, 1] (clipped);
- ``metadata``: no input; a JSON string (also written to ``assets.extra/sr_lib.json``) with the scale, the receptive
  field, the training config and the measured metrics when they are known.

Show the metadata with ``cat OUT/assets.extra/sr_lib.json``, or from the SavedModel itself (no sr_lib needed):
``python -c "import sys, tensorflow as tf; print(tf.saved_model.load(sys.argv[1]).metadata().numpy().decode())" OUT``.
``saved_model_cli show --all --dir OUT`` lists the signatures.

``--tflite`` adds ``model.tflite`` (:func:`convert_tflite`), ``--onnx`` ``model.onnx`` (uint8 -> uint8) and
``model_float.onnx`` (float -> float), converted by tf2onnx (:func:`convert_onnx`, :mod:`sr_lib.inference.onnx`).

MODEL and OUT may also be ``tf.io.gfile`` URLs (``--out gs://bucket/models/NAME``; see :mod:`sr_lib.core.storage`). A remote
export is written to a local temporary folder first, then uploaded file by file with ``assets.extra/sr_lib.json`` and
then ``saved_model.pb`` last: until that final object exists the folder is not a SavedModel (TensorFlow and
``upscale``/``evaluate`` refuse it), so an interrupted upload never looks like a complete export.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from datetime import datetime, timezone
from pathlib import Path

import keras
import tensorflow as tf

import sr_lib
from sr_lib.core import ranges, storage
from sr_lib.inference import onnx as sr_onnx
from sr_lib.inference.upscaler import (FLOAT_ENDPOINT, IMAGE_SPEC, METADATA_ENDPOINT, METADATA_FILE, UINT8_ENDPOINT,
                              DynamicUpSampling2D, bicubic_by_phases, inference_model)
from sr_lib.inference.tiling import receptive_field
from sr_lib.nets.saving import load_generator, model_scale

TFLITE_FILE = "model.tflite"
SAVED_MODEL_FILE = "saved_model.pb"


class _BuiltinBicubicUpSampling2D(keras.layers.UpSampling2D):
    """Bicubic ``UpSampling2D`` from TFLite builtin ops (TFLite has no bicubic resize): see
    :func:`sr_lib.inference.upscaler.bicubic_by_phases`. Used only for the TFLite conversion."""

    def call(self, inputs):
        return bicubic_by_phases(inputs, self.size)


class _OnnxUpSampling2D(DynamicUpSampling2D):
    """``UpSampling2D`` for the ONNX conversion: bicubic by :func:`sr_lib.inference.upscaler.bicubic_by_phases` at
    every factor (no cubic ``Resize``, whose border handling runtimes need not match TensorFlow's), nearest as a
    repeat (the same pixels for integer factors; tf2onnx would write a ``Resize`` with a mode deprecated since opset
    13), and the channel count kept static: after a resize that loses it, Keras compiles the next convolution with
    XLA, a function call tf2onnx cannot convert."""

    def call(self, inputs):
        if self.interpolation == "bicubic":
            outputs = bicubic_by_phases(inputs, self.size)
        elif self.interpolation == "nearest":
            (fh, fw), shape = self.size, tf.shape(inputs)
            tiled = tf.tile(inputs[:, :, None, :, None, :], [1, 1, fh, 1, fw, 1])
            outputs = tf.reshape(tiled, tf.stack([shape[0], shape[1] * fh, shape[2] * fw, shape[3]]))
        else:
            outputs = super().call(inputs)
        outputs.set_shape([None, None, None, inputs.shape[-1]])
        return outputs


def _read_text(path) -> str:
    path = storage.as_path(path)
    with storage.gfile_errors(path):
        return path.read_text()


def _finite_or_none(row: dict) -> dict:
    """A log row for JSON: NaN (a cell that is not a number) becomes null."""
    return {key: value if math.isfinite(value) else None for key, value in row.items()}


def read_metrics(path) -> dict | None:
    """Measured metrics to store with an export: from a run's ``log.csv`` (the last validation row and the row with
    the best PSNR-Y) or from an ``evaluation.json`` written by ``python -m sr_lib evaluate`` (each data set's means).

    Raises:
        ValueError: naming the file, when it cannot be read.
    """
    path = storage.as_path(path)
    try:
        if path.suffix == ".csv":
            with storage.gfile_errors(path):
                if not path.is_file():
                    raise FileNotFoundError(f"no such file: {path}")
            rows = [_finite_or_none(row) for row in storage.read_log(path) if math.isfinite(row.get("psnr_y", math.nan))]
            if not rows:
                return None
            return {"source": str(path), "kind": "validation during training (log.csv)",
                    "final": rows[-1], "best_psnr_y": max(rows, key=lambda row: row["psnr_y"])}
        entries = json.loads(_read_text(path))
        return {"source": str(path), "kind": "python -m sr_lib evaluate",
                "results": [{"dataset": e["dataset"], "method": e["method"], "means": e["means"]} for e in entries]}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"could not read metrics from {path}: {error}") from None


def read_config(path) -> dict:
    try:
        return json.loads(_read_text(path))
    except (OSError, ValueError) as error:
        raise ValueError(f"could not read the training config {path}: {error}") from None


def _dtype_policies(model) -> list:
    return sorted({layer.dtype_policy.name for layer in model.layers if hasattr(layer, "dtype_policy")})


def build_metadata(model, runtime, model_path, config_path=None, metrics_path=None) -> dict:
    """The description stored with an export. ``config_path``/``metrics_path`` default to the ``config.json`` and
    ``log.csv`` beside the model file (a run directory or a shipped model folder), when present; any of them may be a
    ``tf.io.gfile`` URL."""
    folder = storage.as_path(model_path).parent
    with storage.gfile_errors(folder):
        if config_path is None and (folder / "config.json").is_file():
            config_path = folder / "config.json"
        if metrics_path is None and (folder / "log.csv").is_file():
            metrics_path = folder / "log.csv"
    try:
        field = receptive_field(runtime)
    except ValueError as error:
        field, field_note = None, str(error)
    else:
        field_note = None
    scale = field.scale if field else model_scale(runtime)
    return {
        "format": "sr_lib generator export",
        "sr_lib_version": sr_lib.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "source_model": str(model_path),
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "scale": scale,
        "receptive_field": field.to_json() if field else None,
        "receptive_field_note": field_note,
        "precision": "float32",
        "trained_dtype_policies": _dtype_policies(model),
        "parameters": int(runtime.count_params()),
        "endpoints": {
            UINT8_ENDPOINT: "uint8 [N, H, W, 3] -> uint8 [N, scale*H, scale*W, 3]",
            FLOAT_ENDPOINT: "float32 [N, H, W, 3] in [0, 1] -> float32 [N, scale*H, scale*W, 3] in [0, 1]",
            METADATA_ENDPOINT: "this JSON, as a string",
        },
        "training_config": read_config(config_path) if config_path else None,
        "training_config_source": str(config_path) if config_path else None,
        "metrics": read_metrics(metrics_path) if metrics_path else None,
    }


@contextlib.contextmanager
def _quiet_saving():
    """Keeps TensorFlow's per-save INFO line ("Assets written to: <temporary folder>") out of a notebook's output, where
    the kernel's logging configuration would otherwise show it, naming a folder the user never sees."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _write_saved_model(runtime, metadata: dict, folder: Path):
    text = json.dumps(metadata, indent=2)

    def upscale_uint8(images):
        return ranges.hr_to_uint8(runtime(ranges.uint8_to_unit_exact(images), training=False))

    def upscale_float(images):
        return ranges.hr_to_unit(runtime(images, training=False))

    def describe():
        return tf.constant(text)

    archive = keras.export.ExportArchive()
    archive.track(runtime)
    archive.add_endpoint(UINT8_ENDPOINT, upscale_uint8,
                         input_signature=[tf.TensorSpec(IMAGE_SPEC, tf.uint8, name="images")])
    archive.add_endpoint(FLOAT_ENDPOINT, upscale_float,
                         input_signature=[tf.TensorSpec(IMAGE_SPEC, tf.float32, name="images")])
    archive.add_endpoint(METADATA_ENDPOINT, describe, input_signature=[])
    with _quiet_saving():
        archive.write_out(str(folder), verbose=False)
    (folder / METADATA_FILE).parent.mkdir(parents=True, exist_ok=True)
    (folder / METADATA_FILE).write_text(text + "\n")


def convert_tflite(model, out_file):
    """The uint8 -> uint8 function of ``serving_default`` as a TFLite model with builtin ops only (float32 weights,
    dynamic H and W: give the input its size with ``Interpreter.resize_tensor_input`` before ``allocate_tensors``).
    A bicubic ``UpSampling2D`` (TFLite has none) becomes :class:`_BuiltinBicubicUpSampling2D`, a nearest one
    ``tf.image.resize`` (the same pixels as Keras' repeat, with a static channel count for TFLite's CONV_2D), and the
    weights become constants."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    runtime = inference_model(model, {"nearest": DynamicUpSampling2D, "bicubic": _BuiltinBicubicUpSampling2D})

    @tf.function(input_signature=[tf.TensorSpec(IMAGE_SPEC, tf.uint8, name="images")])
    def upscale_uint8(images):
        return ranges.hr_to_uint8(runtime(ranges.uint8_to_unit_exact(images), training=False))

    # Frozen first: converting the function with its variables keeps them as TFLite resource variables, which the
    # interpreter does not initialise.
    frozen = convert_variables_to_constants_v2(upscale_uint8.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], runtime)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with _quiet_saving():
        Path(out_file).write_bytes(converter.convert())


def convert_onnx(model, folder, metadata_text: str, scale: int):
    """``FOLDER/model.onnx`` (the uint8 -> uint8 function of ``serving_default``) and ``FOLDER/model_float.onnx``
    (``upscale_float``'s float32 [0, 1] -> [0, 1]), converted by tf2onnx from the float32 generator with
    :class:`_OnnxUpSampling2D` resizes: see :mod:`sr_lib.inference.onnx`."""
    runtime = inference_model(model, dict.fromkeys(("nearest", "bilinear", "bicubic"), _OnnxUpSampling2D))

    @tf.function(input_signature=[tf.TensorSpec(IMAGE_SPEC, tf.uint8, name="images")])
    def upscale_uint8(images):
        return ranges.hr_to_uint8(runtime(ranges.uint8_to_unit_exact(images), training=False))

    @tf.function(input_signature=[tf.TensorSpec(IMAGE_SPEC, tf.float32, name="images")])
    def upscale_float(images):
        return ranges.hr_to_unit(runtime(images, training=False))

    with _quiet_saving():
        sr_onnx.convert(upscale_uint8, Path(folder) / sr_onnx.ONNX_FILE, metadata_text, scale)
        sr_onnx.convert(upscale_float, Path(folder) / sr_onnx.ONNX_FLOAT_FILE, metadata_text, scale)


def _write_export(model, runtime, metadata: dict, folder: Path, tflite: bool, onnx_files: bool = False):
    _write_saved_model(runtime, metadata, folder)
    if tflite:
        convert_tflite(model, folder / TFLITE_FILE)
    if onnx_files:
        convert_onnx(model, folder, json.dumps(metadata, indent=2), metadata["scale"])


def _onnx_metadata() -> dict:
    """What the metadata records of an ONNX export (checked first: tf2onnx and onnx must be installed)."""
    tf2onnx = sr_onnx.require("tf2onnx", "export --onnx")
    sr_onnx.require("onnx", "export --onnx")
    return {"onnx": sr_onnx.ONNX_FILE, "onnx_float": sr_onnx.ONNX_FLOAT_FILE, "onnx_opset": sr_onnx.ONNX_OPSET,
            "onnx_converter": f"tf2onnx {tf2onnx.__version__}"}


def export_generator(model_path, out_dir, tflite=False, config_path=None, metrics_path=None, onnx=False) -> dict:
    """Writes the SavedModel (and ``model.tflite``, and with ``onnx`` ``model.onnx`` and ``model_float.onnx``) of the
    generator in ``model_path`` into ``out_dir``.

    ``model_path``, ``out_dir``, ``config_path`` and ``metrics_path`` may be local paths or ``tf.io.gfile`` URLs. A
    local folder is assembled beside ``out_dir`` and renamed into place, so a failed export leaves nothing behind. A
    remote one is assembled in a local temporary folder and uploaded with ``saved_model.pb`` last, so it is a
    SavedModel only once complete (a failed upload removes what it wrote, as far as it can).

    Returns:
        The metadata written with it.

    Raises:
        ValueError: for a missing or unloadable model, unreadable config/metrics, or an ``out_dir`` that exists and
            is not empty, or ``onnx`` without tf2onnx installed (:class:`sr_lib.inference.onnx.OptionalDependencyError`,
            also an ImportError); OSError: naming the path, when a remote store cannot be read or written.
    """
    extra = _onnx_metadata() if onnx else {}
    out_dir = storage.as_path(out_dir)
    with storage.gfile_errors(out_dir):
        taken = out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir()))
    if taken:
        raise ValueError(f"export folder {out_dir} already exists and is not empty; remove it or choose another "
                         "--out")
    model = load_generator(model_path)
    runtime = inference_model(model)
    metadata = {**build_metadata(model, runtime, model_path, config_path, metrics_path), **extra}
    with storage.publish_folder(out_dir, last=(METADATA_FILE.as_posix(), SAVED_MODEL_FILE)) as staging:
        _write_export(model, runtime, metadata, staging, tflite, onnx_files=bool(extra))
    return metadata
