"""NIQE (sr_lib.evaluation.niqe) against the MATLAB release's scores, and its parts on known inputs."""

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage, stats
from skimage import data as skdata

from sr_lib.evaluation import niqe as niqe_lib

SHARED = Path(__file__).resolve().parents[2] / "shared"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data folder {SHARED} is absent")


def _rgb(path):
    return np.asarray(Image.open(path).convert("RGB"))


@needs_shared
def test_baboon_matches_matlab():
    # MATLAB R2021a, release algorithm on rgb2ycbcr's Y: 5.7296.
    score = niqe_lib.niqe(_rgb(SHARED / "sr-benchmarks/Set14/HR/baboon.png"), border=0, gray="ycbcr")
    assert score == pytest.approx(5.7296, abs=0.005)


@needs_shared
def test_release_image1_matches_matlab():
    # The release's example.m on image1.bmp (rgb2gray input): 5.0290.
    score = niqe_lib.niqe(_rgb(SHARED / "niqe/live_release_image1.png"), gray="matlab_gray")
    assert score == pytest.approx(5.0290, abs=0.005)


def test_parameters_are_the_release_model():
    digest = hashlib.sha256(niqe_lib.PARAMS_PATH.read_bytes()).hexdigest()
    assert digest == "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296"
    mu, cov = niqe_lib.pristine_model()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    # The separable window is fspecial('gaussian', 7, 7/6) normalised, as stored beside the model.
    with np.load(niqe_lib.PARAMS_PATH) as params:
        window = params["gaussian_window"]
    taps = niqe_lib._gaussian_taps()
    np.testing.assert_allclose(np.outer(taps, taps), window, rtol=0, atol=1e-16)


def test_blur_and_noise_score_worse_than_the_photograph():
    photo = skdata.astronaut()
    blurred = np.stack([ndimage.gaussian_filter(photo[..., c].astype(np.float64), 2) for c in range(3)], axis=-1)
    noisy = np.clip(photo + np.random.default_rng(0).normal(0, 25, photo.shape), 0, 255)
    clean = niqe_lib.niqe(photo)
    assert clean < niqe_lib.niqe(blurred) - 2  # measured 3.07 vs 7.25
    assert clean < niqe_lib.niqe(noisy) - 2  # vs 9.93


def _aggd_samples(alpha, left, right, n, seed):
    """AGGD draws: |GGD(alpha)| magnitudes, negative with probability left / (left + right), scaled per side."""
    rng = np.random.default_rng(seed)
    magnitude = np.abs(stats.gennorm.rvs(alpha, size=n, random_state=rng))
    negative = rng.random(n) < left / (left + right)
    return np.where(negative, -left * magnitude, right * magnitude)


# With 400k samples the estimates' spread (measured over 20 seeds) is below 0.5% for alpha and 1.5% for the scales;
# the tolerances are about 4 of those standard deviations (the grid step, 0.001, is far smaller).
@pytest.mark.parametrize("alpha, left, right", [(0.8, 0.3, 0.5), (2.0, 1.0, 1.0), (1.5, 0.2, 0.1)])
def test_fit_aggd_recovers_parameters(alpha, left, right):
    fitted = niqe_lib.fit_aggd(_aggd_samples(alpha, left, right, 400_000, seed=7))
    np.testing.assert_allclose(fitted, (alpha, left, right), rtol=0.03)


@pytest.mark.parametrize("alpha", [0.6, 2.6])
def test_fit_ggd_recovers_shape_and_scale(alpha):
    samples = stats.gennorm.rvs(alpha, scale=0.7, size=400_000, random_state=np.random.default_rng(3))
    fitted_alpha, fitted_scale = niqe_lib.fit_ggd(samples)
    assert fitted_alpha == pytest.approx(alpha, rel=0.03)
    assert fitted_scale == pytest.approx(0.7, rel=0.06)


def test_aggd_fit_of_one_signed_samples_is_undefined_as_in_matlab():
    alpha, left, right = niqe_lib.fit_aggd(np.array([0.0, 1.0, 2.0, 0.5]))
    assert alpha == 0.2 and np.isnan(left) and right > 0  # MATLAB's min over nan picks the first grid point


def test_gamma_table_is_increasing():
    _, ratios = niqe_lib._gamma_table()
    assert np.all(np.diff(ratios) > 0)  # what the nearest-grid-point search relies on


def test_imresize_reproduces_ramps_and_constants():
    ramp = np.add.outer(np.arange(192) * 0.75, np.arange(240) * -0.3)
    half = niqe_lib.imresize(ramp, 0.5)
    assert half.shape == (96, 120)
    # Output i samples the input at 0-based 2 i + 0.5; the symmetric kernel reproduces a ramp away from the border.
    centres_r, centres_c = 2 * np.arange(96) + 0.5, 2 * np.arange(120) + 0.5
    expected = np.add.outer(centres_r * 0.75, centres_c * -0.3)
    np.testing.assert_allclose(half[4:-4, 4:-4], expected[4:-4, 4:-4], atol=1e-11)
    # 100.7 is one of the constants whose weighted sum is not exact in floating point.
    assert np.all(niqe_lib.imresize(np.full((96, 144), 100.7), 0.5) == 100.7)


def _flat_regions_with_texture():
    """Large constant regions (non-integer levels too) and a textured square inside every 96x96 block."""
    image = np.empty((288, 384))
    image[:, :128], image[:, 128:256], image[:, 256:] = 37.3, 200.0, 113.0
    image[100:190] = 100.7
    texture = ndimage.gaussian_filter(np.random.default_rng(0).normal(0, 40, image.shape), 1.0)
    for top in range(0, 288, 96):
        for left in range(0, 384, 96):
            patch = np.s_[top + 30: top + 66, left + 30: left + 66]
            image[patch] = np.clip(128 + texture[patch], 0, 255).round()
    return image


def test_constant_neighbourhoods_give_exact_zeros_and_a_stable_score():
    image = _flat_regions_with_texture()
    for scale in (image, niqe_lib.imresize(image, 0.5)):
        flat = ndimage.maximum_filter(scale, 7, mode="nearest") == ndimage.minimum_filter(scale, 7, mode="nearest")
        assert flat.mean() > 0.4 and np.all(niqe_lib.mscn(scale)[flat] == 0)  # zeros, not rounding residue
    # A 1e-9 offset keeps every constant region constant, so it may only move the textured squares' features, by
    # ~1e-11. Residue in the flat areas would instead change sign with the offset and flip which coefficients count
    # as negative or positive in the AGGD fit: without the exact-zero rule this score moves from 26.50 to 24.17.
    score = niqe_lib.niqe(image)
    assert np.isfinite(score)
    assert abs(niqe_lib.niqe(image + 1e-9) - score) < 1e-8


def test_small_image_is_skipped_with_its_name():
    with pytest.warns(niqe_lib.NIQESkip, match=r"tiny\.png.*1 96x96 block"):
        assert np.isnan(niqe_lib.niqe(np.zeros((100, 150, 3), np.uint8), border=2, name="tiny.png"))
    with pytest.warns(niqe_lib.NIQESkip, match=r"flat\.png.*0 of 4 blocks"):
        assert np.isnan(niqe_lib.niqe(np.full((192, 192, 3), 128, np.uint8), name="flat.png"))


def test_border_and_gray_conversions():
    photo = skdata.astronaut()[:300, :400]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert niqe_lib.niqe(photo, border=4) == niqe_lib.niqe(photo[4:-4, 4:-4])
    y = niqe_lib.to_gray(photo, "ycbcr")
    rgb = photo / 255.0
    exact = 16 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]
    assert np.all(y == np.floor(exact + 0.5)) and y.dtype == np.float64
    gray = niqe_lib.to_gray(photo, "matlab_gray")
    assert np.abs(gray - photo @ np.array(niqe_lib.MATLAB_GRAY_WEIGHTS)).max() <= 0.5
    # Grey input is used as is, uint8 or float.
    assert niqe_lib.niqe(gray.astype(np.uint8)) == niqe_lib.niqe(gray)
    with pytest.raises(ValueError, match="gray must be"):
        niqe_lib.niqe(photo, gray="luma")
