"""Builds the numbered notebooks from their ``py:percent`` sources and executes them with papermill.

``notebooks/NN_name.py`` is the source (readable diffs, reviewed like code); ``notebooks/NN_name.ipynb`` is the same
cells with the outputs of a real run. Executing injects a setting's parameters after each notebook's ``parameters``
cell (papermill's convention), so the committed notebook shows which setting produced its outputs::

    python scripts/notebook_runner.py --setting demo            # make notebooks: all six, written in place
    python scripts/notebook_runner.py --setting smoke --out DIR  # what the tests run: seconds per notebook

A notebook is written only after it ran to the end, so a failing run never replaces a good committed notebook.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
MAX_BYTES = 2 * 2**20  # A committed notebook stays under 2 MB, so that GitHub renders it.
INJECTED_TAG = "injected-parameters"
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}

# Paths are relative to notebooks/, where Jupyter and papermill run a notebook. ../shared is the development
# checkout's data (Set5/Set14 for evaluation only); without it the notebooks fall back to the embedded photographs.
_SHARED_BENCHMARKS = ["../../shared/sr-benchmarks/Set5/HR", "../../shared/sr-benchmarks/Set14/HR"]

# Parameter values per setting; each notebook receives the ones its parameters cell declares. The notebooks' own
# defaults are what a user wants on a GPU (paper-size presets, DIV2K, Set5/Set14 under data/).
SETTINGS = {
    # CPU minutes: what the committed notebooks show (make notebooks).
    "demo": {"PRESET": "demo", "DATA": None, "VGG_WEIGHTS": "auto", "LIVE_STEPS": 200, "THROUGHPUT_STEPS": 100,
             "BENCHMARKS": _SHARED_BENCHMARKS, "MAX_IMAGES": None, "VARIANTS": None,
             "PRETRAINED": "../saved_models/srresnet_x4/srresnet_x4.keras", "PHOTO_SIDE": 512,
             "TILE": 128, "TFLITE": True},
    # CPU seconds: what CI executes (tests/test_notebooks.py); toy models, a few steps, two images per set.
    "smoke": {"PRESET": "ci", "DATA": None, "VGG_WEIGHTS": None, "LIVE_STEPS": 4, "THROUGHPUT_STEPS": 5,
              "BENCHMARKS": _SHARED_BENCHMARKS[:1], "MAX_IMAGES": 2, "VARIANTS": ["srresnet_mse", "perpix_modified"], "PRETRAINED": None,
              "PHOTO_SIDE": 96, "TILE": 32, "TFLITE": False},
}


class NotebookError(RuntimeError):
    """A notebook failed to build or run; the message names it and the failing cell."""


def sources(folder=NOTEBOOKS, names=None) -> list[Path]:
    """The numbered ``NN_name.py`` sources in order, or those whose stem or number is in ``names``."""
    found = sorted(path for path in Path(folder).glob("[0-9][0-9]_*.py"))
    if names:
        wanted = set(names)
        found = [path for path in found if path.stem in wanted or path.stem[:2] in wanted]
        missing = wanted - {path.stem for path in found} - {path.stem[:2] for path in found}
        if missing:
            raise NotebookError(f"no notebook source named {', '.join(sorted(missing))} in {folder}")
    if not found:
        raise NotebookError(f"no NN_name.py notebook sources in {folder}")
    return found


def build(source: Path):
    """The notebook (nbformat node) of a ``py:percent`` source, with the project's kernel."""
    import jupytext

    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = dict(KERNEL)
    notebook.metadata.setdefault("language_info", {"name": "python"})
    # The .ipynb is an output of the .py; no pairing metadata, so that opening one never rewrites the other.
    notebook.metadata.pop("jupytext", None)
    return notebook


def parameters_for(notebook_path: Path, setting: dict) -> dict:
    """The setting's values for the parameters this notebook declares (papermill's ``parameters`` cell)."""
    import papermill

    declared = papermill.inspect_notebook(str(notebook_path))
    if not declared:
        raise NotebookError(f"{notebook_path.name} has no cell tagged 'parameters'")
    return {name: value for name, value in setting.items() if name in declared}


def resolve_setting(name: str, out_root=None, overrides=None) -> dict:
    """A setting's parameters with the benchmark folders that exist here, and OUT_ROOT for the runs."""
    if name not in SETTINGS:
        raise NotebookError(f"unknown setting {name!r}; choose one of {', '.join(SETTINGS)}")
    setting = copy.deepcopy(SETTINGS[name])
    setting["BENCHMARKS"] = [folder for folder in setting["BENCHMARKS"] if (NOTEBOOKS / folder).is_dir()]
    if out_root is not None:
        setting["OUT_ROOT"] = os.fspath(Path(out_root).resolve())
    setting.update(overrides or {})
    return setting


def execute(source: Path, target: Path, setting: dict, timeout=1800) -> float:
    """Builds ``source``, runs it in ``notebooks/`` with the setting's parameters and writes ``target`` when it ran to
    the end. Returns the seconds it took."""
    import nbformat
    import papermill

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="notebook-") as scratch:
        built = Path(scratch) / source.with_suffix(".ipynb").name
        nbformat.write(build(source), built)
        ran = Path(scratch) / f"ran-{built.name}"
        start = time.perf_counter()
        # The kernel inherits this environment: TensorFlow's C++ start-up log lines stay out of the committed outputs.
        quiet = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        try:
            papermill.execute_notebook(str(built), str(ran), parameters=parameters_for(built, setting),
                                       kernel_name=KERNEL["name"], cwd=str(source.parent), progress_bar=False,
                                       execution_timeout=timeout)
        except papermill.PapermillExecutionError as error:
            raise NotebookError(f"{source.name}: cell {error.exec_count} raised {error.ename}: {error.evalue}") \
                from None
        finally:
            if quiet is None:
                os.environ.pop("TF_CPP_MIN_LOG_LEVEL")
            else:
                os.environ["TF_CPP_MIN_LOG_LEVEL"] = quiet
        seconds = time.perf_counter() - start
        drop_chatter(ran)
        problems = check(ran)
        if problems:
            raise NotebookError(f"{source.name}: " + "; ".join(problems))
        partial = target.with_name(f".{target.name}.partial")
        shutil.copyfile(ran, partial)
        os.replace(partial, target)  # Atomic: the committed notebook is either the old one or the new one.
    return seconds


def drop_chatter(notebook_path: Path) -> None:
    """Removes TensorFlow's C++ start-up notices from the stderr outputs. The kernel captures descriptor 2, where they
    are written before any Python code can silence them (see ``sr_lib.console``); every other line is kept."""
    import nbformat

    from sr_lib.console import CHATTER

    chatter = re.compile(CHATTER)
    notebook = nbformat.read(notebook_path, as_version=4)
    for cell in notebook.cells:
        outputs = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                output["text"] = "".join(line for line in output["text"].splitlines(keepends=True)
                                         if not chatter.match(line))
                if not output["text"].strip():
                    continue
            outputs.append(output)
        if cell.cell_type == "code":
            cell.outputs = outputs
    nbformat.write(notebook, notebook_path)


def check(notebook_path: Path, max_bytes=MAX_BYTES) -> list[str]:
    """What keeps an executed notebook from being committed: error outputs, an unexecuted code cell, its size."""
    notebook = json.loads(Path(notebook_path).read_text())
    problems = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        if cell.get("execution_count") is None and "".join(cell["source"]).strip():
            problems.append(f"cell {index} was not executed")
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                problems.append(f"cell {index} has an error output ({output.get('ename')})")
    size = Path(notebook_path).stat().st_size
    if size > max_bytes:
        problems.append(f"{size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit")
    return problems


def out_of_sync(source: Path, notebook_path: Path) -> list[str]:
    """Differences between a ``.py`` source and its committed ``.ipynb`` (ignoring papermill's injected cell and all
    outputs); empty when they hold the same cells."""
    import jupytext

    expected = [(cell.cell_type, cell.source.strip()) for cell in build(source).cells]
    committed = jupytext.read(notebook_path)
    actual = [(cell.cell_type, cell.source.strip()) for cell in committed.cells
              if INJECTED_TAG not in cell.metadata.get("tags", [])]
    if expected == actual:
        return []
    for index, (want, have) in enumerate(zip(expected, actual)):
        if want != have:
            return [f"{notebook_path.name}: cell {index} differs from {source.name} "
                    f"({have[1][:60]!r} instead of {want[1][:60]!r}); run `make notebooks`"]
    return [f"{notebook_path.name} has {len(actual)} cells, {source.name} has {len(expected)}; run `make notebooks`"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Execute the numbered notebooks (papermill) at a setting.")
    parser.add_argument("names", nargs="*", help="notebooks to run (e.g. 03 or 03_srresnet); default all")
    parser.add_argument("--setting", default="demo", choices=sorted(SETTINGS))
    parser.add_argument("--out", help="folder for the executed notebooks (default: in place, next to the sources)")
    parser.add_argument("--runs", help="OUT_ROOT for the notebooks' runs (default: the notebooks' own, under runs/)")
    args = parser.parse_args(argv)
    try:
        setting = resolve_setting(args.setting, args.runs)
        total = 0.0
        for source in sources(names=args.names):
            target = (Path(args.out) if args.out else source.parent) / source.with_suffix(".ipynb").name
            seconds = execute(source, target, setting)
            total += seconds
            print(f"{source.stem}: {seconds:.0f} s -> {target} ({target.stat().st_size / 2**10:.0f} KiB)", flush=True)
        print(f"all: {total:.0f} s ({args.setting})")
    except NotebookError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
