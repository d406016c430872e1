"""NIQE, the Natural Image Quality Evaluator (lower is better).

A. Mittal, R. Soundararajan, A. C. Bovik, "Making a 'Completely Blind' Image Quality Analyzer", IEEE Signal
Processing Letters 20(3), 2013. Written from the paper and the steps of the LIVE MATLAB release (computequality.m,
computefeature.m, estimateaggdparam.m), with its pristine model (niqe_pris_params.npz, see NIQE_NOTICE.txt):

- grey image (float64), cropped to whole 96x96 blocks from the top left;
- at two scales (the cropped image, then MATLAB ``imresize(im, 0.5)``): MSCN coefficients of the whole image, split
  into blocks of 96 and 48; per block 18 features: the AGGD fit of the MSCN [alpha, (beta_l + beta_r) / 2] and, for
  the four neighbour products (circular shifts), [alpha, mean, beta_l, beta_r];
- a Gaussian fitted to the 36-d block features (column-wise ``nanmean``, ``nancov`` over complete rows, as the
  release), compared with the pristine one: sqrt(d' pinv((cov_p + cov) / 2) d).

Exact-zero rule: where a 7x7 neighbourhood is exactly constant the MSCN coefficient is exactly 0. Filtering can
leave rounding residue there, whose arbitrary signs would decide which coefficients the AGGD fit counts as negative
or positive (baboon has such a patch: with the rule it scores 5.7295739, MATLAB R2021a 5.7295734, without 5.72971).
The half-size resize likewise returns a constant support's value exactly.
"""

import functools
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage, special

BLOCK = 96
SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # computefeature.m's circshift offsets (rows, columns)
PARAMS_PATH = Path(__file__).with_name("niqe_pris_params.npz")
# MATLAB's rgb2gray (the first row of inv of the NTSC YIQ matrix) and rgb2ycbcr's Y row (BT.601, 0-255 scale).
MATLAB_GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)
YCBCR_Y_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)


class NIQESkip(UserWarning):
    """An image NIQE cannot score (too small, or too few blocks with defined features); its score is nan."""


@functools.cache
def pristine_model():
    """(mu, cov) of the release's pristine model: shapes (36,) and (36, 36)."""
    with np.load(PARAMS_PATH) as params:
        mu, cov = params["mu_pris_param"].ravel(), params["cov_pris_param"]
    mu.setflags(write=False)  # shared by every call through the cache
    cov.setflags(write=False)
    return mu, cov


@functools.cache
def _gamma_table():
    """estimateaggdparam.m's shape grid 0.2:0.001:10 and r(g) = G(2/g)^2 / (G(1/g) G(3/g)), increasing in g."""
    shapes = np.linspace(0.2, 10.0, 9801)
    ratios = special.gamma(2 / shapes) ** 2 / (special.gamma(1 / shapes) * special.gamma(3 / shapes))
    return shapes, ratios


def _shape_from_ratio(target):
    """The grid shape minimising (r(g) - target)^2, as MATLAB's min (first index on ties; grid[0] for nan)."""
    shapes, ratios = _gamma_table()
    target = np.asarray(target, dtype=np.float64)
    # r is increasing, so the minimiser is one of the two grid points around the target.
    upper = np.clip(np.searchsorted(ratios, target), 1, len(ratios) - 1)
    take_lower = (ratios[upper - 1] - target) ** 2 <= (ratios[upper] - target) ** 2
    index = np.where(take_lower, upper - 1, upper)
    # MATLAB's min over an all-nan vector returns index 1, hence alpha = 0.2 for an undefined fit.
    return shapes[np.where(np.isnan(target), 0, index)]


def _aggd_rows(samples):
    """Moment-matching AGGD fit along the last axis: (alpha, beta_left, beta_right), each of the leading shape."""
    squares = samples * samples
    negative, positive = samples < 0, samples > 0  # zeros count in neither half, as in the release
    with np.errstate(invalid="ignore", divide="ignore"):  # an empty half gives nan, as MATLAB's mean([])
        left_std = np.sqrt(np.where(negative, squares, 0).sum(-1) / negative.sum(-1))
        right_std = np.sqrt(np.where(positive, squares, 0).sum(-1) / positive.sum(-1))
        ratio = left_std / right_std
        rhat = np.abs(samples).mean(-1) ** 2 / squares.mean(-1)
        rhat_norm = rhat * (ratio**3 + 1) * (ratio + 1) / (ratio**2 + 1) ** 2
    alpha = _shape_from_ratio(rhat_norm)
    std_to_scale = np.sqrt(special.gamma(1 / alpha) / special.gamma(3 / alpha))
    return alpha, left_std * std_to_scale, right_std * std_to_scale


def fit_aggd(x):
    """AGGD fit of samples `x` as estimateaggdparam.m: (alpha, left_scale, right_scale).

    The density is proportional to exp(-(-x / left_scale)^alpha) for x < 0 and exp(-(x / right_scale)^alpha) for
    x > 0; alpha is on the grid 0.2:0.001:10. With no negative or no positive sample the scales are nan (alpha 0.2).
    """
    alpha, left, right = _aggd_rows(np.asarray(x, dtype=np.float64).reshape(1, -1))
    return float(alpha[0]), float(left[0]), float(right[0])


def fit_ggd(x):
    """Symmetric GGD fit by moment matching (the paper's eq. 2-3): (alpha, scale), density ~ exp(-(|x|/scale)^alpha).

    It is fit_aggd with both halves pooled: r(alpha) = E|x|^2 / E[x^2], scale = std * sqrt(G(1/alpha) / G(3/alpha)).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    mean_square = np.mean(x * x)
    alpha = float(_shape_from_ratio(np.mean(np.abs(x)) ** 2 / mean_square))
    return alpha, float(np.sqrt(mean_square * special.gamma(1 / alpha) / special.gamma(3 / alpha)))


@functools.cache
def _gaussian_taps():
    """1-D factor of fspecial('gaussian', 7, 7/6) / sum: the 2-D window is its outer product."""
    taps = np.exp(-(np.arange(-3, 4) ** 2) / (2 * (7 / 6) ** 2))
    return taps / taps.sum()


def _local_mean(image):
    """imfilter(image, window, 'replicate'), separably."""
    taps = _gaussian_taps()
    return ndimage.correlate1d(ndimage.correlate1d(image, taps, 0, mode="nearest"), taps, 1, mode="nearest")


def mscn(gray):
    """Mean-subtracted contrast-normalised coefficients (img - mu) / (sigma + 1) of a 2-D float image."""
    gray = np.asarray(gray, dtype=np.float64)
    mu = _local_mean(gray)
    sigma = np.sqrt(np.abs(_local_mean(gray * gray) - mu * mu))
    # Exact zeros where the 7x7 neighbourhood (same replicate border) is constant, instead of rounding residue.
    flat = ndimage.maximum_filter(gray, 7, mode="nearest") == ndimage.minimum_filter(gray, 7, mode="nearest")
    return np.where(flat, 0.0, gray - mu) / (np.where(flat, 0.0, sigma) + 1)


def _cubic(x):
    """MATLAB imresize's bicubic kernel (Keys, a = -0.5)."""
    x = np.abs(x)
    return ((1.5 * x**3 - 2.5 * x**2 + 1) * (x <= 1)
            + (-0.5 * x**3 + 2.5 * x**2 - 4 * x + 2) * ((x > 1) & (x <= 2)))


def _resize_axis(n_in, scale):
    """imresize's contributions() for one axis: (n_out, taps) weights and 0-based source indices."""
    n_out = int(np.ceil(n_in * scale))
    stretch = min(scale, 1.0)  # antialiasing widens the kernel by 1/scale when shrinking
    width = 4.0 / stretch
    u = np.arange(1, n_out + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinate of each output
    taps = np.floor(u - width / 2)[:, None] + np.arange(int(np.ceil(width)) + 2)
    weights = stretch * _cubic(stretch * (u[:, None] - taps))
    weights /= weights.sum(1, keepdims=True)
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in)[::-1]])  # symmetric padding, 0-based
    sources = mirror[np.mod(taps.astype(np.int64) - 1, 2 * n_in)]
    # Zero-weight taps point at a contributing pixel instead, so that the support's max/min ignore them.
    first = sources[np.arange(n_out), np.argmax(weights != 0, 1)]
    return weights, np.where(weights != 0, sources, first[:, None])


def imresize(image, scale):
    """MATLAB imresize(image, scale) of a 2-D float image: bicubic, antialiased, symmetric borders, no rounding."""
    image = np.asarray(image, dtype=np.float64)
    row_weights, row_sources = _resize_axis(image.shape[0], scale)
    col_weights, col_sources = _resize_axis(image.shape[1], scale)
    # Rows then columns, each a weighted sum over its taps (cheaper than dense weight matrices).
    resized = np.einsum("ot,otw->ow", row_weights, image[row_sources])
    resized = np.einsum("ot,otr->ro", col_weights, resized.T[col_sources])
    # Where every contributing pixel has the same value, return it exactly (the weights' sum is 1 only to rounding).
    hi = image[row_sources].max(1).T[col_sources].max(1).T
    lo = image[row_sources].min(1).T[col_sources].min(1).T
    return np.where(hi == lo, hi, resized)


def _block_features(coefficients, block):
    """computefeature.m on every block x block tile of an MSCN map: (n_blocks, 18)."""
    h, w = coefficients.shape
    tiles = coefficients.reshape(h // block, block, w // block, block).swapaxes(1, 2).reshape(-1, block, block)
    alpha, left, right = _aggd_rows(tiles.reshape(len(tiles), -1))
    features = [alpha, (left + right) / 2]
    for shift in SHIFTS:
        products = tiles * np.roll(tiles, shift, axis=(1, 2))  # circshift within the tile
        alpha, left, right = _aggd_rows(products.reshape(len(tiles), -1))
        mean = (right - left) * special.gamma(2 / alpha) / special.gamma(1 / alpha)
        features += [alpha, mean, left, right]
    return np.stack(features, axis=1)


def niqe_features(gray, block=BLOCK):
    """The release's 36 features of each block of a 2-D grey image: (n_blocks, 36), scale 1 then scale 2."""
    gray = np.asarray(gray, dtype=np.float64)
    gray = gray[: gray.shape[0] // block * block, : gray.shape[1] // block * block]
    half = imresize(gray, 0.5)  # the whole cropped image; its blocks are block / 2
    return np.hstack([_block_features(mscn(gray), block), _block_features(mscn(half), block // 2)])


def to_gray(image, gray="ycbcr"):
    """float64 grey image: 2-D input as is; RGB (0-255) to MATLAB's uint8 Y ("ycbcr") or rgb2gray ("matlab_gray")."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image.astype(np.float64)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {image.shape}")
    weights = {"ycbcr": YCBCR_Y_WEIGHTS, "matlab_gray": MATLAB_GRAY_WEIGHTS}.get(gray)
    if weights is None:
        raise ValueError(f"gray must be 'ycbcr' or 'matlab_gray', got {gray!r}")
    rgb = image.astype(np.float64)
    value = rgb[..., 0] * weights[0] + rgb[..., 1] * weights[1] + rgb[..., 2] * weights[2]
    value += 16.0 if gray == "ycbcr" else 0.0
    # MATLAB returns uint8 for uint8 input: round half away from zero, saturate.
    return np.clip(np.floor(value + 0.5), 0, 255)


def niqe(image, border=0, gray="ycbcr", name=None):
    """NIQE score of `image` (HxWx3 RGB or HxW grey, uint8 or float on 0-255); nan with a NIQESkip warning.

    `border` pixels are removed on every side first (the SR protocol passes the scale factor); `gray` picks the
    RGB-to-grey conversion (see to_gray); `name` labels the image in the warning.
    """
    label = name if name is not None else "image"
    gray_image = to_gray(image, gray)
    if border:
        gray_image = gray_image[border:-border, border:-border]
    h, w = gray_image.shape
    n_blocks = (h // BLOCK) * (w // BLOCK)
    if n_blocks < 2:  # the block covariance needs two blocks
        warnings.warn(f"NIQE skipped for {label}: {w}x{h} after a {border}-pixel border has {n_blocks} "
                      f"{BLOCK}x{BLOCK} block(s), at least 2 are needed", NIQESkip, stacklevel=2)
        return float("nan")
    features = niqe_features(gray_image)
    complete = features[~np.isnan(features).any(1)]
    if len(complete) < 2:  # e.g. a flat image: no block has defined AGGD scales
        warnings.warn(f"NIQE skipped for {label}: {len(complete)} of {n_blocks} blocks have defined features, "
                      f"at least 2 are needed", NIQESkip, stacklevel=2)
        return float("nan")
    mu_pristine, cov_pristine = pristine_model()
    # nanmean column by column, nancov over complete rows (normalised by N - 1), as the release.
    difference = mu_pristine - np.nanmean(features, axis=0)
    covariance = (cov_pristine + np.cov(complete, rowvar=False)) / 2
    precision = np.linalg.pinv(covariance, rtol=max(covariance.shape) * np.finfo(float).eps)  # MATLAB pinv's cut
    return float(np.sqrt(difference @ precision @ difference))
