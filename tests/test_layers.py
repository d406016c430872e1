"""The speed-motivated layers are drop-in equivalents of the Keras layers they replace."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sr_lib.nets.layers import FastPReLU, FusedBatchNormalization
from tolerances import BF16_EPS, skip_if_onednn_bf16_hidden


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_fused_batch_norm_matches_keras(policy):
    if policy != "float32":
        skip_if_onednn_bf16_hidden()
    keras.mixed_precision.set_global_policy(policy)
    x = tf.random.normal((4, 6, 5, 8), seed=1) * 3 + 1
    reference, fused = keras.layers.BatchNormalization(momentum=0.9), FusedBatchNormalization(momentum=0.9)
    reference.build(x.shape)
    fused.build(x.shape)
    fused.set_weights(reference.get_weights())
    with tf.GradientTape(persistent=True) as tape:
        y_ref, y_fused = reference(x, training=True), fused(x, training=True)
        loss_ref = tf.reduce_sum(tf.cast(y_ref, tf.float32) ** 2)
        loss_fused = tf.reduce_sum(tf.cast(y_fused, tf.float32) ** 2)
    assert y_fused.dtype == y_ref.dtype
    tolerance = 1e-5 if policy == "float32" else 2e-2
    np.testing.assert_allclose(np.float32(y_fused), np.float32(y_ref), atol=tolerance)
    # d loss / d beta = sum 2y, d loss / d gamma = sum 2y * x_hat: sums that cancel to about 0, so their error is set
    # by the size of their terms, not of the result. In float32 the terms are exact to ~1e-6; in bfloat16 x and y each
    # carry one rounding of at most 2^-8 of their value, which bounds the error at 2 * 2^-8 * sum |term|.
    y = np.float32(y_ref)
    gamma, beta = (np.float32(w) for w in reference.get_weights()[:2])
    terms = {"beta": np.abs(2 * y).sum(axis=(0, 1, 2)),
             "gamma": np.abs(2 * y * (y - beta) / gamma).sum(axis=(0, 1, 2))}
    relative = 1e-5 if policy == "float32" else 2 * BF16_EPS
    for variable, a, b in zip(reference.trainable_variables, tape.gradient(loss_ref, reference.trainable_variables),
                              tape.gradient(loss_fused, fused.trainable_variables)):
        bound = relative * terms["gamma" if "gamma" in variable.path else "beta"]
        assert np.all(np.abs(np.float32(a) - np.float32(b)) <= bound), (variable.path, a, b, bound)
    mean_ref, var_ref = reference.get_weights()[2:]
    mean_fused, var_fused = fused.get_weights()[2:]
    np.testing.assert_allclose(mean_fused, mean_ref, atol=1e-5)
    np.testing.assert_allclose(var_fused, var_ref, rtol=2e-2)  # Unbiased vs biased batch variance (n = 120).
    assert not np.allclose(mean_fused, 0.0)  # The moving statistics were updated.
    # Inference mode is the Keras layer itself (outputs differ only through the moving variance above).
    np.testing.assert_allclose(np.float32(fused(x, training=False)), np.float32(reference(x, training=False)),
                               rtol=2e-2, atol=2e-2)


def test_fast_prelu_matches_keras_and_round_trips(tmp_path):
    x = tf.random.normal((2, 5, 7, 4), seed=2)
    initializer = keras.initializers.RandomUniform(-0.5, 1.5, seed=3)
    reference = keras.layers.PReLU(shared_axes=[1, 2], alpha_initializer=initializer)
    fast = FastPReLU(shared_axes=[1, 2])
    reference.build(x.shape)
    fast.build(x.shape)
    fast.set_weights(reference.get_weights())
    np.testing.assert_allclose(fast(x), reference(x), atol=1e-6)
    model = keras.Sequential([keras.Input((5, 7, 4)), fast])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(loaded(x), reference(x), atol=1e-6)
