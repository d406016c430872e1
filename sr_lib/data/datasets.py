"""tf.data training stream of random (LR, HR) crops and the fixed validation set, both fixed by a seed."""

import time

import numpy as np
import tensorflow as tf

from sr_lib.data.pairs import _check_scale, _crop_origin, make_pair, random_crop
from sr_lib.data.pairs import augment as _augment  # make_train_dataset's `augment` flag shadows the name.

# Separate random streams under one user seed, so that validation crops do not repeat the first training crops.
_TRAIN_STREAM, _VALID_STREAM = 0, 1


def _check_images(images, hr_size):
    """Images as RGB uint8 arrays, all at least hr_size x hr_size, else ValueError naming them."""
    arrays = [np.asarray(image) for image in images]
    if not arrays:
        raise ValueError("no images given")
    for index, image in enumerate(arrays):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"images[{index}] must be RGB uint8 (H, W, 3), got {image.dtype} {image.shape}")
    small = [f"images[{index}] ({image.shape[0]}x{image.shape[1]})" for index, image in enumerate(arrays)
             if min(image.shape[:2]) < hr_size]
    if small:
        raise ValueError(f"{len(small)} image(s) smaller than hr_size={hr_size}: {', '.join(small)}; "
                         f"use a smaller hr_size or load with min_size={hr_size} to skip them")
    return arrays


def _check_settings(hr_size, scale, blur_sigma, seed, **positive):
    _check_scale(scale)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    for name, value in dict(hr_size=hr_size, **positive).items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if hr_size % scale:
        raise ValueError(f"hr_size={hr_size} is not divisible by scale={scale}")
    if not blur_sigma >= 0:
        raise ValueError(f"blur_sigma must be >= 0, got {blur_sigma!r}")


def make_train_dataset(images, hr_size=256, scale=4, batch_size=16, seed=0, blur_sigma=0.0,
                       augment=True) -> tf.data.Dataset:
    """Infinite batches of (lr [B, hr_size/scale, hr_size/scale, 3] in [0, 1], hr [B, hr_size, hr_size, 3] in [-1, 1]).

    Each element draws an image uniformly, a uniform crop and (optionally) a flip/rotation, all with stateless random
    ops seeded by (seed, element index): the same seed gives the same batches, whatever the parallelism.

    Args:
        images: decoded RGB uint8 images, e.g. from ``resolve_images``; each at least hr_size x hr_size.
        hr_size: HR crop side (256 -> 64 LR at x4; the paper used 96).
        scale: 2, 3, 4 or 8; must divide hr_size.
        batch_size: crops per batch (incomplete batches never occur: the stream is infinite).
        seed: the data seed.
        blur_sigma: Gaussian blur before downsampling, in HR pixels; 0 for plain bicubic.
        augment: random flips and 90-degree rotations.

    The images are copied once into a single tensor, which the dataset keeps (DIV2K train: about 6.6 GB).
    """
    _check_settings(hr_size, scale, blur_sigma, seed, batch_size=batch_size)
    arrays = _check_images(images, hr_size)
    # All images in one flat uint8 tensor with per-image offsets: any crop is one gather, with no Python in the
    # per-step path and no copy of the whole image per step. The eager tensor is captured by reference, not
    # serialised into the graph, so the 2 GB graph-constant limit does not apply (checked with 2.3 GB).
    heights = np.array([image.shape[0] for image in arrays], np.int64)
    widths = np.array([image.shape[1] for image in arrays], np.int64)
    offsets = np.concatenate([[0], np.cumsum(heights * widths * 3)[:-1]]).astype(np.int64)
    buffer = tf.constant(np.concatenate([image.reshape(-1) for image in arrays]))
    heights, widths, offsets = (tf.constant(values) for values in (heights, widths, offsets))
    key = tf.constant([seed, _TRAIN_STREAM], tf.int64)
    columns = tf.range(hr_size * 3, dtype=tf.int64)  # One crop row: hr_size pixels x 3 channels, contiguous.

    def sample(index):
        image_seed, crop_seed, augment_seed = tf.unstack(
            tf.random.experimental.stateless_split(tf.random.experimental.stateless_fold_in(key, index), 3))
        draw = tf.random.stateless_uniform([], image_seed, minval=None, maxval=None, dtype=tf.int64)
        image = tf.math.floormod(draw, len(arrays))
        width = widths[image]
        top, left = _crop_origin(heights[image], width, hr_size, crop_seed)
        rows = tf.range(top, top + hr_size, dtype=tf.int64)
        indices = offsets[image] + (rows[:, None] * width + left) * 3 + columns[None, :]
        crop = tf.reshape(tf.gather(buffer, indices), [hr_size, hr_size, 3])
        if augment:
            crop = tf.ensure_shape(_augment(crop, augment_seed), [hr_size, hr_size, 3])
        return crop

    dataset = tf.data.Dataset.counter().map(sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    # Blur and resize whole batches: one op per batch instead of one per crop.
    dataset = dataset.map(lambda hr: make_pair(hr, scale, blur_sigma), num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def make_validation_set(images, hr_size=256, scale=4, seed=0, crops_per_image=1,
                        blur_sigma=0.0) -> tuple[np.ndarray, np.ndarray]:
    """Fixed validation crops: (lr [N, hr/s, hr/s, 3] in [0, 1], hr [N, hr, hr, 3] in [-1, 1]) as numpy arrays.

    Crop j of image i depends only on (seed, i, j), so adding images or crops keeps the existing ones.

    Args:
        images: decoded RGB uint8 images, each at least hr_size x hr_size.
        hr_size: HR crop side; must be divisible by scale.
        scale: 2, 3, 4 or 8.
        seed: the data seed.
        crops_per_image: crops cut from each image (N = len(images) * crops_per_image).
        blur_sigma: Gaussian blur before downsampling, as in training.
    """
    _check_settings(hr_size, scale, blur_sigma, seed, crops_per_image=crops_per_image)
    arrays = _check_images(images, hr_size)
    fold_in = tf.random.experimental.stateless_fold_in
    key = tf.constant([seed, _VALID_STREAM], tf.int64)
    crops = [random_crop(image, hr_size, fold_in(fold_in(key, index), crop))
             for index, image in enumerate(arrays) for crop in range(crops_per_image)]
    lr, hr = make_pair(tf.stack(crops), scale, blur_sigma)
    return lr.numpy(), hr.numpy()


def crops_per_second(images, batch_size: int, hr_size: int, steps: int, scale: int = 4) -> float:
    """Training crops per second that :func:`make_train_dataset` delivers from ``images`` on this machine, after it
    has filled its cache and prefetch buffer (the rate the training step must never wait on)."""
    iterator = iter(make_train_dataset(images, hr_size=hr_size, scale=scale, batch_size=batch_size, seed=0))
    for _ in range(20):
        next(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return batch_size * steps / (time.perf_counter() - start)
