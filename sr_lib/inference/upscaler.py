"""Running a trained generator on images: one interface over a ``.keras`` file, an exported SavedModel and an
exported ``.onnx`` file (through onnxruntime, an optional dependency: :mod:`sr_lib.inference.onnx`).

:func:`load_upscaler` returns an :class:`Upscaler` with the generator's scale, its receptive field (for exact tiling)
and two functions that accept any image size: ``uint8`` LR -> ``uint8`` SR (what ``upscale`` writes) and LR in
``[0, 1]`` -> SR in ``[-1, 1]`` (what ``evaluate`` measures). A ``.keras`` generator is first copied to float32
(:func:`inference_model`), so a generator trained under mixed precision runs, and exports, in float32.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from sr_lib.core import ranges, storage
from sr_lib.nets.models import as_float32
from sr_lib.nets.saving import load_generator, model_scale
from sr_lib.inference.onnx import ONNX_FLOAT_FILE, OnnxModel, onnx_functions
from sr_lib.inference.tiling import ReceptiveField, keys_cubic, receptive_field

# Where an export keeps its description (TF Serving's folder for extra files; loaders ignore it).
METADATA_FILE = Path("assets.extra") / "sr_lib.json"
UINT8_ENDPOINT = "serving_default"
FLOAT_ENDPOINT = "upscale_float"
METADATA_ENDPOINT = "metadata"
IMAGE_SPEC = (None, None, None, 3)


def _bilinear_phases(factor: int):
    """(offset, weight) per output phase of a half-pixel bilinear upscaling by ``factor``: output ``c*factor + i``
    is ``x[c+offset] + (x[c+offset+1] - x[c+offset]) * weight``."""
    phases = []
    for phase in range(factor):
        position = (phase + 0.5) / factor - 0.5
        offset = math.floor(position)
        phases.append((offset, position - offset))
    return phases


def _bilinear_axis(x, factor: int, axis: int):
    """Bilinear upscaling of ``x`` (NHWC) by ``factor`` along ``axis`` (1 or 2), edge pixels repeated."""
    size = tf.shape(x)[axis]
    paddings = [[0, 0]] * 4
    paddings[axis] = [1, 1]
    padded = tf.pad(x, paddings, mode="SYMMETRIC")  # One pixel: the edge pixel repeated, as TensorFlow clamps.

    def take(start):
        begin = [0, 0, 0, 0]
        begin[axis] = start
        length = [-1, -1, -1, -1]
        length = tf.tensor_scatter_nd_update(tf.constant(length), [[axis]], [size])
        return tf.slice(padded, begin, length)

    phases = []
    for offset, weight in _bilinear_phases(factor):
        low = take(offset + 1)
        phases.append(low if weight == 0 else low + (take(offset + 2) - low) * tf.constant(weight, x.dtype))
    stacked = tf.stack(phases, axis=axis + 1)
    shape = tf.shape(x)
    new_shape = tf.tensor_scatter_nd_update(shape, [[axis]], [shape[axis] * factor])
    return tf.reshape(stacked, new_shape)


_KEYS_TABLE_SIZE = 1024  # TensorFlow's ResizeBicubic reads Keys' kernel from a table of this resolution.


def _bicubic_phase_kernels(factor: int):
    """(5, factor) float32: for output phase i of a half-pixel bicubic upscaling by ``factor``, the weights of input
    offsets -2..2 around the cell (Keys a = -0.5 at TensorFlow's table resolution)."""
    kernels = np.zeros((5, factor), np.float32)
    for phase in range(factor):
        x = (phase + 0.5) / factor - 0.5
        base = math.floor(x)
        t = Fraction(round((x - base) * _KEYS_TABLE_SIZE), _KEYS_TABLE_SIZE)
        for k, offset in enumerate((1 + t, t, 1 - t, 2 - t)):
            kernels[base - 1 + k + 2, phase] = float(keys_cubic(offset))
    return kernels


def bicubic_by_phases(inputs, size):
    """Bicubic upscaling (NHWC) by integer factors ``size = (fh, fw)`` with half-pixel centres, from convolutions:
    per axis, one 5-tap convolution per output phase over the zero-padded input, divided by the same convolution of
    the padding mask (TensorFlow's kernel drops taps outside the image and renormalises the rest). Equal to
    ``tf.image.resize(..., "bicubic")`` up to float rounding (2.4e-7 measured), but its weights do not depend on the
    absolute position, and it needs only TFLite builtin ops."""
    shape = tf.shape(inputs)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    fh, fw = size
    planes = tf.reshape(tf.transpose(inputs, (0, 3, 1, 2)), (-1, height, width, 1))  # Channels as batch.
    kh = tf.constant(_bicubic_phase_kernels(fh)[:, None, None, :])  # (5, 1, 1, fh)
    kw = tf.constant(_bicubic_phase_kernels(fw)[None, :, None, :])  # (1, 5, 1, fw)

    def along(x, kernel, paddings):
        padded = tf.pad(x, paddings)
        mask = tf.pad(tf.ones_like(x[:1, :, :, :1]), paddings)
        return (tf.nn.conv2d(padded, kernel, 1, "VALID")
                / tf.nn.conv2d(mask, kernel, 1, "VALID"))

    rows = along(planes, kh, [[0, 0], [2, 2], [0, 0], [0, 0]])  # (B, H, W, fh)
    rows = tf.reshape(tf.transpose(rows, (0, 1, 3, 2)), (-1, height * fh, width, 1))
    both = along(rows, kw, [[0, 0], [0, 0], [2, 2], [0, 0]])  # (B, H*fh, W, fw)
    both = tf.reshape(both, (batch, channels, height * fh, width * fw))
    return tf.transpose(both, (0, 2, 3, 1))


class DynamicUpSampling2D(keras.layers.UpSampling2D):
    """``UpSampling2D`` that also traces with unknown height and width (and keeps the channel count static).

    Keras 3.15's ``ops.image.resize`` compares the target size with 0 in Python, which fails inside a
    ``tf.function`` whose input has no static size. Nearest and bicubic call TensorFlow's resize (half-pixel centres,
    no antialiasing) with a dynamic size. TensorFlow derives the interpolation weights in float32 from the absolute
    output index; for a factor of 3 they drift across a wide image (bilinear by up to 1e-4 at 4500 px, bicubic by 3e-3
    at 15000 px, where its 1024-entry weight table flips entries), so a tile and the whole image would differ. So
    bilinear is computed per output phase with the weights as constants, columns then rows like TensorFlow's kernel
    (equal to TensorFlow's exactly for factors 2, 4, 8), and bicubic by a non-power-of-two factor by
    :func:`bicubic_by_phases`. Used only in the inference copy, never saved as a layer.
    """

    def call(self, inputs):
        if self.interpolation == "bilinear":
            return _bilinear_axis(_bilinear_axis(inputs, self.size[1], 2), self.size[0], 1)
        if self.interpolation == "bicubic" and any(factor & (factor - 1) for factor in self.size):
            return bicubic_by_phases(inputs, self.size)
        size = tf.shape(inputs)[1:3] * tf.constant(self.size, tf.int32)
        return tf.image.resize(inputs, size, method=self.interpolation, antialias=False)


def inference_model(model, resize_layers=None) -> keras.Model:
    """A float32 copy of a generator (same weights) for inference and export (:func:`sr_lib.nets.models.as_float32`: a
    mixed-precision generator would otherwise run in bfloat16/float16), whose resizing ``UpSampling2D`` layers accept
    any input size in a ``tf.function``.

    Args:
        model: the generator.
        resize_layers: ``{interpolation: UpSampling2D subclass}`` replacing the defaults (the TFLite export's).
    """
    replacements = {"bilinear": DynamicUpSampling2D, "bicubic": DynamicUpSampling2D, **(resize_layers or {})}
    return as_float32(model, lambda layer: replacements.get(layer.interpolation)
                      if isinstance(layer, keras.layers.UpSampling2D) else None)


def is_saved_model(path) -> bool:
    """Whether ``path`` (local or a URL) is a complete SavedModel folder: ``saved_model.pb``, which ``export`` writes
    last, is there."""
    return (storage.as_path(path) / "saved_model.pb").is_file()


@dataclass
class Upscaler:
    """A generator ready for inference on images of any size.

    Attributes:
        name: a label (the model file or folder name).
        scale: the upscaling factor.
        field: the receptive field, or None when unknown (then only whole-image inference is exact).
        metadata: what the export recorded (training config, metrics), or {} for a ``.keras`` file.
    """

    name: str
    scale: int
    field: ReceptiveField | None
    uint8_fn: object
    hr_fn: object
    metadata: dict = field(default_factory=dict)

    def upscale_uint8(self, lr_uint8):
        """uint8 ``(N, H, W, 3)`` -> uint8 ``(N, sH, sW, 3)``: scaling, clipping and rounding as
        ``ranges.hr_to_uint8``."""
        return self.uint8_fn(tf.convert_to_tensor(lr_uint8, tf.uint8))

    def __call__(self, lr_unit, training=False):
        """LR in [0, 1] ``(N, H, W, 3)`` -> SR in [-1, 1] (unclipped for a ``.keras`` generator), like calling the
        Keras generator; ``training`` is accepted for that symmetry and ignored."""
        return self.hr_fn(tf.convert_to_tensor(lr_unit, tf.float32))


def _keras_upscaler(path) -> Upscaler:
    model = inference_model(load_generator(path))
    try:
        rf = receptive_field(model)
        scale = rf.scale
    except ValueError:
        rf = None
        scale = model_scale(model)
    spec = tf.TensorSpec(IMAGE_SPEC, tf.float32)

    @tf.function(input_signature=[tf.TensorSpec(IMAGE_SPEC, tf.uint8)])
    def uint8_fn(images):
        return ranges.hr_to_uint8(model(ranges.uint8_to_unit_exact(images), training=False))

    @tf.function(input_signature=[spec])
    def hr_fn(images):
        return model(images, training=False)

    upscaler = Upscaler(storage.as_path(path).name, scale, rf, uint8_fn, hr_fn)
    upscaler.model = model
    return upscaler


def read_metadata(folder) -> dict:
    """The description an export wrote into ``FOLDER/assets.extra/sr_lib.json``; {} when there is none."""
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"unreadable export metadata {path}: {error}") from None


def _saved_model_upscaler(path, label=None) -> Upscaler:
    """``path``: a local SavedModel folder; ``label``: how messages name it (default: ``path``)."""
    path = Path(path)
    label = label or path
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:  # TensorFlow raises several types for a damaged SavedModel.
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"could not load the SavedModel {label}: {first[:300]}") from None
    try:
        metadata = read_metadata(path)
    except ValueError as error:
        raise ValueError(str(error).replace(str(path), str(label), 1)) from None
    missing = [name for name in (UINT8_ENDPOINT, FLOAT_ENDPOINT) if not hasattr(loaded, name)]
    if missing or "scale" not in metadata:
        raise ValueError(f"{label} is not a generator exported by `python -m sr_lib export` (missing: "
                         f"{', '.join(missing + ([] if 'scale' in metadata else [str(METADATA_FILE)]))})")
    float_fn = getattr(loaded, FLOAT_ENDPOINT)
    rf = metadata.get("receptive_field")
    upscaler = Upscaler(storage.as_path(label).name, int(metadata["scale"]),
                        ReceptiveField.from_json(rf) if rf else None,
                        getattr(loaded, UINT8_ENDPOINT), lambda images: ranges.unit_to_hr(float_fn(images)),
                        metadata)
    upscaler.loaded = loaded  # Keeps the restored variables alive.
    return upscaler


def _onnx_upscaler(path) -> Upscaler:
    """A ``.onnx`` file (local or a URL) run by onnxruntime. ``export --onnx``'s ``model.onnx`` (uint8) is paired with
    the ``model_float.onnx`` beside it for float inputs (``evaluate``). The scale and receptive field come from the
    metadata stored in the model, else from the export's ``assets.extra/sr_lib.json`` beside it; without either, the
    scale from a probe run and no receptive field (``upscale`` then runs whole images)."""
    def load(file):
        with storage.local_copy(file) as local:  # The session reads the file into memory.
            return OnnxModel(local, label=file)

    main = load(path)
    sibling = path.with_name(path.stem + "_float.onnx") if path.name != ONNX_FLOAT_FILE else None
    with storage.gfile_errors(path.parent):
        has_float = main.dtype == np.uint8 and sibling is not None and sibling.is_file()
        beside = path.parent / METADATA_FILE.as_posix()
        text = main.metadata or (beside.read_text() if beside.is_file() else "")
    try:
        metadata = json.loads(text) if text else {}
    except json.JSONDecodeError as error:
        raise ValueError(f"unreadable export metadata of {path}: {error}") from None
    rf = metadata.get("receptive_field")
    scale = int(metadata["scale"]) if "scale" in metadata else main.probe_scale()
    uint8_fn, hr_fn = onnx_functions(main, load(sibling) if has_float else None)
    return Upscaler(path.name, scale, ReceptiveField.from_json(rf) if rf else None, uint8_fn, hr_fn, metadata)


def load_upscaler(path) -> Upscaler:
    """An :class:`Upscaler` from a ``.keras`` generator file, a SavedModel folder written by ``export`` or a ``.onnx``
    file (:func:`_onnx_upscaler`), local or at a ``tf.io.gfile`` URL (``gs://...``; downloaded to a temporary folder,
    loaded, and the download removed).

    Raises:
        ValueError: naming the path, when it is missing or not a loadable generator (also when onnxruntime, needed
            for a ``.onnx`` file, is not installed: an ImportError too); OSError: naming it, when its store cannot be
            read (an unknown URL scheme, no permission).
    """
    path = storage.as_path(path)
    with storage.gfile_errors(path):
        is_dir, exists = path.is_dir(), path.exists()
        complete = is_dir and is_saved_model(path)
    if is_dir:
        if not complete:
            raise ValueError(f"{path} is a folder but not a SavedModel (no saved_model.pb); pass a .keras file or a "
                             "folder written by `python -m sr_lib export`")
        with storage.local_copy(path) as local:  # The variables are read into memory: the copy can go afterwards.
            return _saved_model_upscaler(local, label=path)
    if not exists:
        raise ValueError(f"model not found: {path}")
    if path.suffix.lower() == ".onnx":
        return _onnx_upscaler(path)
    return _keras_upscaler(path)
