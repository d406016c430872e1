"""Copies a finished comparison's report into a shipped results folder (results/loss_comparison_x4):

    .venv/bin/python scripts/publish_comparison.py runs/loss_comparison_x4 results/loss_comparison_x4

Copies report/* (table, figures, crop grids, results.json with its paths pointing at the new folder), the base
config.json and each variant's config.json and log.csv; no generators, checkpoints or optimizer state.
"""

import argparse
import shutil
import sys
from pathlib import Path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("comparison", type=Path, help="a comparison directory (config.json, report/, variants/)")
    parser.add_argument("out", type=Path, help="the results folder to write")
    args = parser.parse_args(argv)
    report = args.comparison / "report"
    if not (report / "results.json").is_file():
        sys.exit(f"error: {report / 'results.json'} not found: run the comparison to its end first")
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted(report.iterdir()):
        if path.suffix in (".md", ".csv", ".png"):
            shutil.copy(path, args.out / path.name)
    # The report's own paths, re-pointed at where it now lives.
    text = (report / "results.json").read_text().replace(f"{report}/", f"{args.out}/")
    (args.out / "results.json").write_text(text)
    shutil.copy(args.comparison / "config.json", args.out / "config.json")
    for variant in sorted((args.comparison / "variants").iterdir()):
        target = args.out / "variants" / variant.name
        target.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "log.csv"):
            shutil.copy(variant / name, target / name)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
