"""Statistics of a MOS study, from its ratings alone.

- Only first presentations count towards the MOS; the ~10 % repeated trials measure each rater's consistency, and the
  calibration ratings how far a rater is from the 1 (NN) and 5 (HR) they were shown.
- Observer screening: ITU-R BT.500 (Annex 1, §2.3.1), the β2 (kurtosis) rule. It cannot flag anyone with fewer than
  6 raters (a sample's largest z-score is at most (n - 1) / sqrt(n)), so it is then not applied.
- MOS per method with a 95 % interval from a two-way bootstrap: raters and images resampled independently, each with
  replacement, the same resample for every method; the percentile interval.
- Significance: Friedman over methods on per-image mean scores (images as blocks), then pairwise Wilcoxon signed-rank
  tests on the same per-image means, Holm-corrected.

Dependencies: NumPy (arrays, moments, the bootstrap) and SciPy (the Friedman and Wilcoxon signed-rank tests).
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

MIN_SCREENING_RATERS = 6
ALPHA = 0.05
EXACT_UP_TO = 16  # 2^16 sign patterns: milliseconds.


@dataclass
class MethodResult:
    method: str
    mos: float
    ci_low: float
    ci_high: float
    n_ratings: int
    std: float


@dataclass
class RaterResult:
    rater: int
    n_ratings: int  # Study ratings (first presentations).
    p: int = 0  # BT.500 counts: scores above / below the presentation's mean by more than the threshold.
    q: int = 0
    rejected: bool = False
    calibration_error: float = float("nan")  # Mean |score - expected| on the calibration trials.
    calibration_n: int = 0
    repeat_error: float = float("nan")  # Mean |first - repeat| over repeated trials.
    repeat_n: int = 0
    correlation: float = float("nan")  # Pearson r with the other raters' mean, per (method, image): information only.


@dataclass
class Analysis:
    methods: list  # MethodResult, best MOS first.
    raters: list  # RaterResult, by rater.
    images: list
    screening: str  # What screening did, in words.
    friedman: tuple | None  # (chi-square, p, number of images) or None when it does not apply.
    pairs: list = field(default_factory=list)  # dicts: a, b, diff, statistic, p, p_holm, significant.
    notes: list = field(default_factory=list)
    n_boot: int = 0

    @property
    def rejected(self) -> list:
        return [rater.rater for rater in self.raters if rater.rejected]


def score_array(rows) -> tuple:
    """(scores[method, rater, image] with NaN where missing, raters, images, methods) of the first study
    presentations in ``rows`` (dicts with rater, image, method, score, phase, repeat)."""
    first = [row for row in rows if row["phase"] == "study" and not row["repeat"]]
    raters = sorted({row["rater"] for row in first})
    images = sorted({row["image"] for row in first})
    methods = sorted({row["method"] for row in first})
    scores = np.full((len(methods), len(raters), len(images)), np.nan)
    where = {name: index for index, name in enumerate(methods)}, {r: i for i, r in enumerate(raters)}, {
        name: index for index, name in enumerate(images)}
    for row in first:
        scores[where[0][row["method"]], where[1][row["rater"]], where[2][row["image"]]] = row["score"]
    return scores, raters, images, methods


def screen(scores) -> tuple:
    """BT.500 β2 screening of raters. ``scores[method, rater, image]`` (NaN: missing).

    For every presentation (method, image): mean, standard deviation S and β2 = m4 / m2² over its raters; the
    threshold is 2 S when 2 <= β2 <= 4 (about normal), else sqrt(20) S. A rater's P (Q) counts their scores at or
    above mean + threshold (at or below mean - threshold); they are rejected when (P + Q) / (their number of scores)
    > 0.05 and |P - Q| / (P + Q) < 0.3 (outliers on both sides: inconsistent, not merely biased).

    Returns:
        (P counts, Q counts, rejected flags), one per rater.
    """
    n_raters = scores.shape[1]
    p, q = np.zeros(n_raters, int), np.zeros(n_raters, int)
    for values in scores.transpose(0, 2, 1).reshape(-1, n_raters):  # One presentation's scores per rater.
        present = ~np.isnan(values)
        if present.sum() < 3:
            continue
        given = values[present]
        deviation = given - given.mean()
        m2, m4, spread = np.mean(deviation ** 2), np.mean(deviation ** 4), given.std(ddof=1)
        if spread == 0:
            continue
        threshold = (2.0 if 2 <= m4 / m2 ** 2 <= 4 else np.sqrt(20.0)) * spread
        p[present] += deviation >= threshold
        q[present] += deviation <= -threshold
    counts = np.sum(~np.isnan(scores), axis=(0, 2))
    total = p + q
    with np.errstate(invalid="ignore", divide="ignore"):
        rejected = (total / np.maximum(counts, 1) > 0.05) & (np.abs(p - q) / np.maximum(total, 1) < 0.3) & (total > 0)
    return p, q, rejected


def bootstrap_mos(scores, n_boot=2000, seed=0, level=0.95) -> tuple:
    """(MOS, CI low, CI high) per method: the mean of all its ratings, and the percentile interval of that mean over
    ``n_boot`` two-way resamples (raters and images, each with replacement, shared by all methods)."""
    present = ~np.isnan(scores)
    values = np.where(present, scores, 0.0)
    mos = values.sum(axis=(1, 2)) / np.maximum(present.sum(axis=(1, 2)), 1)
    n_raters, n_images = scores.shape[1:]
    rng = np.random.default_rng(seed)
    # How often each rater / image is drawn in each resample: the resampled mean is a weighted mean.
    rater_counts = rng.multinomial(n_raters, np.full(n_raters, 1 / n_raters), size=n_boot).astype(float)
    image_counts = rng.multinomial(n_images, np.full(n_images, 1 / n_images), size=n_boot).astype(float)
    total = np.einsum("br,mri,bi->bm", rater_counts, values, image_counts, optimize=True)
    weight = np.einsum("br,mri,bi->bm", rater_counts, present.astype(float), image_counts, optimize=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        resampled = total / weight  # NaN when a resample holds no rating of a method.
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(resampled, [tail, 100 - tail], axis=0)
    return mos, low, high


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error rate)."""
    p_values = np.asarray(p_values, float)
    order = np.argsort(p_values)
    adjusted = np.empty_like(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def wilcoxon(diff) -> tuple:
    """(W+, two-sided p) of the Wilcoxon signed-rank test of paired differences; zeros dropped, ties mid-ranked.
    Exact up to :data:`EXACT_UP_TO` non-zero differences (every sign pattern is enumerated, so ties are handled
    exactly and the result is deterministic), else SciPy's normal approximation."""
    diff = np.asarray(diff, float)
    diff = diff[diff != 0]
    n = len(diff)
    if n == 0:
        return float("nan"), 1.0
    ranks = stats.rankdata(np.abs(diff))
    observed = float(ranks[diff > 0].sum())
    if n > EXACT_UP_TO:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return observed, float(stats.wilcoxon(diff, method="approx").pvalue)
    signs = (np.arange(2 ** n)[:, np.newaxis] >> np.arange(n)) & 1  # Every subset of positive differences.
    null = signs @ ranks
    centre = ranks.sum() / 2
    extreme = np.abs(null - centre) >= abs(observed - centre) - 1e-9
    return observed, float(extreme.mean())


def significance(per_image, methods) -> tuple:
    """(Friedman (chi2, p, n) or None, pairwise dicts, notes) on ``per_image[method, image]`` mean scores."""
    notes = []
    complete = per_image[:, ~np.isnan(per_image).any(axis=0)]
    n = complete.shape[1]
    friedman = None
    if len(methods) >= 3 and n >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = stats.friedmanchisquare(*complete)
        friedman = (float(result.statistic), float(result.pvalue), n)
    pairs = []
    for a, b in itertools.combinations(range(len(methods)), 2):
        diff = complete[a] - complete[b]
        statistic, p = wilcoxon(diff)
        pairs.append({"a": methods[a], "b": methods[b], "diff": float(np.mean(diff)) if n else float("nan"),
                      "statistic": statistic, "p": p})
    for pair, adjusted in zip(pairs, holm([pair["p"] for pair in pairs]) if pairs else []):
        pair["p_holm"] = float(adjusted)
        pair["significant"] = bool(adjusted < ALPHA)
    smallest = 2 / 2 ** n if n else 1.0  # Two-sided exact Wilcoxon: every difference with the same sign.
    if smallest >= ALPHA:
        notes.append(f"with {n} images no pair can be significant: the smallest two-sided Wilcoxon p is 2/2^{n} = "
                     f"{smallest:.4g} >= {ALPHA}")
    elif pairs and len(pairs) * smallest >= ALPHA:
        need = next(k for k in itertools.count(n) if len(pairs) * 2 / 2 ** k < ALPHA)
        notes.append(f"with {n} images and Holm's correction over {len(pairs)} pairs no pair can be significant "
                     f"(the smallest adjusted p is {len(pairs)} x 2/2^{n} = {len(pairs) * smallest:.4g}); "
                     f"{need} images would be needed")
    return friedman, pairs, notes


def consistency(rows, raters) -> dict:
    """Rater -> (calibration mean |score - expected|, its count, repeat mean |first - repeat|, its count)."""
    first = {(r["rater"], r["image"], r["method"]): r["score"] for r in rows
             if r["phase"] == "study" and not r["repeat"]}
    result = {}
    for rater in raters:
        calibration = [abs(r["score"] - r["expected"]) for r in rows
                       if r["rater"] == rater and r["phase"] == "calibration" and r["expected"] is not None]
        repeats = [abs(first[key] - r["score"]) for r in rows if r["rater"] == rater and r["repeat"]
                   and (key := (r["rater"], r["image"], r["method"])) in first]
        result[rater] = (float(np.mean(calibration)) if calibration else float("nan"), len(calibration),
                         float(np.mean(repeats)) if repeats else float("nan"), len(repeats))
    return result


def correlations(scores) -> np.ndarray:
    """Each rater's Pearson r between their scores and the mean of the other raters on the same presentations
    (NaN when undefined), the agreement measure of ITU-T P.913; reported, not used for rejection."""
    result = np.full(scores.shape[1], np.nan)
    present = ~np.isnan(scores)
    for rater in range(scores.shape[1]):
        others = np.delete(scores, rater, axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            reference = np.nanmean(others, axis=1)
        mine = scores[:, rater]
        valid = present[:, rater] & ~np.isnan(reference)
        if valid.sum() >= 3 and np.std(mine[valid]) > 0 and np.std(reference[valid]) > 0:
            result[rater] = float(np.corrcoef(mine[valid], reference[valid])[0, 1])
    return result


def analyse(rows, n_boot=2000, seed=0) -> Analysis:
    """The whole analysis of a study's ratings (dicts as :func:`sr_lib.mos.store.ratings` gives).

    Raises:
        ValueError: when there is no study rating yet.
    """
    scores, raters, images, methods = score_array(rows)
    if not methods:
        raise ValueError("no study ratings yet (only calibration, or none): nothing to analyse")
    everyone = sorted({row["rater"] for row in rows})
    kept = np.ones(len(raters), bool)
    p, q = np.zeros(len(raters), int), np.zeros(len(raters), int)
    if len(raters) < MIN_SCREENING_RATERS:
        screening = (f"BT.500 screening not applied: {len(raters)} rater(s); it cannot flag anyone with fewer "
                     f"than {MIN_SCREENING_RATERS}")
    else:
        p, q, rejected = screen(scores)
        if rejected.all():
            screening = "BT.500 screening would reject every rater: not applied"
        else:
            kept = ~rejected
            names = ", ".join(str(raters[i]) for i in np.flatnonzero(rejected))
            screening = (f"BT.500 screening (β2 rule) over {len(raters)} raters: " + (
                f"rejected {int(rejected.sum())} ({names}); the MOS and the tests use the other {int(kept.sum())}"
                if names else f"none rejected; the MOS and the tests use all {len(raters)}"))
    used = scores[:, kept]
    mos, low, high = bootstrap_mos(used, n_boot=n_boot, seed=seed)
    counts = np.sum(~np.isnan(used), axis=(1, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # A method no kept rater has rated yet: NaN.
        spread = [float(np.nanstd(used[m])) for m in range(len(methods))]
        per_image = np.nanmean(used, axis=1)
    results = sorted((MethodResult(methods[m], float(mos[m]), float(low[m]), float(high[m]), int(counts[m]),
                                   spread[m]) for m in range(len(methods))), key=lambda r: -r.mos)
    by_rank = [methods.index(r.method) for r in results]  # Pairs as (better, worse), best first.
    friedman, pairs, notes = significance(per_image[by_rank], [methods[m] for m in by_rank])
    agreement = consistency(rows, everyone)
    correlation = correlations(scores)
    rater_results = []
    for rater in everyone:
        index = raters.index(rater) if rater in raters else None
        rater_results.append(RaterResult(
            rater, int(np.sum(~np.isnan(scores[:, index]))) if index is not None else 0,
            int(p[index]) if index is not None else 0, int(q[index]) if index is not None else 0,
            bool(index is not None and not kept[index]), *agreement[rater],
            float(correlation[index]) if index is not None else float("nan")))
    return Analysis(results, rater_results, images, screening, friedman, pairs, notes, n_boot)
