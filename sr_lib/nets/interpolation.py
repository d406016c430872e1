"""Network interpolation (Wang et al., ESRGAN, 2018, section 3.4): blend two generators of the same architecture
parameter by parameter, ``(1 - alpha) * A + alpha * B``. Between a PSNR-oriented generator (A) and a GAN generator
fine-tuned from it (B), alpha walks the perception-distortion trade-off without retraining.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from sr_lib.nets.saving import load_generator, save_model_atomic


def _signature(model) -> list:
    return [(variable.path.split("/", 1)[-1], tuple(variable.shape)) for variable in model.weights]


def check_same_architecture(model_a, model_b, names=("A", "B")):
    """Raises ValueError, naming the first difference, unless both models hold the same variables and shapes."""
    sig_a, sig_b = _signature(model_a), _signature(model_b)
    if len(sig_a) != len(sig_b):
        raise ValueError(f"generators {names[0]} and {names[1]} have different architectures: {len(sig_a)} vs "
                         f"{len(sig_b)} weight tensors")
    for (path_a, shape_a), (path_b, shape_b) in zip(sig_a, sig_b):
        if shape_a != shape_b or path_a != path_b:
            raise ValueError(f"generators {names[0]} and {names[1]} have different architectures: {path_a} "
                             f"{shape_a} vs {path_b} {shape_b}")


def interpolate_generators(model_a, model_b, alpha: float) -> keras.Model:
    """A new generator with weights ``(1 - alpha) * A + alpha * B`` (alpha 0 gives A, 1 gives B, exactly).

    Args:
        model_a, model_b: generators of the same architecture (e.g. SRResNet-MSE and an SRGAN fine-tuned from it).
        alpha: the blend, in [0, 1].
    """
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    check_same_architecture(model_a, model_b)
    blended = keras.models.clone_model(model_a)
    weights = [((1.0 - alpha) * np.asarray(a, np.float64) + alpha * np.asarray(b, np.float64)).astype(a.dtype)
               for a, b in zip(model_a.get_weights(), model_b.get_weights())]
    blended.set_weights(weights)
    return blended


def interpolate_files(path_a, path_b, alpha: float, out) -> Path:
    """Loads two ``.keras`` generators, blends them and saves the result to ``out`` (a ``.keras`` path)."""
    out = Path(out)
    if out.suffix != ".keras":
        raise ValueError(f"the output must be a .keras file, got {out}")
    model_a, model_b = load_generator(path_a), load_generator(path_b)
    try:
        check_same_architecture(model_a, model_b, names=(str(path_a), str(path_b)))
    except ValueError as error:
        raise ValueError(str(error)) from None
    blended = interpolate_generators(model_a, model_b, alpha)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_model_atomic(blended, out)  # Written whole, then renamed: never a truncated file at `out`.
    return out
