"""Tests for sr_lib.nets.layers and sr_lib.nets.models at tiny widths (2 blocks, 8 channels, 12-48 px)."""

import importlib

import keras
import numpy as np
import pytest

from sr_lib.nets import models, vgg
from sr_lib.nets.layers import ICNR, PixelShuffle, VGGPreprocess, icnr_initializer
from tolerances import skip_if_onednn_bf16_hidden

TINY = dict(num_blocks=2, channels=8)
UPSAMPLE_OPTIONS = [("subpixel", "nearest"), ("upsampling", "nearest"), ("upsampling", "bilinear")]


def _random(shape, low=0.0, high=1.0, seed=0):
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype("float32")


def _layer_types(model):
    return {type(layer) for layer in model.layers}


@pytest.fixture(scope="module")
def random_vgg19():
    """One random-weight VGG19 without top, shared because building it is the slow part of these tests."""
    return keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))


# ---------------------------------------------------------------------------------------------------- generator


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
@pytest.mark.parametrize("upsample, interpolation", UPSAMPLE_OPTIONS)
def test_generator_shapes_any_input_size(scale, upsample, interpolation):
    generator = models.make_generator(**TINY, scale=scale, upsample=upsample, interpolation=interpolation)
    for height, width in [(12, 16), (7, 10)]:
        sr = np.asarray(generator(_random((2, height, width, 3)), training=False))
        assert sr.shape == (2, height * scale, width * scale, 3)
        assert sr.dtype == np.float32
        assert np.all(sr >= -1.0) and np.all(sr <= 1.0)
        assert np.std(sr) > 0  # Not a degenerate constant output.


def test_default_generator_matches_paper_size():
    generator = models.make_generator()
    channels, blocks = 64, 16
    conv = lambda k, cin, cout: k * k * cin * cout + cout  # noqa: E731
    batchnorm = 4 * channels  # gamma, beta, moving mean, moving variance
    expected = (
        conv(9, 3, channels) + channels  # head conv + PReLU
        + blocks * (2 * conv(3, channels, channels) + 2 * batchnorm + channels)
        + conv(3, channels, channels) + batchnorm
        + 2 * (conv(3, channels, 4 * channels) + channels)  # two x2 sub-pixel stages
        + conv(9, channels, 3)
    )
    assert generator.count_params() == expected == 1_554_883


def test_upscaling_paths_differ():
    subpixel = models.make_generator(**TINY, upsample="subpixel")
    nearest = models.make_generator(**TINY, upsample="upsampling", interpolation="nearest")
    bilinear = models.make_generator(**TINY, upsample="upsampling", interpolation="bilinear")
    assert PixelShuffle in _layer_types(subpixel) and keras.layers.UpSampling2D not in _layer_types(subpixel)
    assert keras.layers.UpSampling2D in _layer_types(nearest) and PixelShuffle not in _layer_types(nearest)
    # Sub-pixel convs produce C*r*r channels, resize-convs only C.
    assert subpixel.get_layer("upsample1_conv").filters == 4 * 8
    assert nearest.get_layer("upsample1_conv").filters == 8
    # Same weights, different interpolation -> different images.
    bilinear.set_weights(nearest.get_weights())
    lr = _random((1, 12, 12, 3))
    assert not np.allclose(nearest(lr, training=False), bilinear(lr, training=False))


def test_pixel_shuffle_is_depth_to_space_with_expected_ordering():
    r, channels = 2, 3
    x = _random((2, 3, 5, channels * r * r))
    out = np.asarray(PixelShuffle(r)(x))
    np.testing.assert_array_equal(out, np.asarray(keras.ops.depth_to_space(x, r)))
    # The ordering ICNR relies on: output (h*r + i, w*r + j, c) <- input (h, w, (i*r + j)*C + c).
    for i in range(r):
        for j in range(r):
            for c in range(channels):
                np.testing.assert_array_equal(out[:, i::r, j::r, c], x[..., (i * r + j) * channels + c])
    assert PixelShuffle(r).compute_output_shape((None, None, 5, 12)) == (None, None, 10, 3)
    with pytest.raises(ValueError, match="block_size"):
        PixelShuffle(1)


@pytest.mark.parametrize("r", [2, 3])
def test_icnr_subpixel_equals_nearest_upsampling(r):
    channels = 4
    x = _random((1, 9, 7, 5), -1, 1)
    conv = keras.layers.Conv2D(
        channels * r * r, 3, padding="same", kernel_initializer=ICNR(r, keras.initializers.RandomNormal(seed=3))
    )
    subpixel = np.asarray(PixelShuffle(r)(conv(x)))
    # One sub-pixel position's kernel, applied as a plain conv, then nearest-neighbour upsampling.
    base = keras.layers.Conv2D(channels, 3, padding="same")
    base.build(x.shape)
    base.set_weights([np.asarray(conv.kernel)[..., :channels], np.asarray(conv.bias)[:channels]])
    nearest = np.asarray(keras.layers.UpSampling2D(r, interpolation="nearest")(base(x)))
    np.testing.assert_allclose(subpixel, nearest, atol=1e-5)

    # Without ICNR the property does not hold, so the check above is not vacuous.
    plain = keras.layers.Conv2D(channels * r * r, 3, padding="same")
    plain_out = np.asarray(PixelShuffle(r)(plain(x)))
    base.set_weights([np.asarray(plain.kernel)[..., :channels], np.asarray(plain.bias)[:channels]])
    assert not np.allclose(plain_out, np.asarray(keras.layers.UpSampling2D(r)(base(x))), atol=1e-3)


def test_icnr_serializes_and_checks_shape():
    initializer = icnr_initializer(3, "he_normal")
    restored = keras.initializers.deserialize(keras.initializers.serialize(initializer))
    assert isinstance(restored, ICNR) and restored.scale == 3
    assert isinstance(restored.initializer, keras.initializers.HeNormal)
    with pytest.raises(ValueError, match="divisible by 9"):
        initializer((3, 3, 4, 10))


@pytest.mark.parametrize("icnr", [True, False])
def test_generator_icnr_option(icnr):
    generator = models.make_generator(**TINY, scale=2, icnr=icnr)
    kernel = np.asarray(generator.get_layer("upsample1_conv").kernel)
    groups = np.split(kernel, 4, axis=-1)  # one group of C channels per sub-pixel position
    assert all(np.array_equal(groups[0], group) for group in groups[1:]) == icnr


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(scale=5), "2, 3, 4, 8"),
        (dict(upsample="deconv"), "'subpixel', 'upsampling'"),
        (dict(interpolation="bicubic"), "'nearest', 'bilinear'"),
        (dict(channels=0), "channels"),
        (dict(num_blocks=-1), "num_blocks"),
        (dict(num_blocks=2.5), "num_blocks"),
    ],
)
def test_generator_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.make_generator(**kwargs)


def test_mixed_bfloat16_outputs_are_float32():
    skip_if_onednn_bf16_hidden()  # bf16 compute: see tests/tolerances.py.
    keras.mixed_precision.set_global_policy("mixed_bfloat16")  # conftest resets the policy afterwards
    generator = models.make_generator(**TINY, scale=2)
    discriminator = models.make_discriminator(hr_size=None, channels=8)
    assert generator.get_layer("head_conv").compute_dtype == "bfloat16"
    sr = generator(_random((1, 12, 12, 3)), training=False)
    assert keras.backend.standardize_dtype(sr.dtype) == "float32"
    logits = discriminator(sr, training=False)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"


# ------------------------------------------------------------------------------------------------ discriminator


def test_discriminator_fixed_size():
    discriminator = models.make_discriminator(hr_size=32, channels=8)
    logits = discriminator(_random((3, 32, 32, 3), -1, 1), training=False)
    assert tuple(logits.shape) == (3, 1)
    assert keras.layers.Flatten in _layer_types(discriminator)
    with pytest.raises(ValueError):
        discriminator(_random((1, 48, 48, 3), -1, 1), training=False)


def test_discriminator_any_size():
    discriminator = models.make_discriminator(hr_size=None, channels=8)
    assert keras.layers.GlobalAveragePooling2D in _layer_types(discriminator)
    for shape in [(2, 32, 32, 3), (1, 24, 40, 3)]:
        logits = np.asarray(discriminator(_random(shape, -1, 1), training=False))
        assert logits.shape == (shape[0], 1)
        # Logits, not probabilities: no sigmoid squashing them into [0, 1].
    assert discriminator.get_layer("logits").activation.__name__ == "linear"


def test_discriminator_paper_layout():
    discriminator = models.make_discriminator(hr_size=96)
    # Four stride-2 convs: 96 -> 6, with 512 channels.
    assert tuple(discriminator.get_layer("flatten").output.shape) == (None, 6 * 6 * 512)
    assert [discriminator.get_layer(f"conv{i}").strides[0] for i in range(1, 9)] == [1, 2] * 4
    assert "bn1" not in [layer.name for layer in discriminator.layers]


@pytest.mark.parametrize("hr_size", [8, "96", 96.0])
def test_discriminator_invalid_size(hr_size):
    with pytest.raises(ValueError, match="hr_size"):
        models.make_discriminator(hr_size=hr_size)


# ------------------------------------------------------------------------------------------------------- saving


def _model_cases():
    return {
        "generator_subpixel": (lambda: models.make_generator(**TINY, scale=2), (1, 10, 12, 3), 0.0),
        "generator_bilinear": (
            lambda: models.make_generator(**TINY, scale=3, upsample="upsampling", interpolation="bilinear"),
            (1, 10, 12, 3),
            0.0,
        ),
        "discriminator_fixed": (lambda: models.make_discriminator(32, channels=8), (2, 32, 32, 3), -1.0),
        "discriminator_any": (lambda: models.make_discriminator(None, channels=8), (2, 24, 40, 3), -1.0),
        "vgg_features": (lambda: vgg.make_vgg_features("vgg22", weights=None), (1, 16, 16, 3), -1.0),
    }


@pytest.mark.parametrize("case", list(_model_cases()))
def test_save_load_safe_mode_round_trip(case, tmp_path):
    build, shape, low = _model_cases()[case]
    model = build()
    path = tmp_path / f"{case}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = _random(shape, low, 1.0)
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), rtol=1e-6, atol=1e-6)
    assert loaded.name == model.name
    assert len(loaded.trainable_weights) == len(model.trainable_weights)


# ---------------------------------------------------------------------------------------------------------- VGG


@pytest.mark.parametrize(
    "layer, channels, factor", [("vgg22", 128, 2), ("vgg54", 512, 16), ("block3_conv1", 256, 4)]
)
def test_vgg_feature_layers(layer, channels, factor):
    features = vgg.make_vgg_features(layer, weights=None)
    out = np.asarray(features(_random((1, 32, 48, 3), -1, 1)))
    assert out.shape == (1, 32 // factor, 48 // factor, channels)
    assert np.all(out >= 0)  # taken after the ReLU
    assert features.trainable is False and features.trainable_weights == []
    assert features.vgg_weights == "random" and "random" in features.name


def test_vgg_preprocess_matches_keras_caffe_preprocessing():
    pixels = _random((2, 5, 7, 3), 0, 255)
    expected = keras.applications.vgg19.preprocess_input(pixels.copy())
    ours = np.asarray(VGGPreprocess()(pixels / 127.5 - 1.0))
    np.testing.assert_allclose(ours, expected, atol=1e-3)


def test_vgg_local_weights_file(random_vgg19, tmp_path):
    path = tmp_path / "vgg19_notop.weights.h5"
    random_vgg19.save_weights(path)
    features = vgg.make_vgg_features("vgg22", weights=path)
    assert features.vgg_weights == str(path) and "local" in features.name

    image = _random((1, 16, 20, 3), -1, 1)
    reference = keras.Model(random_vgg19.input, random_vgg19.get_layer("block2_conv2").output)
    expected = reference(VGGPreprocess()(image))
    np.testing.assert_allclose(features(image), expected, rtol=1e-5, atol=1e-5)
    # A freshly initialised network differs, so equality above means the file was loaded.
    assert not np.allclose(vgg.make_vgg_features("vgg22", weights=None)(image), expected, atol=1e-3)


def test_vgg_missing_local_file(tmp_path):
    missing = tmp_path / "nope.weights.h5"
    with pytest.raises(ValueError, match="nope.weights.h5"):
        vgg.make_vgg_features(weights=missing)


def test_vgg_failed_download_is_actionable(monkeypatch):
    calls = []

    def offline_get_file(fname, origin, **kwargs):
        calls.append(fname)
        # What Keras' get_file raises when the URL cannot be fetched.
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    # keras.applications looks get_file up on its (private) file_utils module, so patching the public alias
    # keras.utils.get_file would not reach it; patch the module the application actually uses.
    file_utils = importlib.import_module("keras.src.applications.vgg19").file_utils
    monkeypatch.setattr(file_utils, "get_file", offline_get_file)
    with pytest.raises(RuntimeError, match=r"~/.keras/models.*weights=None") as error:
        vgg.make_vgg_features("vgg54", weights="imagenet")
    assert calls == ["vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"]
    assert "URL fetch failure" in str(error.value)


@pytest.mark.parametrize("layer", ["vgg99", "block6_conv1", "fc1"])
def test_vgg_unknown_layer(layer):
    with pytest.raises(ValueError, match="vgg22"):
        vgg.make_vgg_features(layer, weights=None)


def test_vgg_invalid_weights_value():
    with pytest.raises(ValueError, match="weights"):
        vgg.make_vgg_features(weights=3)


def test_generator_without_batch_norm(tmp_path):
    with_bn = models.make_generator(num_blocks=2, channels=8, scale=2)
    without = models.make_generator(num_blocks=2, channels=8, scale=2, batch_norm=False)
    bn_layers = [layer for layer in with_bn.layers if "bn" in layer.name]
    assert len(bn_layers) == 2 * 2 + 1
    assert not [layer for layer in without.layers if "bn" in layer.name]
    assert without.count_params() == with_bn.count_params() - sum(layer.count_params() for layer in bn_layers)
    x = np.random.default_rng(0).random((1, 10, 14, 3), dtype=np.float32)
    assert without(x).shape == (1, 20, 28, 3)
    without.save(tmp_path / "g.keras")
    np.testing.assert_array_equal(keras.saving.load_model(tmp_path / "g.keras", safe_mode=True)(x), without(x))


@pytest.mark.parametrize("global_residual", ["bicubic", "bilinear"])
def test_global_residual_adds_the_upsampled_input(global_residual):
    import keras

    generator = models.make_generator(**TINY, scale=4, batch_norm=False, global_residual=global_residual)
    tail = generator.get_layer("tail_conv")
    tail.set_weights([np.zeros_like(w) for w in tail.get_weights()])
    lr = _random((2, 9, 11, 3))
    upsampled = keras.ops.image.resize(lr, (36, 44), interpolation=global_residual)
    np.testing.assert_allclose(np.asarray(generator(lr)), 2 * np.asarray(upsampled) - 1, atol=1e-6)
    # Unlike the tanh head, the residual output is not bounded: the detail can push past [-1, 1] (clipped on save).
    assert "tanh" not in [getattr(layer, "activation", None).__name__ for layer in generator.layers
                          if hasattr(layer, "activation") and hasattr(layer.activation, "__name__")]
    with pytest.raises(ValueError, match="global_residual"):
        models.make_generator(**TINY, global_residual="lanczos")


def test_residual_init_scale_shrinks_the_block_weights():
    plain = models.make_generator(num_blocks=2, channels=32, batch_norm=False)
    scaled = models.make_generator(num_blocks=2, channels=32, batch_norm=False, residual_init_scale=0.1)
    fan_in = 3 * 3 * 32
    std = float(np.std(scaled.get_layer("block1_conv1").get_weights()[0]))
    assert std == pytest.approx(0.1 * np.sqrt(2.0 / fan_in), rel=0.1)
    assert std < 0.3 * float(np.std(plain.get_layer("block1_conv1").get_weights()[0]))
    # Only the residual blocks: the head keeps Keras' default.
    np.testing.assert_allclose(np.std(scaled.get_layer("head_conv").get_weights()[0]),
                               np.std(plain.get_layer("head_conv").get_weights()[0]), rtol=0.1)
    with pytest.raises(ValueError, match="residual_init_scale"):
        models.make_generator(**TINY, residual_init_scale=0.0)
