"""LR/HR pairs: Gaussian blur and antialiased bicubic downsampling; stateless random crops, flips and rotations."""

import math

import numpy as np
import tensorflow as tf

from sr_lib.core import ranges

SCALES = (2, 3, 4, 8)


def _check_scale(scale, allowed=SCALES):
    """``scale`` must be in ``allowed``, or any positive integer when ``allowed`` is None."""
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    if allowed is not None and scale not in allowed:
        raise ValueError(f"scale must be one of {allowed}, got {scale!r}")


def _resize(images_unit, size_of, antialias):
    """Bicubic resize of HWC/NHWC images to ``size_of(height_width)``, clipped: bicubic overshoots at edges."""
    images = tf.convert_to_tensor(images_unit, tf.float32)
    if images.shape.rank not in (3, 4):
        raise ValueError(f"expected an HWC or NHWC image, got shape {images.shape}")
    resized = tf.image.resize(images, size_of(tf.shape(images)[-3:-1]), method="bicubic", antialias=antialias)
    return tf.clip_by_value(resized, 0.0, 1.0)


def bicubic_downsample(hr_unit, scale) -> tf.Tensor:
    """Antialiased bicubic downsampling (as MATLAB's imresize), clipped to [0, 1].

    Args:
        hr_unit: HR in [0, 1], HWC or NHWC, height and width divisible by ``scale`` (checked for static shapes).
        scale: a positive integer factor.
    """
    _check_scale(scale, allowed=None)
    height, width = tf.convert_to_tensor(hr_unit).shape[-3:-1]
    if (height is not None and height % scale) or (width is not None and width % scale):
        raise ValueError(f"image size {height}x{width} is not divisible by scale {scale}")
    return _resize(hr_unit, lambda size: size // scale, antialias=True)


def bicubic_upscale(lr_unit, scale) -> tf.Tensor:
    """Bicubic upscaling by ``scale`` (the baseline), clipped to [0, 1].

    Args:
        lr_unit: LR in [0, 1], HWC or NHWC.
        scale: a positive integer factor.
    """
    _check_scale(scale, allowed=None)
    return _resize(lr_unit, lambda size: size * scale, antialias=False)


def gaussian_blur(images_unit, sigma) -> tf.Tensor:
    """Gaussian blur, separable depthwise convolution with reflect padding (same size out); sigma=0 is the identity.

    Args:
        images_unit: float images, HWC or NHWC, larger than 3 * sigma.
        sigma: standard deviation in pixels; the kernel reaches 3 sigma.
    """
    if not sigma >= 0:
        raise ValueError(f"blur sigma must be >= 0, got {sigma!r}")
    images = tf.convert_to_tensor(images_unit, tf.float32)
    if sigma == 0:
        return images
    if images.shape.rank not in (3, 4) or images.shape[-1] is None:
        raise ValueError(f"expected an HWC or NHWC image with known channels, got shape {images.shape}")
    batch = images if images.shape.rank == 4 else images[tf.newaxis]
    radius = max(1, math.ceil(3 * sigma))
    height, width = batch.shape[1:3]
    if (height is not None and height <= radius) or (width is not None and width <= radius):
        raise ValueError(f"image of {height}x{width} px is too small for blur sigma {sigma}: reflect padding needs "
                         f"more than {radius} px")
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = tf.constant(taps / taps.sum(), tf.float32)
    channels = batch.shape[-1]
    vertical = tf.tile(tf.reshape(taps, [-1, 1, 1, 1]), [1, 1, channels, 1])
    horizontal = tf.reshape(vertical, [1, -1, channels, 1])
    # Reflect padding keeps the borders' brightness; zero padding would darken them.
    padded = tf.pad(batch, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    blurred = tf.nn.depthwise_conv2d(padded, vertical, [1, 1, 1, 1], "VALID")
    blurred = tf.nn.depthwise_conv2d(blurred, horizontal, [1, 1, 1, 1], "VALID")
    return blurred if images.shape.rank == 4 else blurred[0]


def degrade(hr_unit, scale, blur_sigma=0.0) -> tf.Tensor:
    """HR in [0, 1] -> LR in [0, 1]: optional Gaussian blur, then antialiased bicubic downsampling.

    Args:
        hr_unit: HR in [0, 1], HWC or NHWC, sides divisible by ``scale``.
        scale: 2, 3, 4 or 8.
        blur_sigma: Gaussian blur before downsampling, in HR pixels; 0 for none.
    """
    _check_scale(scale)
    return bicubic_downsample(gaussian_blur(hr_unit, blur_sigma), scale)


def make_pair(hr_crop_uint8, scale, blur_sigma=0.0):
    """uint8 HR crop(s) -> (lr in [0, 1], hr in [-1, 1]), see ``degrade``.

    Args:
        hr_crop_uint8: uint8 HWC or NHWC, sides divisible by ``scale``.
        scale: 2, 3, 4 or 8.
        blur_sigma: Gaussian blur before downsampling, in HR pixels.
    """
    hr_crop = tf.convert_to_tensor(hr_crop_uint8)
    if hr_crop.dtype != tf.uint8:
        raise ValueError(f"make_pair expects uint8 crops, got {hr_crop.dtype.name}")
    return degrade(ranges.uint8_to_unit(hr_crop), scale, blur_sigma), ranges.uint8_to_hr(hr_crop)


# --- Crops and augmentation ------------------------------------------------------------------------------------------

def _as_seed(seed):
    """An int or a shape-[2] stateless seed -> int64[2]."""
    seed = tf.cast(seed, tf.int64)
    return tf.stack([seed, tf.constant(0, tf.int64)]) if seed.shape.rank == 0 else seed


def _crop_origin(height, width, size, seed):
    """Uniform top-left corner of a size x size crop; int64 full-range draws, so the modulo bias is ~1e-15."""
    draws = tf.random.stateless_uniform([2], _as_seed(seed), minval=None, maxval=None, dtype=tf.int64)
    return tf.math.floormod(draws[0], height - size + 1), tf.math.floormod(draws[1], width - size + 1)


def center_crop(image, size):
    """The central ``size x size`` crop of an HWC image (numpy or tensor); a side shorter than ``size`` is kept
    whole."""
    height, width = image.shape[:2]
    crop_height, crop_width = min(size, height), min(size, width)
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    return image[top:top + crop_height, left:left + crop_width]


def random_crop(image_uint8, size, seed) -> tf.Tensor:
    """A size x size crop at a stateless random position.

    Args:
        image_uint8: HWC image (any dtype), at least ``size`` high and wide.
        size: the crop side in pixels.
        seed: an int or a shape-[2] seed for ``tf.random.stateless_*``.
    """
    image = tf.convert_to_tensor(image_uint8)
    height, width = image.shape[:2]
    if (height is not None and height < size) or (width is not None and width < size):
        raise ValueError(f"image of {height}x{width} px is smaller than the crop size {size}")
    shape = tf.shape(image, out_type=tf.int64)
    top, left = _crop_origin(shape[0], shape[1], size, seed)
    return tf.slice(image, tf.stack([top, left, 0]), tf.constant([size, size, -1], tf.int64))


def augment(hr, seed) -> tf.Tensor:
    """A random one of the 8 flips/90-degree rotations (a left-right flip, then 0-3 quarter turns).

    Args:
        hr: HWC image, any dtype (NHWC: each image is flipped independently, all rotated alike).
        seed: an int or a shape-[2] seed for ``tf.random.stateless_*``.
    """
    flip_seed, turn_seed = tf.unstack(tf.random.experimental.stateless_split(_as_seed(seed), 2))
    flipped = tf.image.stateless_random_flip_left_right(hr, flip_seed)
    return tf.image.rot90(flipped, tf.random.stateless_uniform([], turn_seed, 0, 4, dtype=tf.int32))
