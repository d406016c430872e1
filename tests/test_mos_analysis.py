"""MOS statistics on simulated raters with a known truth, the significance tests, and the report files."""

import csv
import json

import numpy as np
import pytest
from scipy import stats

from mos_fixtures import make_db
from sr_lib.mos import analysis, cli, report, store

TRUE_MEANS = {"lowzz": 1.5, "midzz": 3.0, "highzz": 3.5}
RATER_SD, IMAGE_SD, NOISE_SD = 0.3, 0.3, 0.6


def expected_score(mean) -> float:
    """The population mean of round(clip(mean + rater + image + noise)) to 1..5: the truth an interval should cover
    (rounding and clipping move it off ``mean`` near the ends of the scale, e.g. 1.5 -> 1.59)."""
    spread = np.sqrt(RATER_SD ** 2 + IMAGE_SD ** 2 + NOISE_SD ** 2)
    edges = stats.norm.cdf((np.array([1.5, 2.5, 3.5, 4.5]) - mean) / spread)
    probabilities = np.diff(np.concatenate([[0.0], edges, [1.0]]))
    return float(np.dot(probabilities, np.arange(1, 6)))


def simulate(rng, n_raters=26, n_images=30, random_rater=True) -> list:
    """Rows as the database gives them: rater r's score of image i by method m is mean_m + bias_r + effect_mi +
    noise, rounded and clipped to 1..5; the last rater (with ``random_rater``) answers uniformly at random."""
    bias = rng.normal(0, RATER_SD, n_raters)
    effect = {method: rng.normal(0, IMAGE_SD, n_images) for method in TRUE_MEANS}
    rows = []
    for rater in range(n_raters):
        for image in range(n_images):
            for method, mean in TRUE_MEANS.items():
                if random_rater and rater == n_raters - 1:
                    score = int(rng.integers(1, 6))
                else:
                    score = int(np.clip(np.rint(mean + bias[rater] + effect[method][image] + rng.normal(0, NOISE_SD)),
                                        1, 5))
                rows.append({"rater": rater, "image": f"i{image:02d}", "method": method, "score": score,
                             "phase": "study", "repeat": 0, "expected": None})
    return rows


def test_simulated_study_ranks_covers_and_screens():
    """60 simulated studies (26 raters like the paper, 30 images, 300 bootstrap resamples each).

    Coverage: 180 intervals; if each covered with probability 0.95 independently, the covered share has a standard
    deviation of sqrt(0.95 * 0.05 / 180) = 0.016, so 0.95 +- 3 sd = [0.90, 0.998]. (The three intervals of one study
    share raters, so the real spread is somewhat larger; the seeds are fixed. Over 300 other seeds: 0.953.)

    Screening: BT.500's rule rejects a rater only when their outliers are numerous (> 5 %) *and* balanced above and
    below (|P - Q| / (P + Q) < 0.3); a random rater facing methods near the ends of the scale is sometimes one-sided,
    so it is flagged in about 75 % of such studies (measured over 300 other seeds: 75 %, and 0.24 % of the normal
    raters). Asserted: at least 33 of 60 (with a true 75 %, Binomial(60, 0.75) has mean 45 and sd 3.4, so 33 is 3.6 sd
    below) and at most 1 % of the normal raters.
    """
    truth = {method: expected_score(mean) for method, mean in TRUE_MEANS.items()}
    studies, covered, flagged, false_flags, ranked = 60, 0, 0, 0, 0
    for repetition in range(studies):
        result = analysis.analyse(simulate(np.random.default_rng(1000 + repetition)), n_boot=300, seed=repetition)
        ranked += [m.method for m in result.methods] == ["highzz", "midzz", "lowzz"]
        covered += sum(m.ci_low <= truth[m.method] <= m.ci_high for m in result.methods)
        flagged += 25 in result.rejected
        false_flags += len([rater for rater in result.rejected if rater != 25])
    assert ranked == studies
    assert 0.90 <= covered / (3 * studies) <= 0.998, covered / (3 * studies)
    assert flagged >= 33, flagged
    assert false_flags <= 0.01 * 25 * studies, false_flags


def test_random_rater_is_flagged_and_removed():
    result = analysis.analyse(simulate(np.random.default_rng(5), n_images=40), n_boot=500)
    assert result.rejected == [25]
    assert "rejected 1 (25)" in result.screening
    random_rater = next(r for r in result.raters if r.rater == 25)
    assert random_rater.p + random_rater.q > 0.05 * random_rater.n_ratings
    assert abs(random_rater.correlation) < 0.3 and all(r.correlation > 0.6 for r in result.raters if r.rater != 25)
    assert {m.method: m.n_ratings for m in result.methods} == {m: 25 * 40 for m in TRUE_MEANS}
    assert result.friedman[1] < 1e-6 and all(pair["significant"] for pair in result.pairs)


def test_few_raters_or_images():
    rows = [row for row in simulate(np.random.default_rng(2), n_raters=5, n_images=5, random_rater=False)]
    result = analysis.analyse(rows, n_boot=200)
    assert "not applied" in result.screening and result.rejected == []
    assert any("no pair can be significant" in note and "2/2^5 = 0.0625" in note for note in result.notes)
    assert not any(pair["significant"] for pair in result.pairs)
    six = analysis.analyse(simulate(np.random.default_rng(2), n_raters=8, n_images=6, random_rater=False), n_boot=200)
    assert any("Holm" in note and "3 pairs" in note for note in six.notes)  # 3 x 2/2^6 = 0.094.
    with pytest.raises(ValueError, match="no study ratings"):
        analysis.analyse([])


def test_wilcoxon_and_holm():
    rng = np.random.default_rng(0)
    for n in (5, 9, 14):
        diff = rng.normal(0.4, 1, n)
        assert analysis.wilcoxon(diff)[1] == pytest.approx(stats.wilcoxon(diff, method="exact").pvalue)
    assert analysis.wilcoxon([1, 2, 3, 4, 5])[1] == pytest.approx(2 / 2 ** 5)
    assert analysis.wilcoxon([0, 0, 0]) == (pytest.approx(float("nan"), nan_ok=True), 1.0)
    assert analysis.wilcoxon([1, 1, 1, 1, 1, 1])[1] == pytest.approx(2 / 2 ** 6)  # Ties handled exactly.
    assert list(analysis.holm([0.01, 0.04, 0.03])) == pytest.approx([0.03, 0.06, 0.06])


def test_bootstrap_resamples_raters_and_images():
    scores = np.zeros((1, 10, 10))
    scores[0, :5] = 1.0  # Only raters differ: the interval comes from resampling raters.
    mos, low, high = analysis.bootstrap_mos(scores, n_boot=500)
    assert mos[0] == 0.5 and low[0] < 0.3 and high[0] > 0.7
    scores = np.zeros((1, 10, 10))
    scores[0, :, :5] = 1.0  # Only images differ.
    _, low, high = analysis.bootstrap_mos(scores, n_boot=500)
    assert low[0] < 0.3 and high[0] > 0.7


def _rate_everything(db, tokens, rng, repeat_flip=False):
    """Every rater rates every trial through the database (as the server would): a score from the method."""
    level = {"nearest": 1, "bicubic": 2, "mseonly": 3, "srganzz": 4, "HR": 5}
    state_db = store.StudyDB(db)
    connection = store.connect(db)
    for token in tokens:
        state = state_db.state(token)
        while not state["done"]:
            stimulus = connection.execute("SELECT s.method, s.expected, t.is_repeat FROM trials t JOIN stimuli s ON "
                                          "s.id = t.stimulus_id WHERE t.public_id = ?", (state["trial"],)).fetchone()
            method, expected, repeat = stimulus
            score = expected if expected else int(np.clip(level[method] + rng.integers(-1, 2) * (rng.random() < .3),
                                                           1, 5))
            if repeat and repeat_flip:
                score = 1 if score > 2 else 5
            state = state_db.rate(token, state["trial"], score)
    connection.close()
    state_db.close()


def test_report_files_and_table(tmp_path, capsys):
    db, tokens = make_db(tmp_path, raters=3)
    _rate_everything(db, tokens, np.random.default_rng(0))
    assert cli.main(["report", "--db", str(db), "--out", str(tmp_path / "out"), "--bootstrap", "200"]) == 0
    printed = capsys.readouterr().out
    assert "## MOS per method" in printed and "no pair can be significant" in printed  # 3 images.
    out = tmp_path / "out"
    assert (out / "mos.md").read_text() in printed
    assert (out / "mos.png").read_bytes().startswith(b"\x89PNG")
    with open(out / "ratings.csv") as handle:
        ratings = list(csv.DictReader(handle))
    assert len(ratings) == 3 * 23 and set(ratings[0]) == {"rater", "image", "method", "score", "position", "repeat",
                                                          "phase", "rated_at"}
    assert sum(row["repeat"] == "1" for row in ratings) == 3 * 2
    with open(out / "mos_per_method.csv") as handle:
        per_method = list(csv.DictReader(handle))
    assert [row["method"] for row in per_method][0] == "HR" and per_method[-1]["method"] == "nearest"
    table = report.mos_table(db, n_boot=200)
    assert [row["method"] for row in table] == [row["method"] for row in per_method]
    assert set(table[0]) == {"method", "mos", "ci_low", "ci_high", "n_ratings"} and table[0]["n_ratings"] == 9
    assert all(row["ci_low"] <= row["mos"] <= row["ci_high"] for row in table)


def test_consistency_measures(tmp_path):
    db, tokens = make_db(tmp_path, raters=2)
    _rate_everything(db, tokens, np.random.default_rng(1), repeat_flip=True)
    result = report.analyse_db(db, n_boot=100)
    for rater in result.raters:
        assert rater.calibration_n == 6 and rater.calibration_error == 0  # Rated 1 and 5 as shown.
        assert rater.repeat_n == 2 and rater.repeat_error >= 2  # Every repeat flipped to the other end.


def test_the_comparison_report_gets_the_mos_table(tmp_path):
    from sr_lib.training.report import add_mos_table

    db, tokens = make_db(tmp_path, raters=3)
    _rate_everything(db, tokens, np.random.default_rng(0))
    report_dir = tmp_path / "report"
    report_dir.mkdir()
    (report_dir / "results.md").write_text("# Loss comparison (x4)\n")
    (report_dir / "results.json").write_text('{"rows": []}\n')
    rows = add_mos_table(report_dir, db)
    assert [row["method"] for row in rows][0] == "HR" and rows[-1]["method"] == "nearest"
    text = (report_dir / "results.md").read_text()
    assert text.startswith("# Loss comparison (x4)\n") and "## Mean opinion score" in text
    assert all(f"| {row['method']} | {row['mos']:.2f} |" in text for row in rows)
    assert json.loads((report_dir / "results.json").read_text())["mos"][0]["method"] == "HR"
