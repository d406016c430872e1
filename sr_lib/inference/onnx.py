"""ONNX: converting an export's functions with tf2onnx, and running the ONNX files with onnxruntime.

``python -m sr_lib export --onnx`` writes two graphs beside ``saved_model.pb`` (float32 weights, opset
:data:`ONNX_OPSET`, dynamic N, H and W), each carrying the export's metadata JSON as its model property ``sr_lib``:

- ``model.onnx``: ``images`` uint8 ``[N, H, W, 3]`` -> ``output_0`` uint8 ``[N, sH, sW, 3]``, the ``serving_default``
  function (the [0, 1] scaling, clipping and rounding are in the graph);
- ``model_float.onnx``: float32 in [0, 1] -> float32 in [0, 1] (clipped), the ``upscale_float`` function: what
  ``evaluate`` measures, whose LR is not rounded to uint8.

tf2onnx, onnx and onnxruntime are optional dependencies of sr_lib (pinned in ``requirements.txt`` for the tests): they
are imported only here, when used, and a missing one is an :class:`OptionalDependencyError` naming the pip package.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

import numpy as np

ONNX_FILE = "model.onnx"
ONNX_FLOAT_FILE = "model_float.onnx"
ONNX_OPSET = 17  # ONNX 1.12 (2022): supported by onnxruntime >= 1.12 and most other runtimes.
METADATA_KEY = "sr_lib"
# The versions tested together (requirements.txt); named in the message when one is missing.
PINS = {"tf2onnx": "tf2onnx==1.17.0", "onnx": "onnx==1.23.2", "onnxruntime": "onnxruntime==1.31.1"}
_TYPES = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32}


class OptionalDependencyError(ImportError, ValueError):
    """An optional package is not installed. Also a ValueError, so the command line reports it as one line."""


def require(module: str, needed_for: str):
    """Imports ``module`` (one of :data:`PINS`), or raises :class:`OptionalDependencyError` saying what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise OptionalDependencyError(f"{needed_for} needs the optional package {module}, which is not installed: "
                                      f"pip install {PINS[module]}", name=module) from None


def _first_line(error) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


@contextlib.contextmanager
def _quiet_tf2onnx():
    """tf2onnx logs every step of a conversion at INFO (and TensorFlow's graph transforms warn): keep them out of the
    command's output."""
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _rename(graph, old: str, new: str):
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]


def convert(function, out_file, metadata_text: str, scale: int) -> None:
    """Writes ``function`` (a ``tf.function`` with one image ``input_signature`` named ``images``) to ``out_file``
    as ONNX, its output named ``output_0`` like the SavedModel's, dimensions named ``N, H, W`` and ``N, sH, sW``, and
    ``metadata_text`` stored as the model property ``sr_lib``. The graph is checked with ``onnx.checker``."""
    tf2onnx = require("tf2onnx", "export --onnx")
    onnx = require("onnx", "export --onnx")
    with _quiet_tf2onnx():
        proto, _ = tf2onnx.convert.from_function(function, input_signature=function.input_signature,
                                                 opset=ONNX_OPSET)
    graph = proto.graph
    (inp,), (out,) = graph.input, graph.output
    _rename(graph, out.name, "output_0")
    out.name = "output_0"
    for value, names in ((inp, ("N", "H", "W")), (out, ("N", f"{scale}H", f"{scale}W"))):
        for dim, name in zip(value.type.tensor_type.shape.dim, names):
            dim.dim_param = name
    proto.doc_string = f"sr_lib generator x{scale}: {inp.name} [N, H, W, 3] -> output_0 [N, {scale}H, {scale}W, 3]"
    proto.metadata_props.add(key=METADATA_KEY, value=metadata_text)
    onnx.checker.check_model(proto)
    Path(out_file).write_bytes(proto.SerializeToString())


class OnnxModel:
    """One image-to-image ONNX graph in an ``onnxruntime.InferenceSession`` (CPU provider).

    Attributes:
        dtype: ``np.uint8`` or ``np.float32``, what the graph takes and returns.
        metadata: the JSON text of its ``sr_lib`` model property ("" when it has none).
    """

    def __init__(self, path, label=None):
        label = label or path
        ort = require("onnxruntime", f"running the ONNX model {label}")
        try:
            options = ort.SessionOptions()
            options.log_severity_level = 3  # Errors only: its warnings would go to the terminal past Python.
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime's own exception types (InvalidProtobuf, Fail, InvalidGraph, ...).
            raise ValueError(f"could not load the ONNX model {label}: {_first_line(error)}") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if (len(inputs) != 1 or len(outputs) != 1 or inputs[0].type not in _TYPES or outputs[0].type != inputs[0].type
                or len(inputs[0].shape) != 4 or inputs[0].shape[3] != 3):
            found = ", ".join(f"{value.name}: {value.type} {value.shape}" for value in inputs + outputs)
            raise ValueError(f"{label} is not an image model written by `python -m sr_lib export --onnx` (one input "
                             f"and one output, uint8 or float32 [N, H, W, 3]); it has {found}")
        self.label = label
        self.input_name = inputs[0].name
        self.dtype = _TYPES[inputs[0].type]
        self.metadata = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY, "")

    def run(self, images) -> np.ndarray:
        try:
            return self.session.run(None, {self.input_name: np.ascontiguousarray(images, self.dtype)})[0]
        except Exception as error:  # onnxruntime's exception types, e.g. for memory it could not allocate.
            raise ValueError(f"onnxruntime failed on {self.label}: {_first_line(error)}") from None

    def probe_scale(self) -> int:
        """The upscaling factor, from the output size of an 8x8 input."""
        return int(self.run(np.zeros((1, 8, 8, 3), self.dtype)).shape[1]) // 8


def onnx_functions(main: OnnxModel, float_model: OnnxModel | None = None):
    """(uint8_fn, hr_fn) for an :class:`sr_lib.inference.upscaler.Upscaler`: uint8 LR -> uint8 SR, and LR in [0, 1]
    -> SR in [-1, 1]. Each runs the graph of its own type when there is one; the float graph's uint8 results are
    rounded as ``ranges.unit_to_uint8`` rounds (half to even, as ``tf.round``). With only a uint8 graph, ``hr_fn``
    rounds the LR to uint8 first, with a warning: ``evaluate`` then measures slightly different inputs."""
    uint8_model = main if main.dtype == np.uint8 else None
    float_model = main if main.dtype == np.float32 else float_model

    def uint8_fn(images):
        images = np.asarray(images, np.uint8)
        if uint8_model is not None:
            return uint8_model.run(images)
        unit = float_model.run(images.astype(np.float32) / np.float32(255))
        return np.round(np.clip(unit, 0.0, 1.0) * np.float32(255)).astype(np.uint8)

    warned = []

    def hr_fn(images):
        images = np.asarray(images, np.float32)
        if float_model is not None:
            return float_model.run(images) * np.float32(2) - np.float32(1)
        if not warned:
            warned.append(True)
            warnings.warn(f"{main.label} takes uint8 images and no float graph ({ONNX_FLOAT_FILE}) is beside it: "
                          "its float input is rounded to uint8 first, so results differ slightly from the .keras "
                          "generator's", stacklevel=2)
        lr = np.round(np.clip(images, 0.0, 1.0) * np.float32(255)).astype(np.uint8)
        return uint8_model.run(lr).astype(np.float32) / np.float32(127.5) - np.float32(1)

    return uint8_fn, hr_fn
