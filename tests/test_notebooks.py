"""The numbered notebooks: thin sources, committed with real outputs in sync with them, and each executed here at the
smoke setting (papermill, toy sizes) with assertions on what it produced."""

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))  # A repository tool, not part of sr_lib.
import notebook_runner as runner  # noqa: E402

SOURCES = runner.sources()
IDS = [source.stem for source in SOURCES]
# What a notebook must never hold: logic belongs in sr_lib, where it is tested.
FORBIDDEN = re.compile(r"^\s*(def |class |async def )|\blambda\b|GradientTape|\.fit\(|\btrain_step\b|while True", re.M)


def _code(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _texts(notebook) -> str:
    """Every text output (streams, Markdown, plain text) of a notebook, joined."""
    parts = []
    for cell in _code(notebook):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output["text"])
            for key in ("text/markdown", "text/plain"):
                if key in output.get("data", {}):
                    parts.append(output["data"][key])
    return "\n".join(parts)


def _images(notebook) -> int:
    return sum("image/png" in output.get("data", {}) for cell in _code(notebook) for output in cell.get("outputs", []))


def test_six_numbered_notebooks():
    assert [source.stem[:2] for source in SOURCES] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_source_is_thin_and_opens_with_parameters(source):
    notebook = runner.build(source)
    code = _code(notebook)
    assert "parameters" in code[0].metadata.get("tags", []), "the first code cell must be the parameters cell"
    assert "runtime.describe(" in code[1].source, "the first output must state device, precision and VGG weights"
    for index, cell in enumerate(code):
        match = FORBIDDEN.search(cell.source)
        assert match is None, f"code cell {index} holds {match.group(0)!r}: move it into sr_lib"
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith(f"# {source.stem[:2]}")


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_committed_notebook_has_real_outputs_in_sync(source):
    committed = source.with_suffix(".ipynb")
    assert committed.is_file(), f"{committed.name} is missing: run `make notebooks`"
    assert runner.out_of_sync(source, committed) == []
    assert runner.check(committed) == []  # Executed, no error output, under 2 MB.
    notebook = nbformat.read(committed, as_version=4)
    injected = [cell for cell in notebook.cells if runner.INJECTED_TAG in cell.metadata.get("tags", [])]
    assert len(injected) == 1, "committed notebooks are executed by the runner, which injects the setting"
    describe = next(cell for cell in _code(notebook) if "runtime.describe(" in cell.source)
    assert re.search(r"^device: .+\nprecision: .+\nVGG19 weights: ", _texts(nbformat.v4.new_notebook(cells=[describe])),
                     re.M)
    assert _images(notebook) >= 1, "GitHub shows the figures only when the PNG outputs are in the JSON"


def test_out_of_sync_names_the_changed_cell(tmp_path):
    source = tmp_path / "01_x.py"
    source.write_text("# %% [markdown]\n# # 01 x\n\n# %% tags=[\"parameters\"]\nA = 1\n\n# %%\nprint(A)\n")
    notebook = runner.build(source)
    target = tmp_path / "01_x.ipynb"
    nbformat.write(notebook, target)
    assert runner.out_of_sync(source, target) == []
    source.write_text(source.read_text().replace("print(A)", "print(A + 1)"))
    problems = runner.out_of_sync(source, target)
    assert len(problems) == 1 and "cell 2" in problems[0] and "make notebooks" in problems[0]


def test_check_reports_errors_unexecuted_cells_and_size(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("1 / 0", execution_count=1, outputs=[
            nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero", traceback=[])]),
        nbformat.v4.new_code_cell("x = 1")])
    path = tmp_path / "bad.ipynb"
    nbformat.write(notebook, path)
    problems = runner.check(path, max_bytes=100)
    assert any("error output (ZeroDivisionError)" in p for p in problems)
    assert any("cell 1 was not executed" in p for p in problems)
    assert any("over the" in p for p in problems)


def test_drop_chatter_keeps_real_errors(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import tensorflow", execution_count=1, outputs=[
        nbformat.v4.new_output("stream", name="stderr", text=(
            "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            "I0000 00:00:1795734365.734276   27755 port.cc:153] oneDNN custom operations are on.\n"
            "a real problem\n")),
        nbformat.v4.new_output("stream", name="stderr", text=(
            "I0000 00:00:1795734365.735441   27755 cudart_stub.cc:31] Could not find cuda drivers\n"))])])
    path = tmp_path / "n.ipynb"
    nbformat.write(notebook, path)
    runner.drop_chatter(path)
    outputs = nbformat.read(path, as_version=4).cells[0].outputs
    assert [output["text"] for output in outputs] == ["a real problem\n"]


def test_unknown_setting_and_notebook_are_clear_errors(capsys):
    with pytest.raises(runner.NotebookError, match="unknown setting 'fast'"):
        runner.resolve_setting("fast")
    assert runner.main(["07", "--setting", "smoke"]) == 1
    assert "no notebook source named 07" in capsys.readouterr().err


# --- Each notebook executed at the smoke setting ----------------------------------------------------------------------

def _execute(name, tmp_path):
    setting = runner.resolve_setting("smoke", tmp_path / "runs")
    source = next(source for source in SOURCES if source.stem.startswith(name))
    target = tmp_path / f"{source.stem}.ipynb"
    runner.execute(source, target, setting, timeout=600)
    return nbformat.read(target, as_version=4), tmp_path / "runs" / source.stem, setting


def _table_rows(text, first_column):
    """The Markdown table rows (lists of cells) whose first cell is ``first_column``."""
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith(f"| {first_column} |")]


def test_01_preprocessing(tmp_path):
    notebook, out, _ = _execute("01", tmp_path)
    text = _texts(notebook)
    for figure in ("pairs.png", "blur.png", "augmentations.png"):
        assert (out / figure).stat().st_size > 1000
    assert re.search(r"truncated\.jpg \|[^\n]*\| unreadable", text)
    assert re.search(r"cmyk\.jpg \| JPEG CMYK 451x300 \| RGB uint8 300x451", text)
    throughput = _table_rows(text, "seed") + _table_rows(text, "paper")
    assert len(throughput) == 2 and all(float(row[-1]) > 0 for row in throughput)


def test_02_models_shows_the_checkerboard_and_icnr_removing_it(tmp_path):
    notebook, out, _ = _execute("02", tmp_path)
    text = _texts(notebook)
    scores = {row[0]: float(row[1]) for row in re.findall(r"^\| ([^|]+?) \| ([0-9.]+) \|$", text, re.M)}
    assert scores["sub-pixel, random init"] > 3 * scores["sub-pixel + ICNR"]
    assert (out / "untrained_outputs.png").is_file()
    assert "| vgg54 | block5_conv4 | random |" in text  # Smoke runs offline with VGG_WEIGHTS=None, and says so.


def test_03_srresnet_trains_live_and_the_shipped_model_beats_bicubic(tmp_path):
    notebook, out, setting = _execute("03", tmp_path)
    text = _texts(notebook)
    log = (out / "live" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,") and float(log[-1].split(",")[0]) == setting["LIVE_STEPS"]
    rows = {row[2]: row for row in _table_rows(text, "Set5" if setting["BENCHMARKS"] else "embedded")}
    assert float(rows["SRResNet (shipped)"][3]) > float(rows["bicubic"][3]) + 0.5  # PSNR-Y column.
    for figure in ("live_curve.png", "shipped_curve.png", "zoomed_crops.png"):
        assert (out / figure).is_file()


def test_04_loss_comparison_report(tmp_path):
    notebook, out, setting = _execute("04", tmp_path)
    report = json.loads((out / "report" / "results.json").read_text())
    assert [row["method"] for row in report["rows"]][0] == "bicubic" and len(report["rows"]) == 3
    assert report["random_vgg"] and "The VGG19 weights were random" in _texts(notebook)
    assert (out / "report" / "logits.png").is_file() and report["interpolation_plot"]
    assert _images(notebook) == 5  # Curves, grid, logits, interpolation, perception-distortion plane.


def test_05_evaluation_on_benchmarks_and_a_user_folder(tmp_path):
    notebook, out, setting = _execute("05", tmp_path)
    text = _texts(notebook)
    sets = [Path(folder).parent.name for folder in setting["BENCHMARKS"]] + ["my_photos"]
    for name in sets:
        methods = [row[1] for row in _table_rows(text, name)]
        assert "bicubic" in methods and "SRResNet (shipped)" in methods
    assert (out / "gain_over_bicubic.png").is_file() and (out / "zoomed_comparison.png").is_file()


def test_06_export_reloads_without_sr_lib_and_tiles_match_whole(tmp_path):
    notebook, out, _ = _execute("06", tmp_path)
    text = _texts(notebook)
    assert (out / "srresnet_x4_savedmodel" / "saved_model.pb").is_file()
    # Within one grey level on at most 1 value (pixel) in 10^4 (tests/tolerances.py: kernels round by problem size).
    match = re.search(r"on a 96x96 crop: \(384, 384, 3\), max \|difference\| = (\d+) grey levels on ([0-9.]+)%", text)
    assert match and int(match.group(1)) <= 1 and float(match.group(2)) <= 0.01, match
    tiled = re.search(r"\| largest tiled-whole difference \(grey levels\) \|\s*\| (\d+) \|", text)
    share = re.search(r"\| pixels that differ \(%\) \|\s*\| ([0-9.]+) \|", text)
    assert tiled and int(tiled.group(1)) <= 1 and share and float(share.group(1)) <= 0.01, (tiled, share)
    assert "signatures: ['metadata', 'serving_default', 'upscale_float']" in text
