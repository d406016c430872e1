"""SRResNet generator, SRGAN discriminator and VGG19 feature extractor (Ledig et al., 2017) as functional builders.

Only ``keras.layers``/``keras.ops`` and the registered layers of :mod:`sr_lib.nets.layers` are used, so every model runs
on the TensorFlow and JAX backends and loads with ``keras.saving.load_model(path, safe_mode=True)``.
"""

import keras
from keras import layers

from sr_lib.nets.layers import ICNR, FastPReLU, FusedBatchNormalization, PixelShuffle

UPSAMPLERS = ("subpixel", "upsampling")
INTERPOLATIONS = ("nearest", "bilinear")
# Global residual learning (VDSR; BasicSR's MSRResNet): the network adds its output to an upsampled copy of the input.
GLOBAL_RESIDUALS = ("none", "bicubic", "bilinear")
SCALES = (2, 3, 4, 8)
# Upscaling stages per scale: x2 stages for powers of two, one x3 stage for 3 (as in the paper's x4 = two x2).
_STAGES = {2: (2,), 3: (3,), 4: (2, 2), 8: (2, 2, 2)}



def _check_int(name, value, minimum):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}; valid values: {', '.join(map(repr, choices))}")


def _conv(filters, kernel_size, name, **kwargs):
    return layers.Conv2D(filters, kernel_size, padding="same", name=name, **kwargs)


def _residual_initializer(scale):
    """Keras' default (Glorot uniform) when ``scale`` is None; else He-normal weights multiplied by ``scale``
    (BasicSR's ``default_init_weights(scale=0.1)``): each block starts near identity, which steadies deep BN-free
    bodies. Weights times ``scale`` means variance times ``scale**2``, hence VarianceScaling's ``2 * scale**2``."""
    if scale is None:
        return "glorot_uniform"
    return keras.initializers.VarianceScaling(scale=2.0 * scale * scale, mode="fan_in",
                                              distribution="untruncated_normal")


def _prelu(name):
    # Sharing the slope over height and width gives one parameter per channel (as in the paper) and lets the
    # layer accept any spatial size.
    return FastPReLU(shared_axes=[1, 2], name=name)


def _normalize(x, batch_norm, name, synchronized=False):
    return FusedBatchNormalization(name=name, synchronized=synchronized)(x) if batch_norm else x


def _residual_block(x, channels, name, batch_norm=True, init_scale=None, synchronized=False):
    skip = x
    x = _conv(channels, 3, f"{name}_conv1", kernel_initializer=_residual_initializer(init_scale))(x)
    x = _normalize(x, batch_norm, f"{name}_bn1", synchronized)
    x = _prelu(f"{name}_prelu")(x)
    x = _conv(channels, 3, f"{name}_conv2", kernel_initializer=_residual_initializer(init_scale))(x)
    x = _normalize(x, batch_norm, f"{name}_bn2", synchronized)
    return layers.Add(name=f"{name}_add")([skip, x])


def _upsample_stage(x, channels, factor, upsample, interpolation, icnr, name):
    if upsample == "subpixel":
        initializer = ICNR(scale=factor) if icnr else "glorot_uniform"
        x = _conv(channels * factor * factor, 3, f"{name}_conv", kernel_initializer=initializer)(x)
        x = PixelShuffle(factor, name=f"{name}_shuffle")(x)
    else:
        x = layers.UpSampling2D(factor, interpolation=interpolation, name=f"{name}_resize")(x)
        x = _conv(channels, 3, f"{name}_conv")(x)
    return _prelu(f"{name}_prelu")(x)


def make_generator(
    num_blocks=16, channels=64, scale=4, upsample="subpixel", interpolation="nearest", icnr=True, name="srresnet",
    batch_norm=True, global_residual="none", residual_init_scale=None, sync_batch_norm=False,
):
    """Builds the SRResNet generator (Ledig et al., 2017), fully convolutional.

    9x9 conv + PReLU; ``num_blocks`` residual blocks (conv-BN-PReLU-conv-BN + skip); conv-BN + global skip;
    upscaling stages; 9x9 conv to RGB + tanh.

    Args:
        num_blocks: Number of residual blocks B (paper: 16); 0 is allowed.
        channels: Feature channels of every conv (paper: 64).
        scale: Upscaling factor, one of ``SCALES`` (2, 3, 4, 8): x2 stages for 2/4/8, one x3 stage for 3.
        upsample: ``"subpixel"`` (conv to ``channels*r*r`` + depth_to_space + PReLU, the paper) or
            ``"upsampling"`` (``UpSampling2D`` + conv + PReLU, a resize-convolution).
        interpolation: ``"nearest"`` or ``"bilinear"``, used by ``upsample="upsampling"`` only.
        icnr: Initialise sub-pixel convs with ICNR (Aitken et al., 2017) to avoid checkerboard artefacts at the
            start of training; ignored for ``"upsampling"``.
        name: Model name.
        batch_norm: The paper's batch normalisation in the residual body. ``False`` drops it (as EDSR and ESRGAN
            later did): BN's batch statistics cost PSNR and shift colours on short runs and small batches.
        global_residual: ``"none"`` (the paper: 9x9 conv + tanh gives the image), or ``"bicubic"``/``"bilinear"``:
            the 9x9 conv's output (no tanh) is added to that upsampling of the input (VDSR; BasicSR's MSRResNet),
            so the network learns only the missing detail and the low frequencies and colours are pinned from the
            start. Not the paper's architecture. The output is then not bounded to [-1, 1]: clip it when saving.
        residual_init_scale: None for Keras' default initialisation of the residual blocks' convs (the paper), or a
            factor (BasicSR: 0.1) applied to He-normal weights there.
        sync_batch_norm: Under a multi-device ``tf.distribute`` strategy, compute the BatchNorm statistics over the
            global batch (all replicas) rather than each replica's share (Keras' ``synchronized=True``; slower: an
            all-reduce per BN layer). No effect on one device or without ``batch_norm``.

    Returns:
        A ``keras.Model`` mapping LR ``(N, H, W, 3)`` in [0, 1] to SR ``(N, H*scale, W*scale, 3)`` in [-1, 1],
        float32 even under a mixed-precision policy.

    Raises:
        ValueError: On an invalid ``scale``, ``upsample``, ``interpolation``, ``num_blocks`` or ``channels``.
    """
    _check_int("num_blocks", num_blocks, 0)
    _check_int("channels", channels, 1)
    _check_choice("scale", scale, SCALES)
    _check_choice("upsample", upsample, UPSAMPLERS)
    _check_choice("interpolation", interpolation, INTERPOLATIONS)
    _check_choice("global_residual", global_residual, GLOBAL_RESIDUALS)
    if residual_init_scale is not None and not residual_init_scale > 0:
        raise ValueError(f"residual_init_scale must be None or > 0, got {residual_init_scale!r}")

    inputs = keras.Input(shape=(None, None, 3), name="lr")
    x = _conv(channels, 9, "head_conv")(inputs)
    head = x = _prelu("head_prelu")(x)
    for index in range(1, num_blocks + 1):
        x = _residual_block(x, channels, f"block{index}", batch_norm, residual_init_scale, sync_batch_norm)
    x = _conv(channels, 3, "body_conv")(x)
    x = _normalize(x, batch_norm, "body_bn", sync_batch_norm)
    x = layers.Add(name="global_skip")([head, x])
    for index, factor in enumerate(_STAGES[scale], start=1):
        x = _upsample_stage(x, channels, factor, upsample, interpolation, icnr, f"upsample{index}")
    x = _conv(3, 9, "tail_conv")(x)
    # float32 output keeps the [-1, 1] image and the losses on it exact under mixed_float16/mixed_bfloat16.
    if global_residual == "none":
        outputs = layers.Activation("tanh", dtype="float32", name="sr")(x)
    else:
        base = layers.UpSampling2D(scale, interpolation=global_residual, dtype="float32", name="base_resize")(inputs)
        base = layers.Rescaling(2.0, offset=-1.0, dtype="float32", name="base_to_hr_range")(base)
        outputs = layers.Add(dtype="float32", name="sr")([base, x])
    return keras.Model(inputs, outputs, name=name)


def as_float32(model, layer_class=None):
    """A float32 copy (same weights) of a model built under a mixed-precision policy, e.g. to ship or export a
    generator trained in mixed_bfloat16: loaded as saved, it would otherwise run in bfloat16 and lose PSNR.

    Args:
        model: the model to copy.
        layer_class: optional ``layer -> class or None``: the class to rebuild a layer with (from its config) instead
            of its own, e.g. a resize layer that accepts any input size for export.
    """

    def float32_layer(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        cls = (layer_class(layer) if layer_class else None) or layer.__class__
        return cls.from_config(config)

    copy = keras.models.clone_model(model, clone_function=float32_layer)
    copy.set_weights(model.get_weights())
    return copy


def make_discriminator(hr_size=96, channels=64, name="discriminator", sync_batch_norm=False):
    """Builds the SRGAN discriminator; it returns logits (no sigmoid), as the TF-GAN losses expect.

    Eight 3x3 convs with ``channels * (1, 1, 2, 2, 4, 4, 8, 8)`` filters, strides 1, 2, 1, 2, ...; BatchNorm on all
    but the first; LeakyReLU(0.2); then Dense(1024), LeakyReLU(0.2), Dense(1).

    Args:
        hr_size: How the network handles input size. An int gives the paper's network: a fixed
            ``(hr_size, hr_size, 3)`` input, Flatten -> Dense (other sizes raise ``ValueError``). ``None`` accepts
            any size: GlobalAveragePooling2D -> Dense (far fewer parameters; not the paper).
        channels: Width of the first conv (paper: 64); the other convs scale with it (the Dense layer stays 1024).
        name: Model name.
        sync_batch_norm: BatchNorm statistics over all replicas' batches under a multi-device strategy (see
            ``make_generator``).

    Returns:
        A ``keras.Model`` mapping HR/SR images in [-1, 1] to float32 logits of shape ``(N, 1)``.

    Raises:
        ValueError: On a non-positive ``channels`` or an ``hr_size`` that is neither None nor an int >= 16.
    """
    if hr_size is not None:
        # Four stride-2 convs: anything under 16 px would collapse to less than one pixel of features.
        _check_int("hr_size", hr_size, 16)
    _check_int("channels", channels, 1)

    inputs = keras.Input(shape=(hr_size, hr_size, 3), name="hr")
    x = inputs
    for index, multiplier in enumerate((1, 1, 2, 2, 4, 4, 8, 8), start=1):
        stride = 2 if index % 2 == 0 else 1
        x = _conv(channels * multiplier, 3, f"conv{index}", strides=stride)(x)
        if index > 1:
            x = FusedBatchNormalization(name=f"bn{index}", synchronized=sync_batch_norm)(x)
        x = layers.LeakyReLU(negative_slope=0.2, name=f"lrelu{index}")(x)
    if hr_size is None:
        x = layers.GlobalAveragePooling2D(name="pool")(x)
    else:
        x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(1024, name="dense")(x)
    x = layers.LeakyReLU(negative_slope=0.2, name="dense_lrelu")(x)
    outputs = layers.Dense(1, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=name)
