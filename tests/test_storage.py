"""Remote paths (any tf.io.gfile URL, e.g. gs://), tested on TensorFlow's in-memory file system (ram://): data
folders, run directories, checkpoints and resume."""

import io
import json
import uuid

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from sr_lib import data, storage, training
from sr_lib.checkpoint import Checkpointer
from sr_lib.config import Config, ConfigError, get_preset
from sr_lib.models import make_generator


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
