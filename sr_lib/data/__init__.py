"""Training data: find and decode images, make bicubic LR/HR pairs, and stream random crops with tf.data.

``files``: find image files and decode each once with Pillow to RGB uint8.
``pairs``: optional Gaussian blur, then antialiased bicubic downsampling -> (lr in [0, 1], hr in [-1, 1]); stateless
random crops, flips and rotations.
``datasets``: the infinite tf.data stream of random crops and the fixed validation crops. All randomness is stateless
and derived from (seed, element index), so a seed fixes every batch.
"""

from sr_lib.data.datasets import crops_per_second, make_train_dataset, make_validation_set
from sr_lib.data.files import (DEFAULT_IMAGES, DIV2K_FOLDERS, IMAGE_EXTENSIONS, DataError, decode_image,
                               default_images, find_div2k, find_images, inspect_images, is_div2k, load_images, png_bytes, resolve_images,
                               split_holdout)
from sr_lib.data.pairs import (SCALES, augment, bicubic_downsample, bicubic_upscale, degrade, gaussian_blur,
                               make_pair, random_crop, center_crop)

__all__ = [
    "DEFAULT_IMAGES", "DIV2K_FOLDERS", "IMAGE_EXTENSIONS", "SCALES", "DataError", "augment", "bicubic_downsample",
    "bicubic_upscale", "center_crop", "crops_per_second", "decode_image", "default_images", "degrade", "find_div2k", "find_images", "gaussian_blur", "inspect_images",
    "is_div2k", "load_images", "make_pair", "make_train_dataset", "make_validation_set", "png_bytes", "random_crop",
    "resolve_images", "split_holdout",
]
