"""The one value-range convention of sr_lib, and the only place that converts between ranges.

- Images on disk and in memory are RGB ``uint8``, shape ``(H, W, 3)``.
- **LR** (the generator's input) is ``float32`` in ``[0, 1]``.
- **HR** and **SR** (targets, generator output, discriminator and VGG input) are ``float32`` in ``[-1, 1]``,
  matching the generator's ``tanh`` output, as in Ledig et al. (2017).
- Metrics take images in ``[0, 1]`` ("unit" range).
"""

import tensorflow as tf


def uint8_to_unit(images):
    """uint8 [0, 255] -> float32 [0, 1] (the LR range)."""
    return tf.cast(images, tf.float32) / 255.0


def uint8_to_hr(images):
    """uint8 [0, 255] -> float32 [-1, 1] (the HR/SR range)."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def unit_to_hr(images):
    """[0, 1] -> [-1, 1]."""
    return tf.cast(images, tf.float32) * 2.0 - 1.0


def hr_to_unit(images):
    """[-1, 1] -> [0, 1], clipped so that an overshooting generator output stays a valid image."""
    return tf.clip_by_value((tf.cast(images, tf.float32) + 1.0) / 2.0, 0.0, 1.0)


def unit_to_uint8(images):
    """[0, 1] -> uint8, clipped and rounded (not truncated: truncation darkens by half a level on average)."""
    return tf.cast(tf.round(tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 1.0) * 255.0), tf.uint8)


def hr_to_uint8(images):
    """[-1, 1] -> uint8, clipped and rounded."""
    return unit_to_uint8(hr_to_unit(images))


def uint8_to_unit_exact(images):
    """uint8 -> float32 [0, 1], exactly ``level / 255`` (as :func:`uint8_to_unit` gives eagerly) also inside a
    ``tf.function``, where graph constant folding turns ``x / 255`` into ``x * (1 / 255)``, which is one float step
    off for about half of the levels. A 256-entry table lookup; for inference endpoints whose uint8 output must equal
    the float model's."""
    table = tf.constant([level / 255.0 for level in range(256)], tf.float32)
    return tf.gather(table, tf.cast(images, tf.int32))


def stretch(images):
    """Any image rescaled to fill [0, 1] (its own min -> 0, max -> 1), for display only: makes the faint structure of
    an untrained network's nearly flat output visible. A constant image becomes 0."""
    images = tf.convert_to_tensor(images, tf.float32)
    low, high = tf.reduce_min(images), tf.reduce_max(images)
    return tf.math.divide_no_nan(images - low, high - low)
