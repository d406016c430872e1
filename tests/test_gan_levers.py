"""Phase 2's levers for a discriminator that learns: a warm-up without the adversarial term, the discriminator's own
learning rate, and the L1 pixel content loss (ESRGAN's pixel term)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from sr_lib import losses as losses_lib
from sr_lib.config import ConfigError, get_preset
from sr_lib.nets.models import make_discriminator, make_generator
from sr_lib.training import phases as training
from tolerances import FLOAT_ATOL


@pytest.fixture(scope="module")
def train_data():
    return training.prepare_data(get_preset("ci"))


def _gan(warmup, adversarial_weight):
    keras.utils.set_random_seed(1)  # Twins: the same initial weights for every call.
    generator = make_generator(num_blocks=1, channels=8, scale=4)
    discriminator = make_discriminator(hr_size=32, channels=4)
    adversarial = losses_lib.get_adversarial_loss("modified")
    objective = losses_lib.GeneratorLoss(losses_lib.pixel_mse, adversarial, adversarial_weight=adversarial_weight)
    gan = training.SRGAN(generator, discriminator)
    gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3), objective, adversarial,
                discriminator_warmup_steps=warmup)
    return gan


def test_warmup_steps_train_the_generator_on_its_content_loss_alone(train_data):
    batch = tf.constant(train_data.valid_lr[:2]), tf.constant(train_data.valid_hr[:2])
    warm, plain = _gan(warmup=2, adversarial_weight=1.0), _gan(warmup=0, adversarial_weight=0.0)
    for step in range(3):
        for tracker in warm.metrics + plain.metrics:  # The logs are running means: this step's values alone.
            tracker.reset_state()
        warm_logs = warm.train_step(batch)
        plain.train_step(batch)
        gap = float(warm_logs["g_loss"]) - float(warm_logs["content_loss"])
        if step < 2:  # Warm-up: no adversarial term; the generator moves as with adversarial weight 0.
            assert gap == pytest.approx(0.0, abs=1e-7)
            for a, b in zip(warm.generator.get_weights(), plain.generator.get_weights()):
                # The same arithmetic on the same machine; the bound allows a kernel that reorders sums.
                np.testing.assert_allclose(a, b, atol=FLOAT_ATOL)
        else:  # From step 3 the generator gets the adversarial term (weight 1: the gap is the whole term).
            assert gap == pytest.approx(float(warm_logs["adversarial_loss"]), rel=1e-5)
            assert gap > 0.1
    # The discriminator learned in every step, warm-up or not.
    assert int(warm.d_optimizer.iterations) == 3


def test_discriminator_learning_rate_keeps_the_generators_decay():
    config = get_preset("ci").replace(**{"train.learning_rate": 1e-4, "train.decayed_learning_rate": 1e-5,
                                         "train.gan_decay_step": 10, "train.discriminator_learning_rate": 4e-4})
    generator_rate = training._gan_schedule(config)
    discriminator_rate = training._gan_schedule(config, config.train.discriminator_learning_rate)
    assert float(generator_rate(0)) == pytest.approx(1e-4) and float(generator_rate(11)) == pytest.approx(1e-5)
    assert float(discriminator_rate(0)) == pytest.approx(4e-4)
    assert float(discriminator_rate(11)) == pytest.approx(4e-5)  # Divided by the same ratio at the same step.


@pytest.mark.parametrize("key, value, message", [
    ("train.discriminator_warmup_steps", 5, "train.gan_steps=4"),
    ("train.discriminator_warmup_steps", -1, "got -1"),
    ("train.discriminator_learning_rate", 0.0, "must be null or > 0"),
])
def test_bad_lever_values_name_the_key(key, value, message):
    with pytest.raises(ConfigError, match=f"{key}.*{message}"):
        get_preset("ci").replace(**{key: value})


def test_l1_content_loss_is_the_pixel_l1():
    hr = tf.random.stateless_uniform((2, 8, 8, 3), seed=(1, 2), minval=-1, maxval=1)
    sr = tf.random.stateless_uniform((2, 8, 8, 3), seed=(3, 4), minval=-1, maxval=1)
    loss = losses_lib.make_content_loss("l1")
    assert not loss.uses_vgg and loss.name == "l1"
    assert float(loss(hr, sr)) == pytest.approx(float(tf.reduce_mean(tf.abs(hr - sr))), rel=1e-6)


def test_content_only_control_trains_with_its_own_pixel_loss(tmp_path, train_data):
    config = get_preset("ci").replace(**{"loss.content": "l1", "loss.adversarial": "none",
                                         "train.pretrain_loss": "mse"})
    training.train_gan(config, tmp_path / "control", None, train_data, verbose=0)
    saved = json.loads((tmp_path / "control" / "config.json").read_text())
    assert saved["train"]["pretrain_loss"] == "l1"  # The control's loss is its content loss, not phase 1's.
    assert training.read_log(tmp_path / "control")[-1]["loss"] > 0
    with pytest.raises(ConfigError, match="pixel content loss"):
        training.train_gan(config.replace(**{"loss.content": "vgg54"}), tmp_path / "bad", None, train_data, verbose=0)
