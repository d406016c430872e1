"""Registered custom layers and initializers for sr_lib's networks.

Everything here uses ``keras.ops`` only (no TensorFlow), so the models also run on Keras' JAX backend, and every
class is registered with Keras' serialization registry (package ``sr_lib``), so ``.keras`` files containing them
load with ``keras.saving.load_model(path, safe_mode=True)``. Importing :mod:`sr_lib.models` imports this module, which
performs the registration.
"""

import keras
from keras import ops

# ImageNet channel means in BGR order, the "caffe" convention the Keras VGG19 weights were trained with
# (see keras.applications.vgg19.preprocess_input).
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="sr_lib")
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel rearrangement ``(N, H, W, C*r*r) -> (N, H*r, W*r, C)`` (Shi et al., 2016).

    A thin wrapper around ``keras.ops.depth_to_space`` so that it is serializable (a ``Lambda`` is not loadable in
    safe mode). Channel ordering is that of ``depth_to_space``: output pixel ``(h*r + i, w*r + j)`` channel ``c``
    comes from input channel ``(i*r + j)*C + c``; :class:`ICNR` relies on this ordering.

    Args:
        block_size: Upscaling factor ``r`` (an integer >= 2).
        **kwargs: Standard ``keras.layers.Layer`` arguments (``name``, ``dtype``...).
    """

    def __init__(self, block_size, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < 2:
            raise ValueError(f"PixelShuffle block_size must be an integer >= 2, got {block_size!r}")
        self.block_size = block_size

    def call(self, inputs):
        return ops.depth_to_space(inputs, self.block_size, data_format="channels_last")

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        r = self.block_size
        if channels is not None and channels % (r * r):
            raise ValueError(f"PixelShuffle(block_size={r}) needs channels divisible by {r * r}, got {channels}")
        return (
            batch,
            None if height is None else height * r,
            None if width is None else width * r,
            None if channels is None else channels // (r * r),
        )

    def get_config(self):
        config = super().get_config()
        config.update(block_size=self.block_size)
        return config


@keras.saving.register_keras_serializable(package="sr_lib")
class VGGPreprocess(keras.layers.Layer):
    """Maps ``[-1, 1]`` RGB images to the "caffe" input of Keras' VGG19 weights.

    ``x * 127.5 + 127.5`` (back to 0-255), RGB -> BGR, then subtract the ImageNet BGR mean; this equals
    ``keras.applications.vgg19.preprocess_input`` applied to the equivalent 0-255 image, but lives inside the model
    (differentiable, serializable, backend-agnostic).

    Args:
        **kwargs: Standard ``keras.layers.Layer`` arguments.
    """

    def call(self, inputs):
        pixels = inputs * 127.5 + 127.5
        bgr = ops.flip(pixels, axis=-1)
        mean = ops.convert_to_tensor(IMAGENET_BGR_MEAN, dtype=bgr.dtype)
        return bgr - mean

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="sr_lib")
class ICNR(keras.initializers.Initializer):
    """ICNR initializer for sub-pixel convolutions (Aitken et al., 2017, "Checkerboard artifact free sub-pixel
    convolution").

    The base initializer draws a kernel with ``C = filters / r**2`` output channels, and that kernel is repeated so
    that all ``r*r`` sub-pixel positions of each output channel get identical weights. With the channel ordering of
    ``keras.ops.depth_to_space`` (channel ``(i*r + j)*C + c``), that is a tile along the last axis. At
    initialisation, conv + depth_to_space then equals nearest-neighbour upsampling of the base convolution, which
    removes the checkerboard artefacts of a randomly initialised sub-pixel layer.

    Args:
        scale: Upscaling factor ``r`` of the following ``depth_to_space``.
        initializer: Base initializer (name, config dict or instance); Keras' Conv2D default ``"glorot_uniform"``.
    """

    def __init__(self, scale=2, initializer="glorot_uniform"):
        if not isinstance(scale, int) or isinstance(scale, bool) or scale < 2:
            raise ValueError(f"ICNR scale must be an integer >= 2, got {scale!r}")
        self.scale = scale
        self.initializer = keras.initializers.get(initializer)

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        positions = self.scale * self.scale
        if shape[-1] % positions:
            raise ValueError(
                f"ICNR(scale={self.scale}) needs a kernel whose last dimension is divisible by {positions}, "
                f"got shape {shape}"
            )
        base = self.initializer(shape[:-1] + (shape[-1] // positions,), dtype=dtype)
        return ops.tile(base, (1,) * (len(shape) - 1) + (positions,))

    def get_config(self):
        return {"scale": self.scale, "initializer": keras.initializers.serialize(self.initializer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["initializer"] = keras.initializers.deserialize(config["initializer"])
        return cls(**config)


def icnr_initializer(scale=2, initializer="glorot_uniform"):
    """Returns an :class:`ICNR` initializer for a conv followed by ``depth_to_space(scale)``.

    Args:
        scale: Upscaling factor of the following sub-pixel rearrangement.
        initializer: Base initializer (name, config dict or instance) for one sub-pixel position.

    Returns:
        An ``ICNR`` instance (a registered ``keras.initializers.Initializer``).
    """
    return ICNR(scale=scale, initializer=initializer)
