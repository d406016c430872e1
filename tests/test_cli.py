"""The command line and the comparison report, end to end at the ci preset."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from sr_lib.evaluation import evaluate as evaluate_lib
from sr_lib.cli import main
from sr_lib.data import load_images


@pytest.fixture(scope="module")
def benchmark_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("Set5", numbered=False) / "HR"  # The sr-benchmarks layout.
    folder.mkdir()
    Image.fromarray(skdata.astronaut()[100:150, 120:174]).save(folder / "a.png")
    Image.fromarray(skdata.coffee()[50:98, 200:260]).save(folder / "b.png")
    return folder


def test_compare_writes_table_curves_and_grid(tmp_path, benchmark_folder, capsys):
    out = tmp_path / "compare"
    code = main(["compare", "--preset", "ci", "--variants", "srresnet_mse,vgg54_modified,perpix_wasserstein_gp",
                 "--benchmark", str(benchmark_folder), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"run directory: {out}" in printed
    report = json.loads((out / "report" / "results.json").read_text())
    methods = [row["method"] for row in report["rows"]]
    assert methods == ["bicubic", "SRResNet (MSE)", "SRGAN (VGG54 + modified) (random VGG)",
                       "Per-Pix + Wasserstein-GP (random VGG)"]
    assert report["random_vgg"] is True
    for row in report["rows"]:
        for key in ("validation/psnr_y", "validation/ssim_y", "Set5/psnr_y", "Set5/color_shift"):
            assert np.isfinite(row[key])
    # GAN health: a status per variant (by the stated criterion), the discriminator's final logits for GAN rows.
    statuses = {row["method"]: row["status"] for row in report["rows"]}
    assert statuses["bicubic"] == "" and all(statuses[m] in ("ok", "collapsed") for m in methods[1:])
    assert report["rows"][1]["d_real_logit"] is None  # The MSE row has no discriminator.
    assert all(np.isfinite(row["d_real_logit"]) and np.isfinite(row["d_fake_logit"]) for row in report["rows"][2:])
    assert "collapse" in report["rows"][2]["note"]  # Random-VGG54 without a pixel term, said in words.
    assert "collapsed:" in report["collapse_criterion"]
    # The network-interpolation sweep between the MSE generator and a GAN variant, alpha 0 ... 1.
    sweep = report["interpolation"]
    assert sweep["alphas"] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0] and set(sweep["psnr_y"]) == {"validation", "Set5"}
    assert sweep["psnr_y"]["validation"][0] == pytest.approx(report["rows"][1]["validation/psnr_y"], abs=1e-3)
    table = (out / "report" / "results.md").read_text()
    assert "random" in table and "| bicubic |" in table
    for name in ("psnr_curves.png", "comparison_grid.png", "interpolation.png"):
        with Image.open(out / "report" / name) as image:
            assert image.format == "PNG" and image.size[0] > 100
    # Re-running resumes: every run is finished, so nothing trains again and the same table comes out.
    assert main(["compare", "--preset", "ci", "--variants", "srresnet_mse,vgg54_modified,perpix_wasserstein_gp",
                 "--benchmark", str(benchmark_folder), "--out", str(out)]) == 0
    again = json.loads((out / "report" / "results.json").read_text())
    assert again["rows"] == report["rows"]

    # evaluate on the same folder gives the numbers of the metrics module for that generator.
    model = out / "variants" / "srresnet_mse" / "generator_final.keras"
    assert main(["evaluate", "--model", str(model), "--data", str(benchmark_folder), "--out", str(tmp_path / "ev")]) == 0
    evaluated = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    import keras

    images, _ = load_images(sorted(str(p) for p in benchmark_folder.iterdir()))
    direct = evaluate_lib.evaluate_images(images, 4, keras.saving.load_model(model, safe_mode=True))
    assert evaluated[1]["means"]["psnr_y"] == pytest.approx(direct.means["psnr_y"], abs=1e-4)
    assert evaluated[0]["method"] == "bicubic"

    # A fresh process, as a user runs it: the saved generator's custom layers must resolve without any prior import.
    done = subprocess.run([sys.executable, "-m", "sr_lib", "evaluate", "--model", str(model), "--data",
                           str(benchmark_folder), "--out", str(tmp_path / "ev2")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    fresh = json.loads((tmp_path / "ev2" / "evaluation.json").read_text())
    assert fresh[1]["means"]["psnr_y"] == pytest.approx(direct.means["psnr_y"], abs=1e-4)


@pytest.fixture(scope="module")
def niqe_folder(tmp_path_factory):
    """HR images NIQE can score at x4 (200 px: two 96-px blocks after the 4-px border)."""
    folder = tmp_path_factory.mktemp("Set2", numbered=False) / "HR"
    folder.mkdir()
    Image.fromarray(skdata.astronaut()[100:300, 150:350]).save(folder / "astronaut.png")
    Image.fromarray(skdata.coffee()[100:300, 200:400]).save(folder / "coffee.png")
    return folder


def test_evaluate_reports_niqe_for_every_method_and_an_hr_row(niqe_folder, tmp_path, capsys):
    from sr_lib.config import get_preset
    from sr_lib.evaluation import niqe as niqe_lib
    from sr_lib.training.phases import build_generator

    build_generator(get_preset("ci")).save(tmp_path / "g.keras")
    assert main(["evaluate", "--model", str(tmp_path / "g.keras"), "--data", str(niqe_folder), "--out",
                 str(tmp_path / "ev")]) == 0
    printed = capsys.readouterr().out
    entries = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert [(e["dataset"], e["method"]) for e in entries] == [("Set2", "bicubic"), ("Set2", "g.keras"), ("Set2", "HR")]
    for entry in entries:
        assert {"psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "color_shift", "niqe"} <= set(entry["means"])
        assert [row["name"] for row in entry["per_image"]] == ["astronaut", "coffee"]
        assert all(row["niqe"] > 0 for row in entry["per_image"])
        assert entry["means"]["niqe"] == pytest.approx(np.mean([row["niqe"] for row in entry["per_image"]]))
    hr = entries[2]
    # HR against itself measures nothing: NaN, written as null.
    assert all(hr["means"][key] is None for key in ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "color_shift"))
    assert hr["per_image"][0]["psnr_y"] is None
    # The HR row is the images' own NIQE with the protocol's border; bicubic x4 scores worse (higher).
    astronaut = np.asarray(Image.open(niqe_folder / "astronaut.png"))
    assert hr["per_image"][0]["niqe"] == pytest.approx(niqe_lib.niqe(astronaut, border=4, gray="ycbcr"), abs=1e-9)
    assert entries[0]["means"]["niqe"] > hr["means"]["niqe"]
    header, rule, *lines = printed.split("\n")[:5]
    assert header.split()[-1] == "niqe"
    hr_line = next(line for line in lines if line.split()[1] == "HR")
    assert hr_line.split()[2:7] == ["—"] * 5 and float(hr_line.split()[7]) == pytest.approx(hr["means"]["niqe"], abs=1e-4)

    # --no-niqe: the same table without the column, and no HR row (it holds nothing else).
    assert main(["evaluate", "--model", str(tmp_path / "g.keras"), "--data", str(niqe_folder), "--no-niqe", "--out",
                 str(tmp_path / "fast")]) == 0
    assert "niqe" not in capsys.readouterr().out.split("\n")[0]
    fast = json.loads((tmp_path / "fast" / "evaluation.json").read_text())
    assert [e["method"] for e in fast] == ["bicubic", "g.keras"]
    assert all("niqe" not in e["means"] and all("niqe" not in row for row in e["per_image"]) for e in fast)
    assert fast[1]["means"]["psnr_y"] == pytest.approx(entries[1]["means"]["psnr_y"], abs=1e-9)


@pytest.mark.parametrize("argv, message", [
    (["train", "--preset", "ci", "--set", "data.scale=5"], "data.scale"),
    (["train", "--preset", "ci", "--set", "train.learnin_rate=1"], "train.learnin_rate"),
    (["train", "--preset", "nope"], "unknown preset"),
    (["train", "--preset", "ci", "--data", "/no/such/folder"], "/no/such/folder"),
    (["evaluate", "--model", "/no/model.keras", "--data", "."], "/no/model.keras"),
    (["compare", "--preset", "ci", "--variants", "srresnet_mse,gan"], "unknown variant"),
    (["evaluate", "--model", "CORRUPT", "--data", "."], "could not load the model"),
])
def test_bad_input_is_a_clear_error(argv, message, capsys, tmp_path):
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"PK\x03\x04 not really a keras file")
    argv = [str(corrupt) if arg == "CORRUPT" else arg for arg in argv]
    assert main(argv + ["--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and "Traceback" not in error


@pytest.mark.parametrize("command", ["train", "compare", "evaluate"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "--" in capsys.readouterr().out


def test_benchmark_names_stay_aligned_past_a_bad_file(tmp_path):
    from sr_lib.evaluation.evaluate import load_benchmark

    (tmp_path / "a_broken.png").write_bytes(b"not an image")
    Image.fromarray(skdata.astronaut()[:40, :40]).save(tmp_path / "b.png")
    Image.fromarray(skdata.coffee()[:40, :48]).save(tmp_path / "c.png")
    with pytest.warns(UserWarning, match="a_broken.png"):
        names, images = load_benchmark(tmp_path)
    assert names == ["b", "c"]
    assert [image.shape for image in images] == [(40, 40, 3), (40, 48, 3)]
