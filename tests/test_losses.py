"""Tests for sr_lib.losses: TF-GAN adversarial losses against hand-written formulas, content losses, penalty."""

import importlib.util
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from sr_lib import losses
from tolerances import skip_if_onednn_bf16_hidden

REAL = np.array([[2.0], [-1.0], [0.5]], np.float32)  # discriminator logits, shape [batch, 1]
FAKE = np.array([[-1.5], [0.3], [1.0]], np.float32)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def binary_cross_entropy(target, logits):
    return -target * np.log(sigmoid(logits)) - (1.0 - target) * np.log(1.0 - sigmoid(logits))


def expected_losses(name, real, fake, label_smoothing=0.0):
    """(generator, discriminator) loss written out in numpy (float64), batch means."""
    real, fake = real.astype(np.float64), fake.astype(np.float64)
    mean = np.mean
    if name in ("minimax", "modified"):
        # TF-GAN smooths positive labels towards 0.5: target 1 - label_smoothing / 2.
        discriminator = mean(binary_cross_entropy(1.0 - label_smoothing / 2, real)) + mean(-np.log(1 - sigmoid(fake)))
        if name == "minimax":  # TF-GAN adds the constant log(sigmoid(1)) (it passes ones as the "real" logits).
            return np.log(sigmoid(1.0)) + mean(np.log(1.0 - sigmoid(fake))), discriminator
        return mean(-np.log(sigmoid(fake))), discriminator
    if name == "least_squares":
        return mean((fake - 1.0) ** 2) / 2, mean((real - 1.0) ** 2) / 2 + mean(fake**2) / 2
    if name in ("wasserstein", "wasserstein_gp"):
        return -mean(fake), mean(fake) - mean(real)
    if name == "wasserstein_hinge":
        return -mean(fake), mean(np.maximum(0.0, 1.0 - real)) + mean(np.maximum(0.0, 1.0 + fake))
    if name == "relativistic":
        real_relative, fake_relative = real - mean(fake), fake - mean(real)
        generator = mean(-np.log(1 - sigmoid(real_relative))) + mean(-np.log(sigmoid(fake_relative)))
        discriminator = mean(-np.log(sigmoid(real_relative))) + mean(-np.log(1 - sigmoid(fake_relative)))
        return generator, discriminator
    raise AssertionError(name)


def tiny_features():
    """Stand-in for VGG: one small conv + ReLU, so content losses are tested without VGG19 weights."""
    return keras.Sequential(
        [keras.Input((None, None, 3)), keras.layers.Conv2D(4, 3, padding="same", activation="relu")], name="tiny")


def images(seed, shape=(2, 8, 8, 3)):
    return tf.random.stateless_uniform(shape, seed=(seed, 1), minval=-1.0, maxval=1.0)


def linear_discriminator(shape=(4, 4, 3)):
    """D(x) = sum(w * x): the gradient of D is w everywhere, so the penalty is (||w|| - target)**2 exactly."""
    return keras.Sequential([keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(1, use_bias=False)])


# ------------------------------------------------------------------------------------------------ TF-GAN loading
def test_load_tfgan_losses_returns_the_installed_tfgan_module():
    module = losses.load_tfgan_losses()
    package_dir = pathlib.Path(importlib.util.find_spec("tensorflow_gan").submodule_search_locations[0])
    assert pathlib.Path(module.__file__) == package_dir / "python" / "losses" / "losses_impl.py"
    assert "site-packages" in module.__file__
    assert module.modified_generator_loss.__code__.co_filename == module.__file__
    assert losses.load_tfgan_losses() is module  # cached


def test_loader_leaves_no_tfgan_stubs_in_sys_modules():
    before = {name for name in sys.modules if name.startswith("tensorflow_gan")}
    losses.load_tfgan_losses.cache_clear()
    try:
        losses.load_tfgan_losses()
        assert {name for name in sys.modules if name.startswith("tensorflow_gan")} == before
    finally:
        losses.load_tfgan_losses.cache_clear()


def test_import_tensorflow_gan_afterwards_behaves_as_without_sr_lib():
    # A fresh interpreter, so the real (failing on TF >= 2.16) package import cannot disturb this process.
    script = """
import sys
from sr_lib import losses
losses.load_tfgan_losses()
try:
    import tensorflow_gan
except AttributeError as error:  # TF-GAN's own failure on TF >= 2.16, unchanged
    assert "estimator" in str(error), error
else:
    assert hasattr(tensorflow_gan, "losses"), "an empty stub was left in sys.modules"
losses.load_tfgan_losses.cache_clear()  # reloads, reusing what the failed import left behind
loss = losses.get_adversarial_loss("modified")
print(float(loss.generator_loss(None, [[0.0]])))
"""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.split()[-1]) == pytest.approx(np.log(2.0), rel=1e-6)


# ------------------------------------------------------------------------------------------------ adversarial
@pytest.mark.parametrize("name", list(losses.ADVERSARIAL_LOSSES))
def test_adversarial_loss_matches_formula(name):
    loss = losses.get_adversarial_loss(name)
    generator, discriminator = expected_losses(name, REAL, FAKE)
    np.testing.assert_allclose(loss.generator_loss(REAL, FAKE).numpy(), generator, rtol=1e-5)
    np.testing.assert_allclose(loss.discriminator_loss(REAL, FAKE).numpy(), discriminator, rtol=1e-5)
    assert loss.name == name
    assert loss.gradient_penalty_weight == (10.0 if name == "wasserstein_gp" else 0.0)


@pytest.mark.parametrize("name", ["minimax", "modified"])
def test_label_smoothing_on_the_discriminator_only(name):
    smoothed = losses.get_adversarial_loss(name, label_smoothing=0.2)
    generator, discriminator = expected_losses(name, REAL, FAKE, label_smoothing=0.2)
    np.testing.assert_allclose(smoothed.discriminator_loss(REAL, FAKE).numpy(), discriminator, rtol=1e-5)
    np.testing.assert_allclose(smoothed.generator_loss(REAL, FAKE).numpy(), generator, rtol=1e-5)
    # Default 0, not TF-GAN's 0.25.
    plain = losses.get_adversarial_loss(name)
    np.testing.assert_allclose(plain.discriminator_loss(REAL, FAKE).numpy(), expected_losses(name, REAL, FAKE)[1],
                               rtol=1e-5)
    assert smoothed.discriminator_loss(REAL, FAKE).numpy() > plain.discriminator_loss(REAL, FAKE).numpy()


@pytest.mark.parametrize("label_smoothing, name", [(1.0, "modified"), (-0.1, "minimax"), (0.1, "wasserstein")])
def test_bad_label_smoothing_raises(label_smoothing, name):
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.get_adversarial_loss(name, label_smoothing=label_smoothing)


@pytest.mark.parametrize("name", list(losses.ADVERSARIAL_LOSSES))
def test_adversarial_losses_are_float32_scalars_in_tf_function_for_low_precision_logits(name):
    loss = losses.get_adversarial_loss(name)
    graph_generator = tf.function(loss.generator_loss, reduce_retracing=True)
    graph_discriminator = tf.function(loss.discriminator_loss, reduce_retracing=True)
    for dtype in (tf.float32, tf.bfloat16, tf.float16):
        real, fake = tf.cast(REAL, dtype), tf.cast(FAKE, dtype)
        # The reference uses the same rounded logits, so the tolerance only covers float32 arithmetic.
        generator, discriminator = expected_losses(name, tf.cast(real, tf.float32).numpy(),
                                                   tf.cast(fake, tf.float32).numpy())
        for function, value in ((loss.generator_loss, generator), (graph_generator, generator),
                                (loss.discriminator_loss, discriminator), (graph_discriminator, discriminator)):
            result = function(real, fake)
            assert result.dtype == tf.float32 and result.shape == ()
            np.testing.assert_allclose(result.numpy(), value, rtol=1e-5)


def test_relativistic_generator_needs_real_logits():
    with pytest.raises(ValueError, match="real_logits"):
        losses.get_adversarial_loss("relativistic").generator_loss(None, FAKE)


def test_unknown_names_raise_listing_valid_names():
    with pytest.raises(ValueError) as error:
        losses.get_adversarial_loss("vanilla")
    assert "vanilla" in str(error.value) and all(name in str(error.value) for name in losses.ADVERSARIAL_LOSSES)
    with pytest.raises(ValueError) as error:
        losses.make_content_loss("vgg33")
    assert "vgg33" in str(error.value) and all(name in str(error.value) for name in losses.CONTENT_LOSSES)


# ------------------------------------------------------------------------------------------------ gradient penalty
@pytest.mark.parametrize("target", [1.0, 2.0])
def test_gradient_penalty_of_linear_discriminator_eager_and_tf_function(target):
    discriminator = linear_discriminator()
    weight_norm = np.linalg.norm(discriminator.layers[-1].kernel.numpy().astype(np.float64))
    expected = (weight_norm - target) ** 2
    real, fake = images(1, (3, 4, 4, 3)), images(2, (3, 4, 4, 3))
    graph_penalty = tf.function(lambda a, b: losses.gradient_penalty(discriminator, a, b, target=target))
    for penalty in (losses.gradient_penalty(discriminator, real, fake, target=target), graph_penalty(real, fake)):
        assert penalty.dtype == tf.float32 and penalty.shape == ()
        assert np.isfinite(penalty.numpy()) and penalty.numpy() > 0
        np.testing.assert_allclose(penalty.numpy(), expected, rtol=1e-5)


def test_gradient_penalty_is_differentiable_in_the_discriminator_weights():
    discriminator = linear_discriminator()
    kernel = discriminator.layers[-1].kernel
    real, fake = images(1, (2, 4, 4, 3)), images(2, (2, 4, 4, 3))

    @tf.function
    def penalty_gradient():
        with tf.GradientTape() as tape:
            penalty = losses.gradient_penalty(discriminator, real, fake, seed=0)
        return tape.gradient(penalty, kernel)

    w = kernel.numpy().astype(np.float64)
    norm = np.linalg.norm(w)
    np.testing.assert_allclose(penalty_gradient().numpy(), 2 * (norm - 1) * w / norm, rtol=1e-4, atol=1e-7)


def test_gradient_penalty_matches_tfgan_in_graph_mode_and_tfgan_fails_eagerly():
    tfgan = losses.load_tfgan_losses()
    discriminator = linear_discriminator()
    real, fake = images(1, (2, 4, 4, 3)), images(2, (2, 4, 4, 3))

    def tfgan_penalty(a, b):
        return tfgan.wasserstein_gradient_penalty(a, b, None, lambda x, _: discriminator(x), "critic",
                                                  loss_collection=None)

    ours = losses.gradient_penalty(discriminator, real, fake)
    np.testing.assert_allclose(tf.function(tfgan_penalty)(real, fake).numpy(), ours.numpy(), rtol=1e-5)
    with pytest.raises(RuntimeError):  # why sr_lib computes the penalty with tf.GradientTape
        tfgan_penalty(real, fake)


def test_gradient_penalty_of_a_conv_discriminator_and_seeds():
    discriminator = keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, strides=2, activation="tanh"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)])
    real, fake = images(1), images(2)
    graph_penalty = tf.function(lambda a, b: losses.gradient_penalty(discriminator, a, b, seed=7))
    eager = losses.gradient_penalty(discriminator, real, fake, seed=7)
    assert np.isfinite(eager.numpy()) and eager.numpy() > 0
    np.testing.assert_allclose(graph_penalty(real, fake).numpy(), eager.numpy(), rtol=1e-5)  # same seed, same eps
    generator = keras.random.SeedGenerator(3)
    assert np.isfinite(losses.gradient_penalty(discriminator, real, fake, seed=generator).numpy())
    with pytest.raises(ValueError, match="shape"):
        losses.gradient_penalty(discriminator, real, fake[:1])


# ------------------------------------------------------------------------------------------------ content
def test_pixel_mse_and_shape_check():
    hr, sr = images(1), images(2)
    np.testing.assert_allclose(losses.pixel_mse(hr, sr).numpy(), np.mean((hr.numpy() - sr.numpy()) ** 2), rtol=1e-6)
    assert losses.pixel_mse(tf.cast(hr, tf.bfloat16), sr).dtype == tf.float32
    with pytest.raises(ValueError, match="same shape"):
        losses.pixel_mse(hr, sr[0])


def test_vgg_content_loss_rescale():
    features = tiny_features()
    hr, sr = images(1), images(2)
    unscaled = losses.VGGContentLoss(features, rescale=1.0)(hr, sr).numpy()
    np.testing.assert_allclose(unscaled, np.mean((features(hr).numpy() - features(sr).numpy()) ** 2), rtol=1e-5)
    paper = losses.VGGContentLoss(features)(hr, sr).numpy()  # default: features / 12.75
    np.testing.assert_allclose(paper, unscaled / 12.75**2, rtol=1e-5)
    assert losses.VGGContentLoss(features).uses_vgg
    with pytest.raises(ValueError, match="rescale"):
        losses.VGGContentLoss(features, rescale=0.0)


def test_perpix_is_weighted_sum_of_pixel_and_vgg_terms():
    features = tiny_features()
    hr, sr = images(1), images(2)
    perpix = losses.PerPixLoss(features, pixel_weight=0.5, vgg_weight=2.0, rescale=0.1)
    expected = 0.5 * losses.pixel_mse(hr, sr) + 2.0 * losses.VGGContentLoss(features, rescale=0.1)(hr, sr)
    np.testing.assert_allclose(perpix(hr, sr).numpy(), expected.numpy(), rtol=1e-6)
    np.testing.assert_allclose(tf.function(perpix)(hr, sr).numpy(), expected.numpy(), rtol=1e-5)
    assert perpix.uses_vgg and perpix.vgg_weights is None  # the stand-in has no vgg_weights attribute
    with pytest.raises(ValueError, match="vgg_weight"):
        losses.PerPixLoss(features, vgg_weight=-1.0)


def test_content_loss_under_mixed_precision_is_float32():
    skip_if_onednn_bf16_hidden()  # bf16 compute: see tests/tolerances.py.
    keras.mixed_precision.set_global_policy("mixed_bfloat16")  # conftest restores float32
    features = tiny_features()
    result = losses.PerPixLoss(features)(images(1), images(2))
    assert result.dtype == tf.float32 and np.isfinite(result.numpy())


def test_make_content_loss_mse():
    loss = losses.make_content_loss("mse")
    assert not loss.uses_vgg and loss.vgg_weights is None and loss.name == "mse"
    hr, sr = images(1), images(2)
    np.testing.assert_allclose(loss(hr, sr).numpy(), losses.pixel_mse(hr, sr).numpy())
    with pytest.raises(ValueError, match="vgg_layer"):
        losses.make_content_loss("vgg22", vgg_weights=None, vgg_layer="vgg54")


@pytest.mark.parametrize("name", ["vgg22", "perpix"])
def test_make_content_loss_builds_vgg_features(name):
    pytest.importorskip("sr_lib.nets.models")
    loss = losses.make_content_loss(name, vgg_weights=None)
    assert loss.uses_vgg and loss.name == name
    assert loss.vgg_weights == "random"
    hr, sr = images(1, (1, 32, 32, 3)), images(2, (1, 32, 32, 3))
    value = loss(hr, sr)
    assert value.dtype == tf.float32 and np.isfinite(value.numpy()) and value.numpy() > 0
    assert loss(hr, hr).numpy() == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------------------------------------ generator
def test_generator_loss_total():
    features = tiny_features()
    content = losses.VGGContentLoss(features)
    hr, sr = images(1), images(2)
    objective = losses.GeneratorLoss(content, "modified", adversarial_weight=0.01, pixel_weight=0.5)
    terms = objective(hr, sr, REAL, FAKE)
    assert set(terms) == {"total", "content", "adversarial", "pixel"}
    adversarial = expected_losses("modified", REAL, FAKE)[0]
    np.testing.assert_allclose(terms["adversarial"].numpy(), adversarial, rtol=1e-5)
    np.testing.assert_allclose(terms["content"].numpy(), content(hr, sr).numpy(), rtol=1e-6)
    np.testing.assert_allclose(terms["pixel"].numpy(), losses.pixel_mse(hr, sr).numpy(), rtol=1e-6)
    expected_total = content(hr, sr).numpy() + 0.01 * adversarial + 0.5 * losses.pixel_mse(hr, sr).numpy()
    np.testing.assert_allclose(terms["total"].numpy(), expected_total, rtol=1e-5)
    # Paper defaults: weight 1e-3, no pixel term.
    paper = losses.GeneratorLoss(content, losses.get_adversarial_loss("modified"))(hr, sr, REAL, FAKE)
    np.testing.assert_allclose(paper["total"].numpy(), content(hr, sr).numpy() + 1e-3 * adversarial, rtol=1e-5)
    with pytest.raises(ValueError, match="adversarial_weight"):
        losses.GeneratorLoss(content, "modified", adversarial_weight=-1.0)
