"""Tests for sr_lib.evaluation.metrics: agreement with scikit-image on the Y channel, the border protocol, and bad input."""

import math

import numpy as np
import pytest
import skimage
import tensorflow as tf
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sr_lib.evaluation import metrics

# These scikit-image settings reproduce tf.image.ssim: an 11-tap Gaussian window (sigma 1.5, truncate 3.5), population
# (not sample) covariances, and the mean over the window positions that fit inside the image.
SKIMAGE_SSIM = dict(data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


def _y_numpy(rgb):
    """BT.601 luma written out independently of sr_lib, in float64."""
    return (16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def _pair(shape, noise=0.05, seed=0):
    """A crop of a natural photograph and a noisy copy, both float64 in [0, 1]."""
    hr = skimage.data.astronaut()[100 : 100 + shape[0], 180 : 180 + shape[1]] / 255.0
    rng = np.random.default_rng(seed)
    sr = np.clip(hr + rng.normal(0.0, noise, hr.shape), 0.0, 1.0)
    return hr, sr


def _crop(array, border):
    return array[border : array.shape[0] - border, border : array.shape[1] - border]


@pytest.mark.parametrize("shape", [(64, 64), (40, 72)])
@pytest.mark.parametrize("border", [0, 4])
def test_y_metrics_match_scikit_image(shape, border):
    hr, sr = _pair(shape)
    hr_y, sr_y = _crop(_y_numpy(hr), border), _crop(_y_numpy(sr), border)

    expected_psnr = peak_signal_noise_ratio(hr_y, sr_y, data_range=1.0)
    expected_ssim = structural_similarity(hr_y, sr_y, **SKIMAGE_SSIM)
    assert float(metrics.psnr_y(hr, sr, crop_border=border)) == pytest.approx(expected_psnr, abs=0.01)
    # 1e-4 rather than 1e-3: skimage's default sample covariance is off by about 5e-4 here, and the test should tell.
    assert float(metrics.ssim_y(hr, sr, crop_border=border)) == pytest.approx(expected_ssim, abs=1e-4)
    sample_covariance = structural_similarity(hr_y, sr_y, **{**SKIMAGE_SSIM, "use_sample_covariance": True})
    assert abs(sample_covariance - expected_ssim) > 1e-4


def test_rgb_metrics_match_scikit_image():
    hr, sr = _pair((48, 48))
    expected_psnr = peak_signal_noise_ratio(_crop(hr, 4), _crop(sr, 4), data_range=1.0)
    expected_ssim = structural_similarity(_crop(hr, 4), _crop(sr, 4), channel_axis=-1, **SKIMAGE_SSIM)
    assert float(metrics.psnr_rgb(hr, sr, crop_border=4)) == pytest.approx(expected_psnr, abs=0.01)
    assert float(metrics.ssim_rgb(hr, sr, crop_border=4)) == pytest.approx(expected_ssim, abs=1e-4)


def test_rgb_to_y_matches_formula_and_scikit_image():
    rgb = np.random.default_rng(1).uniform(size=(5, 7, 3))
    y = metrics.rgb_to_y(rgb).numpy()
    assert y.shape == (5, 7, 1)
    np.testing.assert_allclose(y[..., 0], _y_numpy(rgb), atol=1e-6)
    np.testing.assert_allclose(y[..., 0], skimage.color.rgb2ycbcr(rgb)[..., 0] / 255.0, atol=1e-6)
    corners = metrics.rgb_to_y(np.array([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]])).numpy().ravel()
    np.testing.assert_allclose(corners, [16 / 255, 235 / 255], atol=1e-6)


def test_uint8_input_equals_unit_float_input():
    hr = skimage.data.astronaut()[:32, :32]
    sr = np.clip(hr.astype(np.int16) + 9, 0, 255).astype(np.uint8)
    from_uint8 = float(metrics.psnr_y(hr, sr))
    from_float = float(metrics.psnr_y(hr / 255.0, sr / 255.0))
    assert from_uint8 == pytest.approx(from_float, abs=1e-4)
    assert np.isfinite(from_uint8)


def test_identical_images_give_infinite_psnr_and_unit_ssim():
    hr, _ = _pair((32, 32))
    assert math.isinf(float(metrics.psnr_y(hr, hr)))
    assert math.isinf(float(metrics.psnr_rgb(hr, hr)))
    assert float(metrics.ssim_y(hr, hr)) == pytest.approx(1.0, abs=1e-6)


def test_batch_matches_single_images():
    pairs = [_pair((32, 40), noise=noise, seed=i) for i, noise in enumerate((0.02, 0.05, 0.1))]
    hr = np.stack([p[0] for p in pairs])
    sr = np.stack([p[1] for p in pairs])
    for metric in (metrics.psnr_y, metrics.ssim_y, metrics.psnr_rgb, metrics.ssim_rgb):
        batch = metric(hr, sr).numpy()
        assert batch.shape == (3,)
        single = [float(metric(hr[i], sr[i])) for i in range(3)]
        np.testing.assert_allclose(batch, single, atol=1e-5)
    # More noise must score lower, or the batch could be a constant.
    assert list(metrics.psnr_y(hr, sr).numpy()) == sorted(metrics.psnr_y(hr, sr).numpy(), reverse=True)


def test_border_crop_ignores_a_noisy_border():
    hr, sr = _pair((48, 48), noise=0.01)
    rng = np.random.default_rng(2)
    ruined = rng.uniform(size=hr.shape)
    border = np.ones(hr.shape[:2], bool)
    border[4:-4, 4:-4] = False
    sr[border] = ruined[border]
    assert float(metrics.psnr_y(hr, sr, crop_border=4)) > float(metrics.psnr_y(hr, sr, crop_border=0)) + 5.0
    assert float(metrics.ssim_y(hr, sr, crop_border=4)) > float(metrics.ssim_y(hr, sr, crop_border=0)) + 0.05
    assert metrics.crop_border(sr, 4).shape == (40, 40, 3)
    assert metrics.crop_border(sr[None], 0).shape == (1, 48, 48, 3)


def test_works_inside_tf_function_with_unknown_sizes():
    spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    psnr = tf.function(lambda hr, sr: metrics.psnr_y(hr, sr, crop_border=4), input_signature=[spec, spec])
    hr, sr = _pair((24, 24))
    hr, sr = tf.constant(hr[None], tf.float32), tf.constant(sr[None], tf.float32)
    assert float(psnr(hr, sr)[0]) == pytest.approx(float(metrics.psnr_y(hr, sr)[0]), abs=1e-4)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: metrics.psnr_y(np.zeros((16, 16, 3)), np.zeros((16, 17, 3))), "shapes differ"),
        (lambda: metrics.psnr_rgb(np.zeros((2, 16, 16, 3)), np.zeros((16, 16, 3))), "shapes differ"),
        (lambda: metrics.psnr_y(np.zeros((16, 16, 3)), np.zeros((16, 16, 3)), crop_border=8), "crop_border=8"),
        (lambda: metrics.psnr_y(np.zeros((16, 16, 3)), np.zeros((16, 16, 3)), crop_border=-1), "non-negative"),
        (lambda: metrics.ssim_y(np.zeros((16, 16, 3)), np.zeros((16, 16, 3)), crop_border=4), "at least 11x11"),
        (lambda: metrics.ssim_rgb(np.zeros((10, 30, 3)), np.zeros((10, 30, 3)), crop_border=0), "at least 11x11"),
        (lambda: metrics.rgb_to_y(np.zeros((8, 8, 4))), "3 RGB channels"),
        (lambda: metrics.psnr_y(np.zeros((16, 16, 3), np.int32), np.zeros((16, 16, 3), np.int32)), "int32"),
        (lambda: metrics.psnr_y(np.zeros((16, 3)), np.zeros((16, 3))), "HWC or NHWC"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_evaluate_pairs_of_different_sizes():
    pairs = [_pair((32, 32), seed=0), _pair((24, 40), seed=1)]
    result = metrics.evaluate_pairs([p[0] for p in pairs], [p[1] for p in pairs], crop_border=4)
    assert result["num_images"] == 2
    for name, metric in (("psnr_y", metrics.psnr_y), ("ssim_rgb", metrics.ssim_rgb)):
        expected = [float(metric(hr, sr, crop_border=4)) for hr, sr in pairs]
        np.testing.assert_allclose(result["per_image"][name], expected, atol=1e-5)
        assert result[name] == pytest.approx(np.mean(expected), abs=1e-5)
    assert set(result) == {"psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "per_image", "num_images"}


def test_evaluate_pairs_reports_inf_for_an_identical_pair():
    hr, sr = _pair((24, 24))
    result = metrics.evaluate_pairs([hr, hr], [sr, hr], crop_border=2)
    assert math.isinf(result["psnr_y"]) and math.isinf(result["psnr_rgb"])
    assert np.isfinite(result["per_image"]["psnr_y"][0])
    assert 0.0 < result["ssim_y"] < 1.0


def test_evaluate_pairs_bad_input():
    hr, sr = _pair((24, 24))
    with pytest.raises(ValueError, match="2 hr images but 1 sr"):
        metrics.evaluate_pairs([hr, hr], [sr])
    with pytest.raises(ValueError, match="at least one"):
        metrics.evaluate_pairs([], [])
    with pytest.raises(ValueError, match="image pair 1"):
        metrics.evaluate_pairs([hr, hr], [sr, sr[:20]])


def test_color_shift_measures_a_known_cast():
    hr = np.random.default_rng(0).integers(40, 200, size=(2, 24, 24, 3)).astype(np.uint8)
    cast = hr.astype(np.int16) + np.array([6, 0, -3], np.int16)  # +6 red, -3 blue grey levels.
    sr = cast.astype(np.uint8)
    offsets = metrics.channel_offsets(hr, sr, crop_border=4).numpy()
    np.testing.assert_allclose(offsets, [[6, 0, -3], [6, 0, -3]], atol=1e-3)
    np.testing.assert_allclose(metrics.color_shift(hr, sr, crop_border=4).numpy(), [6, 6], atol=1e-3)
    assert float(metrics.color_shift(hr[0], hr[0])) == 0.0


def test_evaluate_reports_the_worst_images_color_shift():
    from sr_lib.evaluation import evaluate as evaluate_lib

    evaluation = evaluate_lib.Evaluation("m", "d", per_image=[
        {"psnr_y": 30.0, "ssim_y": 0.9, "psnr_rgb": 28.0, "ssim_rgb": 0.8, "color_shift": 0.5},
        {"psnr_y": 20.0, "ssim_y": 0.7, "psnr_rgb": 18.0, "ssim_rgb": 0.6, "color_shift": 4.0}])
    assert evaluation.means["color_shift"] == 4.0 and evaluation.means["psnr_y"] == 25.0


def test_gains_over_a_baseline_per_image():
    from sr_lib.evaluation import evaluate as evaluate_lib

    model = evaluate_lib.Evaluation("m", "Set5", per_image=[{"name": "baby", "psnr_y": 33.0},
                                                           {"name": "bird", "psnr_y": 30.5}])
    bicubic = evaluate_lib.Evaluation("bicubic", "Set5", per_image=[{"name": "bird", "psnr_y": 29.0},
                                                                    {"name": "baby", "psnr_y": 31.5}])
    assert model.gains_over(bicubic) == {"baby": 1.5, "bird": 1.5}
    other = evaluate_lib.Evaluation("bicubic", "Set14", per_image=[{"name": "zebra", "psnr_y": 26.0}])
    with pytest.raises(ValueError, match="different images"):
        model.gains_over(other)


def test_checkerboard_sees_a_periodic_pattern_and_not_a_smooth_image():
    ramp = np.linspace(0, 1, 64, dtype=np.float32)
    smooth = np.stack([np.add.outer(ramp, ramp) / 2] * 3, axis=-1)
    patterned = smooth.copy()
    patterned[::4, ::4] += 8 / 255  # One phase of every 4x4 block brighter by 8 grey levels.
    assert float(metrics.checkerboard(smooth)) < 0.5
    batch = metrics.checkerboard(np.stack([smooth, patterned]))
    assert batch.shape == (2,) and float(batch[1]) > 1.5 > float(batch[0])
    # The pattern of period 4 also has period 2 phases that differ.
    assert float(metrics.checkerboard(patterned, period=2)) > 0.5 > float(metrics.checkerboard(smooth, period=2))
    with pytest.raises(ValueError, match="period"):
        metrics.checkerboard(smooth, period=1)
