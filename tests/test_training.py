"""Training: both phases learn, the GAN step updates the right variables, resume, divergence, mixed precision."""

import math
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from sr_lib import losses as losses_lib
from sr_lib.training import phases as training
from sr_lib.training.checkpoint import Checkpointer
from sr_lib.config import ConfigError, get_preset
from sr_lib.nets import vgg
from sr_lib.nets.models import make_discriminator, make_generator
from tolerances import skip_if_onednn_bf16_hidden


@pytest.fixture(scope="module")
def train_data():
    return training.prepare_data(get_preset("ci"))


def test_pretraining_lowers_the_pixel_loss(tmp_path, train_data):
    config = get_preset("ci").replace(**{"train.pretrain_steps": 40, "train.gan_steps": 40, "train.validate_every": 20,
                                         "train.images_every": 40, "train.learning_rate": 2e-3})
    result = training.pretrain(config, tmp_path / "run", train_data, verbose=0)
    log = training.read_log(tmp_path / "run")
    assert [row["step"] for row in log] == [20, 40]
    # Each row's loss is the mean over its 20 steps: the second 20 steps have a lower mean loss.
    assert log[-1]["loss"] < 0.8 * log[0]["loss"]
    trained = keras.saving.load_model(result.final_path, safe_mode=True)
    assert getattr(trained, "optimizer", None) is None  # The saved generator holds the network alone.
    for name in ("config.json", "log.csv", "generator_final.keras", "generator_best_psnr_y.keras"):
        assert (tmp_path / "run" / name).is_file()
    assert list((tmp_path / "run" / "images").glob("step_*.png"))
    assert list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents*"))
    assert {"psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "learning_rate"} <= set(log[0])


def _tiny_gan(adversarial="modified", g_rate=1e-3, d_rate=1e-3, gp_weight=0.0):
    generator = make_generator(num_blocks=1, channels=8, scale=4)
    discriminator = make_discriminator(hr_size=32, channels=4)
    adversarial_loss = losses_lib.get_adversarial_loss(adversarial)
    objective = losses_lib.GeneratorLoss(losses_lib.pixel_mse, adversarial_loss, adversarial_weight=1e-3)
    gan = training.SRGAN(generator, discriminator)
    gan.compile(keras.optimizers.Adam(g_rate), keras.optimizers.Adam(d_rate), objective, adversarial_loss, gp_weight)
    return gan


def _batch(train_data):
    return tf.constant(train_data.valid_lr[:1]), tf.constant(train_data.valid_hr[:1])


def _snapshot(model):
    return [np.array(v) for v in model.trainable_variables]


def _changed(before, model):
    return [not np.array_equal(a, np.array(b)) for a, b in zip(before, model.trainable_variables)]


@pytest.mark.parametrize("g_rate, d_rate", [(1e-3, 1e-3), (0.0, 1e-3), (1e-3, 0.0)])
def test_gan_step_updates_each_network_with_its_own_optimizer(train_data, g_rate, d_rate):
    gan = _tiny_gan(g_rate=g_rate, d_rate=d_rate)
    lr, hr = _batch(train_data)
    g_before, d_before = _snapshot(gan.generator), _snapshot(gan.discriminator)
    logs = gan.train_step((lr, hr))
    g_changed, d_changed = _changed(g_before, gan.generator), _changed(d_before, gan.discriminator)
    # With a zero rate, that network must not move at all; otherwise (nearly) every variable moves.
    assert all(g_changed) if g_rate else not any(g_changed)
    assert all(d_changed) if d_rate else not any(d_changed)
    assert {"g_loss", "content_loss", "adversarial_loss", "d_loss", "d_real_logit", "d_fake_logit"} <= set(logs)


def test_gan_step_with_gradient_penalty_in_tf_function(train_data):
    gan = _tiny_gan(adversarial="wasserstein_gp", gp_weight=10.0)
    step = tf.function(gan.train_step)
    logs = step(_batch(train_data))
    assert math.isfinite(float(logs["d_loss_gp"])) and float(logs["d_loss_gp"]) > 0


def test_gan_phase_lowers_the_content_loss(tmp_path, train_data):
    config = get_preset("ci").replace(**{"loss.content": "mse", "loss.adversarial": "least_squares",
                                         "train.gan_steps": 40, "train.pretrain_steps": 40, "train.validate_every": 20,
                                         "train.images_every": 40, "train.learning_rate": 2e-3,
                                         "train.gan_decay_step": 1000})
    result = training.train_gan(config, tmp_path / "gan", None, train_data, verbose=0)
    log = training.read_log(tmp_path / "gan")
    assert log[-1]["content_loss"] < 0.8 * log[0]["content_loss"]
    assert all(math.isfinite(row["d_loss"]) for row in log)  # A GAN's D loss need not fall; it must stay finite.
    assert {"d_loss", "d_real_logit", "d_fake_logit", "adversarial_loss"} <= set(log[0])
    assert result.step == 40
    state = Checkpointer(tmp_path / "gan" / "checkpoints", {}, {}).latest()
    assert state.name == "ckpt-000000040"
    assert {p.name for p in state.iterdir()} >= {"generator.weights.h5", "discriminator.weights.h5",
                                                 "g_optimizer.npz", "d_optimizer.npz", "state.json"}


def test_resume_continues_at_the_same_step_with_the_same_weights(tmp_path, train_data):
    config = get_preset("ci").replace(**{"loss.content": "mse", "loss.adversarial": "modified"})
    run = tmp_path / "gan"
    first = training.train_gan(config.replace(**{"train.gan_steps": 2}), run, None, train_data, verbose=0)
    assert first.step == 2
    with pytest.raises(ConfigError, match="train.gan_steps"):  # The config differs: never mix two runs silently.
        training.train_gan(config, run, None, train_data, verbose=0)

    # Simulate an interrupted 4-step run: same directory, the 4-step config, one checkpoint at step 2.
    (run / "config.json").write_text(config.to_json())
    interrupted = keras.saving.load_model(first.final_path)
    second = training.train_gan(config, run, None, train_data, verbose=0)
    log = training.read_log(run)
    assert [row["step"] for row in log] == [2, 4]
    assert second.step == 4
    # The resumed run started from the checkpointed weights, not from a fresh generator: restoring the step-2
    # checkpoint into a fresh model gives the interrupted run's weights exactly.
    fresh = make_generator(num_blocks=1, channels=8, scale=4)
    discriminator = make_discriminator(hr_size=32, channels=4)
    checkpointer = Checkpointer(run / "checkpoints", {"generator": fresh, "discriminator": discriminator}, {})
    state = checkpointer.restore(run / "checkpoints" / "ckpt-000000002")
    assert state["step"] == 2
    for a, b in zip(fresh.get_weights(), interrupted.get_weights()):
        np.testing.assert_array_equal(a, b)
    # The resumed run's optimizer continued counting from the checkpointed step.
    with np.load(run / "checkpoints" / "ckpt-000000004" / "g_optimizer.npz") as stored:
        assert int(stored["v00000"]) == 4


def test_kill_9_then_resume(tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "sr_lib", "train", "--preset", "ci", "--phase", "pretrain", "--out", str(run),
               "--set", "train.pretrain_steps=4000", "--set", "train.validate_every=2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    latest = run / "pretrain" / "checkpoints" / "latest"
    deadline = time.time() + 120
    while time.time() < deadline and not (latest.is_file() and latest.read_text().strip() >= "ckpt-000000006"):
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert latest.is_file(), "no checkpoint was written before the kill"
    checkpoints = Checkpointer(run / "pretrain" / "checkpoints", {}, {})
    killed_at = int(checkpoints.latest().name.split("-")[1])
    assert killed_at >= 6
    # Resume in-process with a short budget past the kill point: it starts from the latest complete checkpoint.
    config = get_preset("ci").replace(**{"train.pretrain_steps": killed_at + 2, "train.validate_every": 2})
    (run / "pretrain" / "config.json").write_text(config.to_json())
    result = training.pretrain(config, run / "pretrain", verbose=0)
    assert result.step == killed_at + 2
    assert training.read_log(run / "pretrain")[-1]["step"] == killed_at + 2


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, train_data, monkeypatch):
    real = training.data_lib.make_train_dataset

    def poisoned(*args, **kwargs):  # HR turns to NaN from the 4th batch on.
        dataset = real(*args, **kwargs).enumerate()
        return dataset.map(lambda i, pair: (pair[0], tf.where(i >= 3, np.nan, pair[1])))

    monkeypatch.setattr(training.data_lib, "make_train_dataset", poisoned)
    config = get_preset("ci").replace(**{"train.pretrain_steps": 6})
    with pytest.raises(training.TrainingDivergedError, match=r"loss.*nan.*ckpt-000000002"):
        training.pretrain(config, tmp_path / "run", train_data, verbose=0)
    latest = Checkpointer(tmp_path / "run" / "checkpoints", {}, {}).latest()
    assert latest.name == "ckpt-000000002"
    generator = make_generator(num_blocks=1, channels=8, scale=4)
    optimizer = keras.optimizers.Adam()
    optimizer.build(generator.trainable_variables)
    Checkpointer(latest.parent, {"generator": generator}, {"optimizer": optimizer}).restore()
    assert all(np.isfinite(w).all() for w in generator.get_weights())


def test_mixed_bfloat16_gan_phase_runs_with_float32_losses(tmp_path, train_data):
    skip_if_onednn_bf16_hidden()  # bf16 compute: see tests/tolerances.py.
    config = get_preset("ci").replace(**{"train.mixed_precision": "mixed_bfloat16", "loss.content": "perpix",
                                         "loss.adversarial": "relativistic"})
    result = training.train_gan(config, tmp_path / "gan", None, train_data, verbose=0)
    log = training.read_log(tmp_path / "gan")
    assert all(math.isfinite(row["g_loss"]) and math.isfinite(row["d_loss"]) for row in log)
    assert result.vgg_weights == "random"
    assert keras.mixed_precision.global_policy().name == "float32"  # Restored after the run.


def test_config_mismatch_names_the_fix(tmp_path, train_data):
    config = get_preset("ci")
    training.pretrain(config, tmp_path / "run", train_data, verbose=0)
    with pytest.raises(ConfigError, match="another run directory"):
        training.pretrain(config.replace(**{"model.channels": 16}), tmp_path / "run", train_data, verbose=0)


def test_mirrored_strategy_trains_and_checkpoints(tmp_path, train_data):
    config = get_preset("ci").replace(**{"train.strategy": "mirrored", "loss.content": "mse",
                                         "loss.adversarial": "wasserstein_gp"})
    result = training.train_gan(config, tmp_path / "gan", None, train_data, verbose=0)
    log = training.read_log(tmp_path / "gan")
    assert [row["step"] for row in log] == [2, 4] and result.step == 4
    assert all(math.isfinite(row["d_loss"]) for row in log)


def test_auto_vgg_weights_fall_back_to_random_with_a_warning(monkeypatch):
    import sr_lib.nets.models

    def offline(*args, **kwargs):
        raise RuntimeError("Could not download the VGG19 ImageNet weights")

    monkeypatch.setattr(sr_lib.nets.vgg, "make_vgg_features", offline)
    monkeypatch.setattr(vgg, "_AUTO_VGG", {})
    with pytest.warns(UserWarning, match="RANDOM VGG"):
        assert vgg.resolve_vgg_weights("auto") is None
    assert vgg.resolve_vgg_weights("imagenet") == "imagenet"  # Only "auto" falls back.


@pytest.mark.parametrize("adversarial", ["least_squares", "wasserstein_gp"])
def test_same_config_gives_the_same_run(tmp_path, train_data, adversarial):
    config = get_preset("ci").replace(**{"loss.content": "mse", "loss.adversarial": adversarial})
    first = training.train_gan(config, tmp_path / "a", None, train_data, verbose=0)
    second = training.train_gan(config, tmp_path / "b", None, train_data, verbose=0)
    for a, b in zip(keras.saving.load_model(first.final_path).get_weights(),
                    keras.saving.load_model(second.final_path).get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_plain_folder_without_validation_folder_warns(tmp_path):
    from PIL import Image
    from skimage import data as skdata

    Image.fromarray(skdata.astronaut()[:64, :64]).save(tmp_path / "a.png")
    config = get_preset("ci").replace(**{"data.source": str(tmp_path)})
    with pytest.warns(UserWarning, match="valid-data"):
        training.prepare_data(config)
    separate = config.replace(**{"data.valid_source": str(tmp_path)})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        training.prepare_data(separate)


def test_running_a_finished_run_again_trains_and_rewrites_nothing(tmp_path, train_data):
    config = get_preset("ci").replace(**{"train.pretrain_steps": 2})
    first = training.pretrain(config, tmp_path / "run", train_data, verbose=0)
    final = first.final_path
    stamp = final.stat().st_mtime_ns
    log = (tmp_path / "run" / "log.csv").read_text()
    time.sleep(0.01)
    again = training.pretrain(config, tmp_path / "run", train_data, verbose=0)
    assert again.step == first.step == 2 and again.best_step == first.best_step
    assert final.stat().st_mtime_ns == stamp and (tmp_path / "run" / "log.csv").read_text() == log
    final.unlink()  # Interrupted between the last checkpoint and the final save: the final model is written.
    training.pretrain(config, tmp_path / "run", train_data, verbose=0)
    assert final.is_file()


def test_random_vgg_weights_do_not_depend_on_when_auto_was_decided(tmp_path, train_data, monkeypatch):
    """Offline, "auto" means random VGG19 weights; deciding it builds a VGG19 (random draws) once per process. Two
    runs of one config, the first deciding "auto" and the second finding it decided, must train identically."""
    monkeypatch.setattr(vgg, "_AUTO_VGG", {})
    config = get_preset("ci").replace(**{"loss.content": "vgg54", "loss.adversarial": "modified",
                                         "loss.vgg_weights": "auto", "train.gan_steps": 2})
    with pytest.warns(UserWarning, match="RANDOM VGG"):
        first = training.train_gan(config, tmp_path / "a", None, train_data, verbose=0)
    second = training.train_gan(config, tmp_path / "b", None, train_data, verbose=0)
    assert first.vgg_weights == second.vgg_weights == "random"
    for a, b in zip(keras.saving.load_model(first.final_path).get_weights(),
                    keras.saving.load_model(second.final_path).get_weights()):
        np.testing.assert_array_equal(a, b)
