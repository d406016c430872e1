"""The VGG19 feature extractor of the content losses (Ledig et al., 2017: "VGG22", "VGG54"), and which weights
"auto" means on this machine."""

import os
import warnings

import keras

from sr_lib.nets.layers import VGGPreprocess

# Feature layers named in the paper ("VGG22", "VGG54": j-th conv, after ReLU, before the i-th max-pooling).
VGG_LAYERS = {"vgg22": "block2_conv2", "vgg54": "block5_conv4"}
# The layers of Keras' VGG19 without top, listed here so that a bad name fails before the (slow) model is built.
_VGG19_CONVS = {1: 2, 2: 2, 3: 4, 4: 4, 5: 4}
VGG19_LAYER_NAMES = tuple(
    name
    for block, convs in _VGG19_CONVS.items()
    for name in [f"block{block}_conv{i}" for i in range(1, convs + 1)] + [f"block{block}_pool"]
)
# What loss.vgg_weights='auto' resolved to in this process.
_AUTO_VGG = {}


def _resolve_vgg_layer(layer):
    if layer in VGG_LAYERS:
        return VGG_LAYERS[layer]
    if layer in VGG19_LAYER_NAMES:
        return layer
    raise ValueError(
        f"Unknown VGG layer {layer!r}; use one of {', '.join(map(repr, VGG_LAYERS))} "
        f"or a Keras VGG19 layer name ({', '.join(VGG19_LAYER_NAMES)})"
    )


def _build_vgg19(weights):
    """Returns (VGG19 without top, label for the weights); turns a failed download into an actionable error."""
    if weights is None:
        return keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3)), "random"
    if weights == "imagenet":
        try:
            vgg = keras.applications.VGG19(include_top=False, weights="imagenet", input_shape=(None, None, 3))
        except Exception as error:  # Keras' get_file raises a bare Exception on URL failures.
            raise RuntimeError(
                "Could not obtain the ImageNet VGG19 weights "
                f"(vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5): {error}. Fix: download the file on a "
                "machine with internet access and place it in ~/.keras/models/ (or $KERAS_HOME/models/), or pass "
                "its path as weights=..., or use weights=None for offline runs (random VGG features: perceptual "
                "losses and their results are then NOT meaningful and must be labelled as such)."
            ) from error
        return vgg, "imagenet"
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise ValueError(
                f"VGG19 weights file not found: {path!r} (weights must be 'imagenet', None or an existing file)"
            )
        return keras.applications.VGG19(include_top=False, weights=path, input_shape=(None, None, 3)), path
    raise ValueError(f"weights must be 'imagenet', None or a path to a weights file, got {weights!r}")


def make_vgg_features(layer="vgg54", weights="imagenet", name=None):
    """Builds a frozen VGG19 feature extractor for perceptual (content) losses.

    Args:
        layer: A ``VGG_LAYERS`` key (``"vgg22"`` -> ``block2_conv2``, ``"vgg54"`` -> ``block5_conv4``) or any layer
            name of Keras' VGG19 without top. Conv outputs are taken after their ReLU, as in the paper.
        weights: ``"imagenet"`` (downloaded once, cached by Keras in ``~/.keras/models/``), a path to a local
            ``.h5``/``.weights.h5`` file of a VGG19 without top, or ``None`` for random weights (offline tests only:
            the features, and any result that uses them, are not meaningful).
        name: Model name; default ``vgg19_<layer>_<imagenet|local|random>``.

    Returns:
        A ``keras.Model`` mapping ``(N, H, W, 3)`` images in [-1, 1] (RGB) to the features of ``layer``;
        ``trainable`` is False. ``model.vgg_weights`` is ``"imagenet"``, the weights path, or ``"random"``.

    Raises:
        ValueError: On an unknown ``layer``, a missing local weights file or an invalid ``weights`` value.
        RuntimeError: When the ImageNet weights are neither cached nor downloadable.
    """
    layer_name = _resolve_vgg_layer(layer)
    vgg, weights_label = _build_vgg19(weights)
    truncated = keras.Model(vgg.input, vgg.get_layer(layer_name).output, name=f"vgg19_to_{layer_name}")
    truncated.trainable = False

    if name is None:
        tag = weights_label if weights_label in ("imagenet", "random") else "local"
        name = f"vgg19_{layer_name}_{tag}"
    inputs = keras.Input(shape=(None, None, 3), name="image")
    # Preprocess in float32 even under mixed precision: bfloat16 cannot represent 0-255 pixel values exactly.
    x = VGGPreprocess(dtype="float32", name="vgg_preprocess")(inputs)
    outputs = truncated(x)
    model = keras.Model(inputs, outputs, name=name)
    model.trainable = False
    model.vgg_weights = weights_label
    return model


def resolve_vgg_weights(weights):
    """``"auto"``: the ImageNet weights when Keras has them cached or can download them, else random weights with a
    warning (demo runs offline; their VGG-based results are then labelled "random VGG"). Decided once per process.
    """
    if weights != "auto":
        return weights
    if "auto" not in _AUTO_VGG:
        try:
            make_vgg_features("vgg22", weights="imagenet")
            _AUTO_VGG["auto"] = "imagenet"
        except RuntimeError as error:
            warnings.warn(f"VGG19 ImageNet weights unavailable ({str(error).splitlines()[0]}); using RANDOM VGG "
                          "weights. VGG-based results of this run are labelled 'random VGG' and are not perceptual "
                          "results.", stacklevel=2)
            _AUTO_VGG["auto"] = None
    return _AUTO_VGG["auto"]
