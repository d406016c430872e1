"""``mos report``: the analysis of a study database as text, ``mos.md``, ``ratings.csv``, ``mos_per_method.csv`` and
``mos.png``; and :func:`mos_table` for other reports (the comparison report's MOS column).

Dependencies: matplotlib (the figure, drawn on the Agg canvas directly so no window or pyplot state is involved).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from sr_lib.mos import analysis as analysis_lib
from sr_lib.mos import store

N_BOOT = 2000
SEED = 0
# Ledig et al. (arXiv 1609.04802v5, §3.3), BSD100, 26 raters: what a study of the same methods may be held against.
PAPER_BSD100 = {"NN": 1.11, "SRResNet": 2.29, "SRGAN": 3.56, "HR": 4.46}


def load(db_path) -> tuple:
    """(rating rows, study meta) of a study database; OSError naming it when it is missing or not a study."""
    connection = store.connect(db_path)
    try:
        return store.ratings(connection), store.meta(connection), connection.execute(
            "SELECT COUNT(*) FROM raters").fetchone()[0]
    finally:
        connection.close()


def analyse_db(db_path, n_boot=N_BOOT, seed=SEED) -> analysis_lib.Analysis:
    rows, _, _ = load(db_path)
    return analysis_lib.analyse(rows, n_boot=n_boot, seed=seed)


def mos_table(db_path, n_boot=N_BOOT, seed=SEED) -> list:
    """One dict per method, best first: method, mos, ci_low, ci_high (95 %, two-way bootstrap), n_ratings; after
    BT.500 screening, first presentations only."""
    return [{"method": m.method, "mos": m.mos, "ci_low": m.ci_low, "ci_high": m.ci_high, "n_ratings": m.n_ratings}
            for m in analyse_db(db_path, n_boot, seed).methods]


def _number(value, digits=2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) and math.isfinite(value) else (
        "—" if isinstance(value, float) else str(value))


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_number(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def format_report(result: analysis_lib.Analysis, meta: dict, n_raters: int, title: str) -> str:
    """The analysis as Markdown (also what the command prints)."""
    methods = result.methods
    rated = [r for r in result.raters if r.n_ratings]
    parts = [f"# MOS study: {title}", "",
             f"{n_raters} rater(s) invited, {len(rated)} with study ratings; {len(result.images)} image(s); "
             f"{len(methods)} methods (anchors: nearest, bicubic; reference: HR); x{meta.get('scale', '?')}; "
             "absolute category rating 1 (bad) to 5 (excellent), ITU-T P.910, blind, each rater in their own "
             "random order.", "",
             "## MOS per method", "",
             f"{result.screening}. First presentations only (the repeated trials measure consistency). 95 % "
             f"intervals: two-way bootstrap (raters and images resampled independently, with replacement), "
             f"{result.n_boot} resamples, seed {SEED}.", "",
             _table(["rank", "method", "MOS", "95 % CI", "ratings", "std"],
                    [[rank, m.method, m.mos, f"{_number(m.ci_low)}–{_number(m.ci_high)}", m.n_ratings, m.std]
                     for rank, m in enumerate(methods, 1)]), "",
             "Ledig et al. (2017), BSD100, 26 raters: " +
             ", ".join(f"{name} {value:.2f}" for name, value in PAPER_BSD100.items()) + ".", "",
             "## Significance", ""]
    if result.friedman is not None:
        chi2, p, n = result.friedman
        parts += [f"Friedman test over the {len(methods)} methods on per-image mean scores ({n} images as "
                  f"blocks): chi² = {chi2:.2f}, p = {p:.3g}.", ""]
    parts += ["Pairwise Wilcoxon signed-rank tests on per-image mean scores, Holm-corrected (α = 0.05):", "",
              _table(["A", "B", "mean A − B", "W+", "p", "p (Holm)", "significant"],
                     [[pair["a"], pair["b"], pair["diff"], pair["statistic"], f"{pair['p']:.3g}",
                       f"{pair['p_holm']:.3g}", "yes" if pair["significant"] else "no"] for pair in result.pairs]),
              ""]
    parts += [f"Note: {note}." for note in result.notes] + ([""] if result.notes else [])
    parts += ["## Raters", "",
              "P, Q: BT.500 counts of scores above / below a presentation's mean by more than its threshold. "
              "Calibration error: mean |score − expected| on the calibration pictures (NN = 1, HR = 5). "
              "Repeat error: mean |first − repeat| over the repeated trials. r: correlation with the other raters' "
              "mean (information only).", "",
              _table(["rater", "ratings", "P", "Q", "rejected", "calibration error (n)", "repeat error (n)", "r"],
                     [[r.rater, r.n_ratings, r.p, r.q, "yes" if r.rejected else "no",
                       f"{_number(r.calibration_error)} ({r.calibration_n})",
                       f"{_number(r.repeat_error)} ({r.repeat_n})", r.correlation] for r in result.raters])]
    return "\n".join(parts) + "\n"


def _csv(header, rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def save_figure(result: analysis_lib.Analysis, path) -> Path:
    """MOS with its 95 % interval per method, worst to best, on the 1-5 scale."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    methods = result.methods[::-1]
    figure = Figure(figsize=(max(4.0, 1.1 * len(methods) + 1.5), 3.6))
    axes = figure.add_subplot()
    positions = range(len(methods))
    mos = [m.mos for m in methods]
    errors = [[max(0.0, m.mos - m.ci_low) for m in methods], [max(0.0, m.ci_high - m.mos) for m in methods]]
    axes.errorbar(positions, mos, yerr=errors, fmt="o", capsize=5, color="tab:blue")
    axes.set_xticks(list(positions), [m.method for m in methods], rotation=20, ha="right")
    axes.set_ylim(0.8, 5.2)  # Room for the markers and bars at the ends of the scale.
    axes.set_yticks([1, 2, 3, 4, 5])
    axes.set_ylabel("MOS (95 % CI)")
    axes.grid(axis="y", alpha=0.3)
    kept = sum(1 for rater in result.raters if rater.n_ratings and not rater.rejected)
    axes.set_title(f"MOS after screening ({kept} raters, {len(result.images)} images)")
    FigureCanvasAgg(figure)
    path = Path(path)
    figure.savefig(path, format="png", dpi=120, bbox_inches="tight")
    return path


def write_report(db_path, out_dir=None, n_boot=N_BOOT, seed=SEED) -> dict:
    """Analyses ``db_path`` and writes the report files to ``out_dir`` (default: ``<db stem>_report`` beside it).

    Returns:
        {"text": the Markdown, "analysis": Analysis, and a path per file: "md", "ratings", "per_method", "figure"}.
    """
    db_path = Path(db_path)
    rows, meta, n_raters = load(db_path)
    result = analysis_lib.analyse(rows, n_boot=n_boot, seed=seed)
    out_dir = Path(out_dir) if out_dir else db_path.with_name(f"{db_path.stem}_report")
    out_dir.mkdir(parents=True, exist_ok=True)
    text = format_report(result, meta, n_raters, db_path.name)
    paths = {"md": out_dir / "mos.md", "ratings": out_dir / "ratings.csv",
             "per_method": out_dir / "mos_per_method.csv", "figure": out_dir / "mos.png"}
    paths["md"].write_text(text)
    keys = ("rater", "image", "method", "score", "position", "repeat", "phase", "rated_at")
    paths["ratings"].write_text(_csv(keys, [[row[key] for key in keys] for row in rows]))
    paths["per_method"].write_text(_csv(
        ("rank", "method", "mos", "ci_low", "ci_high", "n_ratings", "std"),
        [[rank, m.method, f"{m.mos:.4f}", f"{m.ci_low:.4f}", f"{m.ci_high:.4f}", m.n_ratings, f"{m.std:.4f}"]
         for rank, m in enumerate(result.methods, 1)]))
    save_figure(result, paths["figure"])
    return {"text": text, "analysis": result, **paths}
