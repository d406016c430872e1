"""The comparison's GAN-health columns: the collapse flag, starting from a given pretrained generator; a comparison
in a remote folder (ram://), resumed, and written by the chief alone."""

import contextlib
import io
import json
import uuid

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from sr_lib.core import storage
from sr_lib.training import distribute, experiment, phases as training
from sr_lib.cli import main
from sr_lib.config import Config, ConfigError, get_preset
from sr_lib.nets.models import make_generator


def _crops(seed=0):
    return np.random.default_rng(seed).uniform(size=(4, 16, 16, 3))


def test_constant_output_is_flagged_collapsed():
    hr = _crops()
    constant = np.zeros_like(hr)  # An all-black generator, as the random-VGG54 variant produced.
    assert experiment.collapse_status(constant, hr, psnr_y=25.0, bicubic_psnr_y=24.0) == "collapsed"


def test_a_good_output_is_ok_and_a_far_worse_one_is_collapsed():
    hr = _crops()
    good = np.clip(hr + np.random.default_rng(1).normal(0, 0.02, hr.shape), 0, 1)
    assert experiment.collapse_status(good, hr, psnr_y=26.0, bicubic_psnr_y=24.0) == "ok"
    margin = experiment.COLLAPSE_PSNR_MARGIN_DB
    assert experiment.collapse_status(good, hr, psnr_y=24.0 - margin - 0.1, bicubic_psnr_y=24.0) == "collapsed"
    assert experiment.collapse_status(good, hr, psnr_y=float("nan"), bicubic_psnr_y=24.0) == "collapsed"


def test_pretrained_generator_of_another_architecture_is_refused_before_training(tmp_path):
    config = get_preset("ci")
    other = make_generator(num_blocks=2, channels=8, scale=4)
    other.save(tmp_path / "other.keras")
    with pytest.raises(ConfigError, match="model"):
        experiment.run_comparison(config, tmp_path / "cmp", experiment.get_variants(["srresnet_mse"]),
                                  pretrained=tmp_path / "other.keras")
    assert not (tmp_path / "cmp").exists()


# ------------------------------------------------------------------ a comparison in a remote folder (ram://)

def _png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _files(root) -> dict:
    """Every file under a ram:// folder: relative path -> bytes."""
    return {f"{folder}/{name}"[len(str(root)) + 1:]: tf.io.gfile.GFile(f"{folder}/{name}", "rb").read()
            for folder, _, names in tf.io.gfile.walk(str(root)) for name in names}


REPORT_FILES = {"results.md", "results.csv", "results.json", "psnr_curves.png", "comparison_grid.png",
                "interpolation.png", "perception_distortion.png", "zoomed_crops.png"}


@pytest.fixture(scope="module")
def remote_comparison(tmp_path_factory):
    """`compare` of two variants from a pretrained generator, all in ram://: its argv, the uploads of its report (in
    order), its stdout, and its files."""
    root = storage.URLPath(f"ram://sr_lib_compare_{uuid.uuid4().hex}")
    local = tmp_path_factory.mktemp("pretrained") / "g.keras"
    keras.utils.set_random_seed(3)
    training.build_generator(get_preset("ci")).save(local)
    storage.upload(local, root / "pretrained" / "g.keras")
    storage.write_bytes(root / "Set1" / "HR" / "a.png",
                        _png(np.random.default_rng(0).integers(0, 256, (36, 40, 3), dtype=np.uint8)))
    argv = ["compare", "--preset", "ci", "--variants", "srresnet_mse,perpix_modified", "--out", str(root / "cmp"),
            "--pretrained", str(root / "pretrained" / "g.keras"), "--benchmark", str(root / "Set1" / "HR"),
            "--set", "train.gan_steps=2"]
    uploads, original = [], storage.upload

    def recording(source, destination):
        uploads.append(str(destination))
        original(source, destination)

    storage.upload = recording
    try:
        with contextlib.redirect_stdout(io.StringIO()) as stdout:
            code = main(argv)
    finally:
        storage.upload = original
    assert code == 0
    yield dict(root=root, out=root / "cmp", argv=argv, uploads=uploads, stdout=stdout.getvalue(),
               files=_files(root / "cmp"))
    storage.rmtree(root)


def test_compare_writes_its_report_to_a_remote_folder(remote_comparison):
    out, files = remote_comparison["out"], remote_comparison["files"]
    assert {name for name in files if name.startswith("report/")} == {f"report/{name}" for name in REPORT_FILES}
    # The report was made locally and uploaded file by file, results.json (what a reader waits for) last.
    uploads = [name for name in remote_comparison["uploads"] if name.startswith(f"{out}/report/")]
    assert sorted(uploads) == sorted(f"{out}/report/{name}" for name in REPORT_FILES)
    assert uploads[-1] == remote_comparison["uploads"][-1] == f"{out}/report/results.json"
    report = json.loads(files["report/results.json"])
    assert [row["method"] for row in report["rows"]][:2] == ["bicubic", "SRResNet (MSE)"]
    assert report["rows"][2]["method"].startswith("Per-Pix + modified")
    assert all(isinstance(row["validation/psnr_y"], float) and isinstance(row["Set1/psnr_y"], float)
               for row in report["rows"])
    assert report["table"] == f"{out}/report/results.md" and report["grid"] == f"{out}/report/comparison_grid.png"
    assert report["interpolation"]["gan_variant"] == "Per-Pix + modified"
    # NIQE: a column per set, NaN (null) where the images are too small for it (ci's crops, the 36x40 Set1 image),
    # and the figure drawn anyway, saying why it has no NIQE.
    assert all(row["validation/niqe"] is None and row["Set1/niqe"] is None for row in report["rows"])
    assert report["hr_row"]["method"] == "HR" and report["hr_row"]["Set1/psnr_y"] is None
    assert report["perception_distortion"] == f"{out}/report/perception_distortion.png"
    assert len(report["niqe_notes"]) == 2 and "Set1: undefined for every image" in report["niqe_notes"][1]
    # The table printed is the one uploaded; the runs and the base config are in the remote folder too.
    assert files["report/results.md"].decode() in remote_comparison["stdout"]
    assert f"report: {out}/report" in remote_comparison["stdout"]
    assert Config.from_json(out / "config.json").train.gan_steps == 2
    for slug in ("srresnet_mse", "perpix_modified"):
        assert [row["step"] for row in training.read_log(out / "variants" / slug)] == [2]
        assert f"variants/{slug}/generator_final.keras" in files
    assert not any(name.startswith("pretrain/") for name in files)  # --pretrained skips phase 1.


def test_compare_in_a_remote_folder_resumes_without_retraining(remote_comparison, monkeypatch, capsys):
    out, before = remote_comparison["out"], remote_comparison["files"]

    def no_fit(self, *args, **kwargs):
        raise AssertionError(f"{type(self).__name__} trained again")

    for trainer in (training.PixelTrainer, training.SRGAN):
        monkeypatch.setattr(trainer, "fit", no_fit)
    assert main(remote_comparison["argv"]) == 0
    after = _files(out)
    for slug in ("srresnet_mse", "perpix_modified"):
        for name in ("log.csv", "checkpoints/latest", "config.json"):  # log.csv rows hold their wall time.
            assert after[f"variants/{slug}/{name}"] == before[f"variants/{slug}/{name}"], (slug, name)
    assert json.loads(after["report/results.json"])["rows"] == json.loads(before["report/results.json"])["rows"]
    assert capsys.readouterr().out.count("# Loss comparison") == 1


def test_only_the_chief_writes_the_comparison_and_the_other_workers_read_its_report(remote_comparison, monkeypatch,
                                                                                      capsys):
    """A non-chief worker of a multi-worker job, simulated in-process: it goes through every run (finished here), waits
    for the chief at the end, returns the chief's report and writes nothing."""
    out, before = remote_comparison["out"], _files(remote_comparison["out"])
    waits = []
    monkeypatch.setattr(distribute, "is_chief", lambda strategy: False)
    monkeypatch.setattr(experiment, "_wait_for_chief", lambda strategy, out_dir: waits.append(str(out_dir)))

    def no_report(*args, **kwargs):
        raise AssertionError("a non-chief worker computed the report")

    monkeypatch.setattr(experiment, "write_report", no_report)
    writes = []  # Every write to a remote store goes through one of these; a rewrite with the same bytes counts too.
    for owner, name in ((storage.URLPath, "write_bytes"), (storage, "upload"), (storage, "rmtree"),
                        (storage, "remove")):
        monkeypatch.setattr(owner, name, lambda *args, _name=name, **kwargs: writes.append((_name, args)))
    assert main(remote_comparison["argv"]) == 0
    assert waits == [str(out)]
    assert writes == [] and _files(out) == before
    assert before["report/results.md"].decode() in capsys.readouterr().out  # The chief's table, read back.

    # A worker that cannot see the chief's folder finds no report: one line saying why.
    monkeypatch.undo()
    monkeypatch.setattr(distribute, "is_chief", lambda strategy: False)
    storage.remove(out / "report" / "results.json")
    try:
        assert main(remote_comparison["argv"]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("error: the comparison report") and f"{out}/report/results.json" in error
        assert "storage every worker sees" in error and len(error.splitlines()) == 1, error
    finally:
        storage.write_bytes(out / "report" / "results.json", before["report/results.json"])


@pytest.mark.parametrize("args, message", [
    (["--out", "nosuchfs://bucket/cmp"], "nosuchfs://bucket/cmp"),
    (["--pretrained", "ram://sr_lib_no_such_store/g.keras"], "ram://sr_lib_no_such_store/g.keras"),
    (["--pretrained", "nosuchfs://bucket/g.keras"], "nosuchfs://bucket/g.keras"),
    (["--benchmark", "nosuchfs://bucket/Set5"], "nosuchfs://bucket/Set5"),
])
def test_bad_remote_paths_in_compare_are_one_line_errors_before_any_work(args, message, capsys):
    out = storage.URLPath(f"ram://sr_lib_compare_{uuid.uuid4().hex}")
    argv = ["compare", "--preset", "ci", "--variants", "srresnet_mse", "--out", str(out)] + args
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and message in error and len(error.splitlines()) == 1, error
    assert not out.exists()


def test_a_rerun_without_a_sweep_removes_the_earlier_interpolation_plot(tmp_path, capsys):
    keras.utils.set_random_seed(3)
    training.build_generator(get_preset("ci")).save(tmp_path / "g.keras")
    argv = ["compare", "--preset", "ci", "--out", str(tmp_path / "cmp"), "--pretrained", str(tmp_path / "g.keras"),
            "--set", "train.gan_steps=2", "--variants"]
    assert main(argv + ["srresnet_mse,perpix_modified"]) == 0
    assert (tmp_path / "cmp" / "report" / "interpolation.png").is_file()
    assert main(argv + ["srresnet_mse"]) == 0  # One variant: no GAN to blend with, so no sweep this time.
    report = json.loads((tmp_path / "cmp" / "report" / "results.json").read_text())
    assert report["interpolation_plot"] is None and [row["method"] for row in report["rows"]] == [
        "bicubic", "SRResNet (MSE)"]
    assert not (tmp_path / "cmp" / "report" / "interpolation.png").exists()
