"""The seed-to-seed spread of a comparison, and which adversarial variants separate from the content-only control by
more than it: a difference smaller than what another seed gives is no finding."""

from __future__ import annotations

import numpy as np

from sr_lib.evaluation.tables import Table


def _adversarial(variant) -> str:
    return dict(variant.overrides).get("loss.adversarial")


SPREAD_METRICS = ("niqe", "psnr_y")  # The two axes of the perception-distortion plane.


def seed_spread(runs, rows) -> dict | None:
    """The seed-to-seed spread, from each variant that a seed repeat (``slug@seedN``) ran again, and each adversarial
    variant's NIQE difference from the content-only control, said to separate where it exceeds the spread.

    ``rows`` are the variants' table rows, in the order of ``runs``. Returns None without a seed repeat; else
    ``pairs`` (each repeat's |differences| from its variant), ``spread`` (the largest per metric column) and
    ``separation`` (per adversarial variant and NIQE column: the difference, and whether |difference| > spread)."""
    def loss_keys(variant):
        return tuple(sorted((key, value) for key, value in variant.overrides if key != "train.seed"))

    entries = list(zip((variant for variant, _ in runs), rows))
    plain = {loss_keys(variant): row for variant, row in entries if "train.seed" not in dict(variant.overrides)}
    columns = [key for key in rows[0] if key.rpartition("/")[2] in SPREAD_METRICS]
    pairs = []
    for variant, row in entries:
        base = plain.get(loss_keys(variant)) if "train.seed" in dict(variant.overrides) else None
        if base is not None:
            pairs.append({"variant": base["method"], "repeat": row["method"],
                          "differences": {key: abs(row[key] - base[key]) for key in columns}})
    if not pairs:
        return None
    spread = {key: max(pair["differences"][key] for pair in pairs) for key in columns}
    control = next((row for variant, row in entries if _adversarial(variant) == "none"), None)
    separation = []
    for variant, row in entries:
        if control is None or _adversarial(variant) == "none" or "train.seed" in dict(variant.overrides):
            continue
        for key in (key for key in columns if key.endswith("/niqe") and np.isfinite(spread[key])):
            difference = row[key] - control[key]
            separation.append({"method": row["method"], "column": key, "difference": round(difference, 4),
                               "spread": round(spread[key], 4), "separates": bool(abs(difference) > spread[key])})
    return {"pairs": pairs, "spread": spread, "control": control["method"] if control else None,
            "separation": separation}


def spread_lines(spread) -> list:
    if spread is None:
        return []
    repeats = "; ".join(f"{pair['repeat']} against {pair['variant']}" for pair in spread["pairs"])
    lines = ["", "## Seed-to-seed spread, and separation from the control", "",
             f"Spread: the largest |difference| between a variant and its seed repeat ({repeats}), per column: "
             + ", ".join(f"{key} {value:.4f}" for key, value in spread["spread"].items()) + ".", ""]
    if spread["separation"]:
        lines += [f"A variant separates from {spread['control']} on a set when its NIQE differs from the control's "
                  "by more than that spread (lower NIQE: closer to natural-image statistics).", "",
                  Table([{"variant": item["method"], "set": item["column"].rpartition("/")[0],
                          "NIQE - control": item["difference"], "spread": item["spread"],
                          "separates": "yes" if item["separates"] else "no"} for item in spread["separation"]],
                        digits=4).to_markdown()]
    return lines
