"""What a run executes on: device, precision and VGG19 weights, stated once at the top of every notebook and report.

The same notebook gives different digits on a GPU, an Intel CPU with AMX and an AMD CPU without it, and a VGG loss
with random weights has no perceptual meaning; so every result says which of these produced it.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from sr_lib.core.device import cpu_name, resolve_precision
from sr_lib.nets.vgg import resolve_vgg_weights


@dataclass
class Runtime:
    device: str  # "GPU: <name> x N" or "CPU: <model> (N cores, bf16 instructions)".
    precision: str  # The Keras dtype policy "auto" resolves to here.
    vgg_weights: str  # "imagenet", a local file, "random (...)" or "not used".
    versions: str

    def __str__(self) -> str:
        return (f"device: {self.device}\nprecision: {self.precision}\nVGG19 weights: {self.vgg_weights}\n"
                f"{self.versions}")


def device_name() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return f"CPU: {cpu_name()}"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"GPU: {details.get('device_name', gpus[0].name)} x {len(gpus)}"


def _vgg_label(vgg_weights) -> str:
    if vgg_weights == "none":
        return "not used"
    weights = resolve_vgg_weights(vgg_weights)
    if weights is None:
        why = "weights=None" if vgg_weights is None else "'auto': the ImageNet file could not be obtained"
        return f"random ({why}) - VGG-based losses and their results are NOT perceptual results"
    return str(weights)


def describe(precision="auto", vgg_weights="auto") -> Runtime:
    """The runtime a notebook or run uses.

    Args:
        precision: ``train.mixed_precision`` ("auto", "none", "mixed_bfloat16", "mixed_float16").
        vgg_weights: ``loss.vgg_weights`` ("auto", "imagenet", a file, None for random) or "none" when no VGG is used.
            "auto" is resolved as training resolves it (ImageNet if Keras can get the file, else random).
    """
    return Runtime(device_name(), resolve_precision(precision), _vgg_label(vgg_weights),
                   f"TensorFlow {tf.__version__}, Keras {keras.__version__} ({keras.backend.backend()} backend)")
