"""PSNR and SSIM with the super-resolution evaluation protocol: BT.601 luma (Y) channel and a cropped border.

Ledig et al. (2017) report PSNR/SSIM "on the y-channel of center-cropped, removal of a 4-pixel wide strip from each
border" for x4 upscaling, following MATLAB's ``rgb2ycbcr``. The functions here put that protocol in the signature
(``psnr_y(hr, sr, crop_border=4)``) on top of ``tf.image.psnr`` / ``tf.image.ssim`` with ``max_val=1.0``.

Conventions:
- Inputs are HWC or NHWC RGB images in ``[0, 1]`` (float), as tensors or numpy arrays. ``uint8`` inputs are accepted
  and converted with :func:`sr_lib.core.ranges.uint8_to_unit`, so an image read from disk can be passed as is. Other integer
  dtypes are rejected. Values are not clipped: convert generator output with ``sr_lib.core.ranges.hr_to_unit`` first.
- Results are per image: shape ``[]`` for an HWC input, ``[N]`` for an NHWC batch.
- PSNR of identical images is ``inf`` (the MSE is zero); it is returned as such rather than capped, so that a
  perfect reconstruction is never mistaken for a merely good one.
- Y is not rounded to integer levels (MATLAB rounds when given ``uint8`` images; BasicSR, on float images, does not);
  the difference is below 0.01 dB on natural images.
- SSIM uses an 11x11 Gaussian window (sigma 1.5, K1=0.01, K2=0.03) without padding, so every image must still be at
  least 11x11 after the border crop.

The functions work eagerly and inside ``tf.function``; size checks are done where the static shape is known.
"""

import numpy as np
import tensorflow as tf

from sr_lib.core import ranges

# ITU-R BT.601 luma as in MATLAB's rgb2ycbcr, for R, G, B in [0, 1]: Y = 16 + 65.481 R + 128.553 G + 24.966 B on the
# 0-255 scale (so Y is in [16, 235]); divided by 255 here so that every metric uses max_val=1.
Y_OFFSET = 16.0 / 255.0
Y_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)

# tf.image.ssim's Gaussian window (filter_size=11) is applied without padding.
SSIM_WINDOW = 11

METRIC_NAMES = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")


def _to_unit(images, name="images"):
    """Returns `images` as a float32 tensor of rank 3 or 4; uint8 is scaled to [0, 1], floats are kept."""
    images = tf.convert_to_tensor(images)
    if images.dtype == tf.uint8:
        images = ranges.uint8_to_unit(images)
    elif images.dtype.is_floating:
        images = tf.cast(images, tf.float32)
    else:
        raise ValueError(f"{name} must be float in [0, 1] or uint8, got dtype {images.dtype.name}")
    if images.shape.rank not in (3, 4):
        raise ValueError(f"{name} must be HWC or NHWC, got shape {images.shape}")
    return images


def _check_border(images, border, name="images"):
    """Raises ValueError unless `border` is a non-negative int that leaves at least one pixel of `images`."""
    if isinstance(border, bool) or not isinstance(border, (int, np.integer)) or border < 0:
        raise ValueError(f"crop_border must be a non-negative integer, got {border!r}")
    height, width = images.shape[-3], images.shape[-2]
    for size, axis in ((height, "height"), (width, "width")):
        if size is not None and 2 * border >= size:
            raise ValueError(
                f"crop_border={border} removes all of the {axis} ({size}) of {name} (shape {images.shape})"
            )


def rgb_to_y(images_unit):
    """Converts RGB to the ITU-R BT.601 luma channel, as MATLAB's ``rgb2ycbcr(...)(:, :, 1) / 255``.

    Args:
        images_unit: RGB images, HWC or NHWC, float in [0, 1] (or uint8, converted with ``uint8_to_unit``).

    Returns:
        float32 tensor of shape ``[..., H, W, 1]`` with values in [16/255, 235/255].
    """
    images = _to_unit(images_unit)
    if images.shape[-1] != 3:
        raise ValueError(f"rgb_to_y needs 3 RGB channels, got shape {images.shape}")
    weights = tf.constant(Y_WEIGHTS, tf.float32)
    return tf.reduce_sum(images * weights, axis=-1, keepdims=True) + Y_OFFSET


def crop_border(images, border):
    """Removes `border` pixels from each side of HWC or NHWC images.

    Args:
        images: HWC or NHWC tensor or array (any dtype; returned as a tensor of the same dtype).
        border: Non-negative int; 0 returns the images unchanged.

    Returns:
        Tensor of shape ``[..., H - 2 * border, W - 2 * border, C]``.
    """
    images = tf.convert_to_tensor(images)
    if images.shape.rank not in (3, 4):
        raise ValueError(f"images must be HWC or NHWC, got shape {images.shape}")
    _check_border(images, border)
    if border == 0:
        return images
    # Negative stop indices crop without needing the (possibly unknown inside tf.function) height and width.
    return images[..., border:-border, border:-border, :]


def _prepare(hr_unit, sr_unit, border, to_y):
    """Validates a pair, optionally converts it to Y, and crops the border of both."""
    hr = _to_unit(hr_unit, "hr")
    sr = _to_unit(sr_unit, "sr")
    if not hr.shape.is_compatible_with(sr.shape):
        raise ValueError(f"hr and sr shapes differ: {hr.shape} vs {sr.shape}")
    _check_border(hr, border, "hr")
    if to_y:
        hr, sr = rgb_to_y(hr), rgb_to_y(sr)
    return crop_border(hr, border), crop_border(sr, border)


def _check_ssim_size(images, border):
    """tf.image.ssim needs an 11x11 window; its own error is cryptic, so fail early and say why."""
    height, width = images.shape[-3], images.shape[-2]
    if (height is not None and height < SSIM_WINDOW) or (width is not None and width < SSIM_WINDOW):
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} after cropping crop_border={border} pixels "
            f"per side, got {height}x{width}"
        )


def psnr_y(hr_unit, sr_unit, crop_border=4):
    """PSNR (dB) on the BT.601 Y channel after removing `crop_border` pixels per side (the paper's x4 protocol).

    Args:
        hr_unit: Reference RGB images, HWC or NHWC, in [0, 1] (or uint8).
        sr_unit: Reconstructed RGB images, same shape as `hr_unit`.
        crop_border: Pixels removed from each side before comparing; usually the scale factor.

    Returns:
        float32 tensor, shape ``[]`` or ``[N]``; ``inf`` where the images are identical.
    """
    hr, sr = _prepare(hr_unit, sr_unit, crop_border, to_y=True)
    return tf.image.psnr(hr, sr, max_val=1.0)


def ssim_y(hr_unit, sr_unit, crop_border=4):
    """SSIM on the BT.601 Y channel after removing `crop_border` pixels per side.

    Args:
        hr_unit: Reference RGB images, HWC or NHWC, in [0, 1] (or uint8).
        sr_unit: Reconstructed RGB images, same shape as `hr_unit`.
        crop_border: Pixels removed from each side; the rest must be at least 11x11.

    Returns:
        float32 tensor, shape ``[]`` or ``[N]``; 1.0 where the images are identical.
    """
    hr, sr = _prepare(hr_unit, sr_unit, crop_border, to_y=True)
    _check_ssim_size(hr, crop_border)
    return tf.image.ssim(hr, sr, max_val=1.0)


def psnr_rgb(hr_unit, sr_unit, crop_border=0):
    """PSNR (dB) over all RGB channels after removing `crop_border` pixels per side.

    Args:
        hr_unit: Reference images, HWC or NHWC, in [0, 1] (or uint8).
        sr_unit: Reconstructed images, same shape as `hr_unit`.
        crop_border: Pixels removed from each side before comparing.

    Returns:
        float32 tensor, shape ``[]`` or ``[N]``; ``inf`` where the images are identical.
    """
    hr, sr = _prepare(hr_unit, sr_unit, crop_border, to_y=False)
    return tf.image.psnr(hr, sr, max_val=1.0)


def ssim_rgb(hr_unit, sr_unit, crop_border=0):
    """SSIM averaged over the RGB channels after removing `crop_border` pixels per side.

    Args:
        hr_unit: Reference images, HWC or NHWC, in [0, 1] (or uint8).
        sr_unit: Reconstructed images, same shape as `hr_unit`.
        crop_border: Pixels removed from each side; the rest must be at least 11x11.

    Returns:
        float32 tensor, shape ``[]`` or ``[N]``.
    """
    hr, sr = _prepare(hr_unit, sr_unit, crop_border, to_y=False)
    _check_ssim_size(hr, crop_border)
    return tf.image.ssim(hr, sr, max_val=1.0)


def channel_offsets(hr_unit, sr_unit, crop_border=0):
    """Per-channel mean of ``sr - hr`` in grey levels (0-255 scale), after removing ``crop_border`` pixels per side.

    A colour cast shows here even where PSNR-Y hides it (Y mixes the channels). Returns shape ``[3]`` for HWC and
    ``[N, 3]`` for NHWC, in R, G, B order.
    """
    hr, sr = _prepare(hr_unit, sr_unit, crop_border, to_y=False)
    return tf.reduce_mean(sr - hr, axis=(-3, -2)) * 255.0


def color_shift(hr_unit, sr_unit, crop_border=0):
    """The largest absolute per-channel mean offset (grey levels) of ``channel_offsets``: 0 for no cast.

    Returns shape ``[]`` for HWC and ``[N]`` for NHWC.
    """
    return tf.reduce_max(tf.abs(channel_offsets(hr_unit, sr_unit, crop_border)), axis=-1)


def checkerboard(images_unit, period=4):
    """Strength of a pattern repeating every ``period`` pixels (grey levels, 0-255 scale): the standard deviation,
    over the ``period x period`` pixel phases, of each phase's mean detail (the image minus its ``period x period``
    moving average, which removes smooth gradients and keeps any pattern of that period), averaged over channels.

    A randomly initialised sub-pixel (depth_to_space) layer gives every output phase its own bias and gain, which shows
    as a checkerboard of period ``scale`` (or of its stages, 2 at x4); a natural image, or any output that treats the
    phases alike (ICNR, resize-convolution), scores near 0. Noise adds about ``noise std / sqrt(pixels / period**2)``.
    Returns shape ``[]`` for HWC and ``[N]`` for NHWC.
    """
    images = _to_unit(images_unit)
    if isinstance(period, bool) or not isinstance(period, (int, np.integer)) or period < 2:
        raise ValueError(f"period must be an integer >= 2, got {period!r}")
    batch = images if images.shape.rank == 4 else images[None]
    moving_average = tf.nn.avg_pool2d(batch, ksize=period, strides=1, padding="VALID")
    detail = batch[:, :tf.shape(moving_average)[1], :tf.shape(moving_average)[2]] - moving_average
    height, width = (tf.shape(detail)[1] // period) * period, (tf.shape(detail)[2] // period) * period
    detail = detail[:, :height, :width]
    # (N, H/p, p, W/p, p, C): axes 2 and 4 are the phase within each period.
    tiles = tf.reshape(detail, [tf.shape(detail)[0], height // period, period, width // period, period, -1])
    phase_means = tf.reduce_mean(tiles, axis=(1, 3))  # (N, p, p, C)
    spread = tf.math.reduce_std(phase_means, axis=(1, 2))  # (N, C)
    result = tf.reduce_mean(spread, axis=-1) * 255.0
    return result if images.shape.rank == 4 else result[0]


_METRICS = {"psnr_y": psnr_y, "ssim_y": ssim_y, "psnr_rgb": psnr_rgb, "ssim_rgb": ssim_rgb}


def evaluate_pairs(hr_unit_list, sr_unit_list, crop_border=4):
    """Evaluates pairs of images that may differ in size from pair to pair (e.g. a Set5-style test set).

    The same `crop_border` is used for the Y and the RGB metrics, so that all four numbers describe the same pixels.

    Args:
        hr_unit_list: Sequence of reference RGB images, each HWC (or NHWC), in [0, 1] (or uint8).
        sr_unit_list: Sequence of reconstructed images, same length, each the shape of its reference.
        crop_border: Pixels removed from each side of every image.

    Returns:
        dict with the mean of each metric as a float under ``"psnr_y"``, ``"ssim_y"``, ``"psnr_rgb"``,
        ``"ssim_rgb"``; ``"per_image"``: a dict of the same keys to lists of floats; and ``"num_images"``.
        If any pair is identical its PSNR is ``inf`` and so is the PSNR mean (reported, not hidden): use the
        per-image lists to look at the others.
    """
    hr_list, sr_list = list(hr_unit_list), list(sr_unit_list)
    if len(hr_list) != len(sr_list):
        raise ValueError(f"got {len(hr_list)} hr images but {len(sr_list)} sr images")
    if not hr_list:
        raise ValueError("evaluate_pairs needs at least one image pair, got none")
    per_image = {name: [] for name in METRIC_NAMES}
    for index, (hr, sr) in enumerate(zip(hr_list, sr_list)):
        try:
            values = {name: metric(hr, sr, crop_border) for name, metric in _METRICS.items()}
        except ValueError as error:
            raise ValueError(f"image pair {index}: {error}") from None
        for name, value in values.items():
            # ravel: an NHWC item contributes one value per image.
            per_image[name].extend(float(v) for v in np.ravel(value.numpy()))
    # np.mean of a list holding inf is inf, without a warning; values are never -inf or nan, so nothing can crash.
    result = {name: float(np.mean(values)) for name, values in per_image.items()}
    result["per_image"] = per_image
    result["num_images"] = len(per_image["psnr_y"])
    return result
