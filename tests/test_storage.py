"""Remote paths (any tf.io.gfile URL, e.g. gs://), tested on TensorFlow's in-memory file system (ram://): data
folders, run directories, checkpoints and resume; export, evaluate and upscale reading and writing URLs."""

import io
import json
import uuid

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from sr_lib import data
from sr_lib.core import ranges, storage
from sr_lib.evaluation import metrics
from sr_lib.training import phases as training
from sr_lib.training.checkpoint import Checkpointer
from sr_lib.cli import main
from sr_lib.config import Config, ConfigError, get_preset
from sr_lib.evaluation.evaluate import evaluate_images, load_generator
from sr_lib.inference.upscaler import is_saved_model, load_upscaler
from sr_lib.nets.models import make_generator


@pytest.fixture
def ram():
    """A fresh ram:// folder (the in-memory file system is shared by the whole process), removed afterwards."""
    root = storage.URLPath(f"ram://sr_lib_test_{uuid.uuid4().hex}")
    yield root
    storage.rmtree(root)


def _png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _noise(size, seed):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_url_path_keeps_the_url():
    path = storage.URLPath("gs://bucket//runs/x/")
    assert str(path) == "gs://bucket/runs/x"
    assert str(path / "checkpoints" / "latest") == "gs://bucket/runs/x/checkpoints/latest"
    assert path.name == "x" and str(path.parent) == "gs://bucket/runs"
    assert (path / "model.keras").stem == "model" and (path / "model.keras").suffix == ".keras"
    assert isinstance(storage.as_path("ram://a/b"), storage.URLPath)
    assert not isinstance(storage.as_path("runs/a"), storage.URLPath)
    with pytest.raises(TypeError):  # Never silently a local folder named "gs:".
        open(path)


def test_images_are_found_and_decoded_from_a_remote_folder(ram):
    images = {"b.png": _noise(40, 1), "sub/a.PNG": _noise(36, 2), "sub/deeper/c.png": _noise(33, 3)}
    for name, array in images.items():
        (ram / name).parent.mkdir()
        (ram / name).write_bytes(_png(array))
    (ram / "notes.txt").write_text("not an image")
    (ram / ".hidden.png").write_bytes(_png(_noise(40, 4)))
    (ram / ".cache").mkdir()
    (ram / ".cache" / "d.png").write_bytes(_png(_noise(40, 5)))

    found = data.find_images(str(ram))
    # Sorted on the path relative to the folder, as for a local folder; hidden files and folders skipped.
    assert found == [f"{ram}/b.png", f"{ram}/sub/a.PNG", f"{ram}/sub/deeper/c.png"]
    assert data.find_images(str(ram), recursive=False) == [f"{ram}/b.png"]
    decoded = data.resolve_images(str(ram), min_size=0)
    for array, expected in zip(decoded, [images["b.png"], images["sub/a.PNG"], images["sub/deeper/c.png"]]):
        np.testing.assert_array_equal(array, expected)
    np.testing.assert_array_equal(data.decode_image(f"{ram}/b.png"), images["b.png"])
    with pytest.raises(data.DataError, match="image folder not found"):
        data.find_images(str(ram / "missing"))


def test_remote_div2k_layout_is_recognised(ram):
    for split, folder in data.DIV2K_FOLDERS.items():
        (ram / folder).mkdir()
        (ram / folder / f"{split}.png").write_bytes(_png(_noise(32, 0)))
    assert data.is_div2k(str(ram))
    assert data.find_div2k(str(ram), "valid") == [f"{ram}/DIV2K_valid_HR/valid.png"]


def _generator():
    return make_generator(num_blocks=1, channels=8, scale=4)


def test_remote_checkpoints_become_latest_only_when_complete(ram):
    generator = _generator()
    optimizer = keras.optimizers.Adam()
    optimizer.build(generator.trainable_variables)
    checkpointer = Checkpointer(ram / "checkpoints", {"generator": generator}, {"optimizer": optimizer}, keep=2)
    saved = [np.array(w) for w in generator.get_weights()]
    for step in (2, 4, 6):
        checkpointer.save(step, {"best_psnr_y": float(step)})
    assert (ram / "checkpoints" / "latest").read_text().strip() == "ckpt-000000006"
    assert sorted(p.name for p in (ram / "checkpoints").iterdir()) == ["ckpt-000000004", "ckpt-000000006", "latest"]
    assert {p.name for p in (ram / "checkpoints" / "ckpt-000000006").iterdir()} == {
        "generator.weights.h5", "optimizer.npz", "state.json"}

    # An upload interrupted before its state.json: a newer folder that is not a checkpoint, and latest not moved.
    partial = ram / "checkpoints" / "ckpt-000000008"
    partial.mkdir()
    (partial / "generator.weights.h5").write_bytes(b"half an upload")
    assert checkpointer.latest() == ram / "checkpoints" / "ckpt-000000006"
    (ram / "checkpoints" / "latest").write_text("ckpt-000000008\n")  # Even a pointer to it is not trusted.
    assert checkpointer.latest() == ram / "checkpoints" / "ckpt-000000006"

    fresh = _generator()
    fresh_optimizer = keras.optimizers.Adam()
    fresh_optimizer.build(fresh.trainable_variables)
    state = Checkpointer(ram / "checkpoints", {"generator": fresh}, {"optimizer": fresh_optimizer}).restore()
    assert state == {"best_psnr_y": 6.0, "step": 6}
    for a, b in zip(fresh.get_weights(), saved):
        np.testing.assert_array_equal(a, b)


def test_run_directory_on_a_remote_store_is_written_and_resumed(ram):
    for index in range(3):
        (ram / "images" / f"{index}.png").parent.mkdir()
        (ram / "images" / f"{index}.png").write_bytes(_png(_noise(48, index)))
    config = get_preset("ci").replace(**{"data.source": str(ram / "images"), "data.valid_holdout": 1,
                                         "train.pretrain_steps": 2, "train.images_every": 2})
    run = ram / "run"
    first = training.pretrain(config, str(run), verbose=0)
    assert first.step == 2 and first.final_path == run / "generator_final.keras"
    for name in ("config.json", "log.csv", "generator_final.keras", "generator_best_psnr_y.keras",
                 "images/step_000000002.png", "checkpoints/latest", "checkpoints/ckpt-000000002/state.json"):
        assert (run / name).is_file(), name
    assert tf.io.gfile.glob(f"{run}/tensorboard/train/events.out.tfevents*")
    assert Config.from_json(run / "config.json") == config
    assert json.loads((run / "checkpoints" / "ckpt-000000002" / "state.json").read_text())["step"] == 2
    with storage.local_copy(first.final_path) as local:
        first_generator = keras.saving.load_model(local, safe_mode=True)

    # The 4-step run, interrupted after its step-2 checkpoint: re-running resumes at step 2 from the remote checkpoint.
    longer = config.replace(**{"train.pretrain_steps": 4})
    with pytest.raises(ConfigError, match="train.pretrain_steps"):
        training.pretrain(longer, str(run), verbose=0)
    (run / "config.json").write_text(longer.to_json())
    second = training.pretrain(longer, str(run), verbose=0)
    assert second.step == 4
    assert [row["step"] for row in training.read_log(run)] == [2, 4]  # The remote log got its row appended.
    assert (run / "checkpoints" / "latest").read_text().strip() == "ckpt-000000004"
    restored = _generator()
    Checkpointer(run / "checkpoints", {"generator": restored}, {}).restore(run / "checkpoints" / "ckpt-000000002")
    for a, b in zip(restored.get_weights(), first_generator.get_weights()):
        np.testing.assert_array_equal(a, b)
    # A later phase can start from a remote generator.
    gan = training.train_gan(longer.replace(**{"loss.content": "mse", "train.gan_steps": 2}), str(ram / "gan"),
                             second.final_path, verbose=0)
    assert gan.step == 2 and (ram / "gan" / "generator_final.keras").is_file()


# ------------------------------------------------------------------------- export, evaluate, upscale with URLs

def _tiny_x2():
    keras.utils.set_random_seed(5)
    return make_generator(num_blocks=1, channels=8, scale=2, global_residual="bicubic", batch_norm=False)


@pytest.fixture(scope="module")
def remote_export(tmp_path_factory):
    """A .keras generator and its log.csv in a ram:// run folder, exported by the command line to a ram:// folder;
    the destinations of the export's uploads, in order."""
    root = storage.URLPath(f"ram://sr_lib_export_{uuid.uuid4().hex}")
    local = tmp_path_factory.mktemp("model") / "generator_final.keras"
    model = _tiny_x2()
    model.save(local)
    storage.upload(local, root / "run" / local.name)
    (root / "run" / "log.csv").write_text("step,loss,psnr_y\n2,0.5,20.5\n4,0.4,21.75\n")
    uploads = []
    original = storage.upload

    def recording(source, destination):
        uploads.append(str(destination))
        original(source, destination)

    storage.upload = recording
    try:
        code = main(["export", "--model", str(root / "run" / local.name), "--out", str(root / "models" / "tiny")])
    finally:
        storage.upload = original
    assert code == 0
    yield dict(root=root, model_url=root / "run" / local.name, out=root / "models" / "tiny", local_model=local,
               model=model, uploads=uploads)
    storage.rmtree(root)


def test_export_to_a_remote_folder_loads_back_and_matches_keras(remote_export):
    out = remote_export["out"]
    files = {f"{folder[len(str(out)):].strip('/')}/{name}".lstrip("/") for folder, _, names in
             tf.io.gfile.walk(str(out)) for name in names}
    assert {"saved_model.pb", "assets.extra/sr_lib.json", "variables/variables.index"} <= files
    # Every file uploaded once, the metadata and then saved_model.pb (what makes the folder a SavedModel) last.
    uploads = remote_export["uploads"]
    assert sorted(uploads) == sorted(f"{out}/{name}" for name in files)
    assert uploads[-2:] == [f"{out}/assets.extra/sr_lib.json", f"{out}/saved_model.pb"]

    with storage.local_copy(out) as local:  # Folders and sub-folders (variables/) come down.
        loaded = tf.saved_model.load(str(local))
    metadata = json.loads(loaded.metadata().numpy().decode())
    assert metadata == json.loads((out / "assets.extra" / "sr_lib.json").read_text())
    assert metadata["scale"] == 2 and metadata["source_model"] == str(remote_export["model_url"])
    assert metadata["metrics"]["best_psnr_y"]["step"] == 4  # The log.csv beside the remote model was read.

    image = np.random.default_rng(0).integers(0, 256, (1, 13, 17, 3), dtype=np.uint8)
    keras_graph = tf.function(lambda x: remote_export["model"](x, training=False))
    expected = ranges.hr_to_uint8(keras_graph(tf.constant(image.astype(np.float32) / 255.0))).numpy()
    exported = loaded.serving_default(image).numpy()
    assert exported.shape == (1, 26, 34, 3)
    np.testing.assert_array_equal(exported, expected)
    # The same folder, read by sr_lib straight from its URL.
    upscaler = load_upscaler(str(out))
    assert upscaler.name == "tiny" and upscaler.scale == 2 and upscaler.field is not None
    np.testing.assert_array_equal(upscaler.upscale_uint8(image).numpy(), expected)


def test_a_failed_remote_export_never_looks_complete_and_can_be_rerun(ram, tmp_path, monkeypatch, capsys):
    _tiny_x2().save(tmp_path / "g.keras")
    out = ram / "models" / "tiny"
    original = storage.upload

    def failing(source, destination):
        if storage.as_path(destination).name == "sr_lib.json":  # The metadata: everything else is already there.
            (ram / "seen_before_failure.txt").write_text(
                "\n".join(sorted(name for _, _, names in tf.io.gfile.walk(str(out)) for name in names)))
            raise OSError(f"connection reset while writing {destination}")
        original(source, destination)

    monkeypatch.setattr(storage, "upload", failing)
    assert main(["export", "--model", str(tmp_path / "g.keras"), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "sr_lib.json" in error and "Traceback" not in error
    seen = (ram / "seen_before_failure.txt").read_text().split("\n")
    assert "variables.index" in seen and "saved_model.pb" not in seen  # Mid-upload: never a SavedModel.
    assert not out.exists()  # What was uploaded is removed ...
    monkeypatch.undo()
    assert main(["export", "--model", str(tmp_path / "g.keras"), "--out", str(out)]) == 0  # ... so a re-run works.
    assert is_saved_model(out)
    # A half-written folder (no saved_model.pb) is refused by name, not loaded.
    (ram / "half" / "variables").mkdir()
    (ram / "half" / "variables" / "variables.index").write_bytes(b"partial")
    with pytest.raises(ValueError, match=f"{ram}/half is a folder but not a SavedModel"):
        load_upscaler(str(ram / "half"))


def test_evaluate_reads_models_and_a_benchmark_from_a_remote_store(remote_export, ram, tmp_path):
    hr = {"a": _noise(40, 11)[:, :36], "b": _noise(44, 12)}
    for name, array in hr.items():
        storage.write_bytes(ram / "Set2" / "HR" / f"{name}.png", _png(array))
    out = ram / "eval"
    assert main(["evaluate", "--model", str(remote_export["model_url"]), "--model", str(remote_export["out"]),
                 "--data", str(ram / "Set2" / "HR"), "--save-images", "--out", str(out)]) == 0
    table = json.loads((out / "evaluation.json").read_text())
    assert [(row["dataset"], row["method"]) for row in table] == [
        ("Set2", "bicubic"), ("Set2", "generator_final.keras"), ("Set2", "tiny")]
    assert all([image["name"] for image in row["per_image"]] == ["a", "b"] for row in table)
    # The same numbers as the same model evaluated on the same images locally.
    local = evaluate_images(list(hr.values()), 2, load_generator(remote_export["local_model"]), names=list(hr))
    for got, want in zip(table[1]["per_image"], local.per_image):
        for key in ("psnr_y", "ssim_y", "psnr_rgb"):
            assert got[key] == pytest.approx(want[key], abs=1e-6)
    for key in ("psnr_y", "ssim_y"):
        assert table[2]["means"][key] == pytest.approx(table[1]["means"][key], abs=1e-3)
    assert table[0]["means"]["psnr_y"] != table[1]["means"]["psnr_y"]  # Bicubic is another method: it could differ.
    # The SR image written to the store gives the table's number to anyone who measures it.
    sr = data.decode_image(f"{out}/images/Set2/tiny/b.png")
    assert sr.shape == (44, 44, 3)
    assert float(metrics.psnr_y(hr["b"], sr, crop_border=2)) == pytest.approx(table[2]["per_image"][1]["psnr_y"],
                                                                            abs=1e-4)


@pytest.mark.parametrize("argv, message", [
    (["--model", "ram://sr_lib_no_such_store/g.keras", "--data", "DATA"], "ram://sr_lib_no_such_store/g.keras"),
    (["--model", "nosuchfs://bucket/g.keras", "--data", "DATA"], "nosuchfs://bucket/g.keras"),
    (["--data", "ram://sr_lib_no_such_store/Set5"], "ram://sr_lib_no_such_store/Set5"),
    (["--data", "nosuchfs://bucket/Set5"], "nosuchfs://bucket/Set5"),
    (["--data", "DATA", "--out", "nosuchfs://bucket/eval"], "nosuchfs://bucket/eval"),
])
def test_bad_remote_paths_in_evaluate_are_one_line_errors(argv, message, ram, capsys):
    storage.write_bytes(ram / "a.png", _png(_noise(40, 1)))
    assert main(["evaluate"] + [str(ram) if arg == "DATA" else arg for arg in argv]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and message in error and len(error.splitlines()) == 1, error


@pytest.mark.filterwarnings("ignore:oneDNN is on")
def test_upscale_reads_from_and_writes_to_a_remote_store(remote_export, ram, tmp_path, capsys):
    images = {"a.png": _noise(21, 1), "nested/b.png": _noise(18, 2)}
    for name, array in images.items():
        storage.write_bytes(ram / "in" / name, _png(array))
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(tmp_path / "in" / name)
    storage.write_bytes(ram / "in" / "broken.png", b"not an image")
    code = main(["upscale", "--model", str(remote_export["out"]), str(ram / "in"), str(ram / "missing.png"),
                 "nosuchfs://bucket/c.png", "--out", str(ram / "out"), "--tile", "7", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 2
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    for name in (f"{ram}/in/broken.png", f"{ram}/missing.png", "nosuchfs://bucket/c.png"):
        assert sum(name in line for line in errors) == 1, (name, errors)
    assert "Traceback" not in captured.err and "upscaled 2 image(s) x2" in captured.out
    written = sorted(name for _, _, names in tf.io.gfile.walk(str(ram / "out")) for name in names)
    assert written == ["a_x2.png", "b_x2.png"] and (ram / "out" / "nested" / "b_x2.png").is_file()  # Mirrored.

    # The same images, model and tiles on local paths: the same pixels.
    assert main(["upscale", "--model", str(remote_export["local_model"]), str(tmp_path / "in"), "--out",
                 str(tmp_path / "out"), "--tile", "7", "--no-progress", "--precision", "float32"]) == 0  # As exported.
    for name, array in images.items():
        target = name.replace(".png", "_x2.png")
        remote = data.decode_image(f"{ram}/out/{target}")
        assert remote.shape == (array.shape[0] * 2, array.shape[1] * 2, 3)
        np.testing.assert_array_equal(remote, np.asarray(Image.open(tmp_path / "out" / target)))


@pytest.mark.filterwarnings("ignore:oneDNN is on")
def test_upscale_with_a_bad_remote_model_or_output_is_a_one_line_error(remote_export, ram, capsys):
    storage.write_bytes(ram / "a.png", _png(_noise(16, 1)))
    cases = [(f"{ram}/no_model.keras", str(ram / "out"), f"{ram}/no_model.keras"),
             ("nosuchfs://bucket/g.keras", str(ram / "out"), "nosuchfs://bucket/g.keras"),
             (str(remote_export["out"]), "nosuchfs://bucket/out", "nosuchfs://bucket/out")]
    for model, out, message in cases:
        assert main(["upscale", "--model", model, str(ram / "a.png"), "--out", out, "--no-progress"]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("error: ") and message in error and len(error.splitlines()) == 1, error
    assert not (ram / "out").exists()


def test_train_into_an_unknown_url_scheme_is_a_one_line_error(capsys):
    assert main(["train", "--preset", "ci", "--phase", "pretrain", "--out", "nosuchfs://bucket/run"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "nosuchfs://bucket/run" in error and len(error.splitlines()) == 1, error
