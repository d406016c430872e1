"""The speed-motivated layers are drop-in equivalents of the Keras layers they replace."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sr_lib.layers import FastPReLU, FusedBatchNormalization


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_fused_batch_norm_matches_keras(policy):
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
    for a, b in zip(tape.gradient(loss_ref, reference.trainable_variables),
                    tape.gradient(loss_fused, fused.trainable_variables)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
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
