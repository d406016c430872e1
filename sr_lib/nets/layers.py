"""Registered custom layers and initializers for sr_lib's networks.

Everything here uses ``keras.ops`` only (no TensorFlow), so the models also run on Keras' JAX backend, and every
class is registered with Keras' serialization registry (package ``sr_lib``), so ``.keras`` files containing them
load with ``keras.saving.load_model(path, safe_mode=True)``. Importing :mod:`sr_lib.nets.models` imports this module, which
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


@keras.saving.register_keras_serializable(package="sr_lib")
class FastPReLU(keras.layers.PReLU):
    """``keras.layers.PReLU`` (same weights, same result) computed as one select, ``where(x > 0, x, alpha * x)``.

    Keras' PReLU computes ``relu(x) - alpha * relu(-x)``: five elementwise passes forward and more backward, which
    measured as a quarter of an SRResNet training step on CPU (the PReLU after the last upscaling runs at HR size).
    """

    def call(self, inputs):
        alpha = ops.cast(self.alpha, inputs.dtype)
        return ops.where(inputs > 0, inputs, alpha * inputs)


@keras.saving.register_keras_serializable(package="sr_lib")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with TensorFlow's fused kernel for the training-mode forward pass.

    Keras 3 normalises with separate ops in float32 (cast, moments, normalise, cast back); on the TensorFlow backend
    this layer calls ``FusedBatchNormV3`` instead (one oneDNN/cuDNN kernel, bfloat16/float16 inputs with float32
    statistics), which measured about 4x faster on CPU. This is the one place a model layer touches ``tf``: on any other
    backend, with a mask, renorm, a non-last axis or in inference mode it is exactly the Keras layer, so models keep
    running under JAX. The moving variance is updated with the unbiased batch variance (cuDNN's convention): a factor
    n/(n-1) with n = batch x height x width, negligible at SR batch sizes.
    """

    def call(self, inputs, training=None, mask=None):
        fusable = (training and self.trainable and mask is None and not self.renorm and not self.synchronized
                   and keras.backend.backend() == "tensorflow" and len(inputs.shape) == 4
                   and self.axis in (-1, 3))
        if not fusable:
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # TensorFlow backend only (checked above).

        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones([channels])
        beta = self.beta if self.center else tf.zeros([channels])
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, tf.cast(gamma, tf.float32), tf.cast(beta, tf.float32),
            mean=tf.cast(self.moving_mean, tf.float32), variance=tf.cast(self.moving_variance, tf.float32),
            epsilon=self.epsilon, data_format="NHWC", is_training=True, exponential_avg_factor=1.0 - self.momentum)
        self.moving_mean.assign(mean)
        self.moving_variance.assign(variance)
        return ops.cast(outputs, self.compute_dtype)
