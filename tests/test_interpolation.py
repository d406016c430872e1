"""Network interpolation (ESRGAN): endpoints exact, a blend in between, mismatched architectures refused."""

import numpy as np
import pytest

from sr_lib.cli import main
from sr_lib.nets.interpolation import interpolate_files, interpolate_generators
from sr_lib.nets.models import make_generator


def _pair():
    import keras

    keras.utils.set_random_seed(1)
    a = make_generator(num_blocks=1, channels=8, batch_norm=False)
    keras.utils.set_random_seed(2)
    b = make_generator(num_blocks=1, channels=8, batch_norm=False)
    return a, b


def test_alpha_0_and_1_give_the_endpoints_exactly_and_half_the_mean():
    a, b = _pair()
    for alpha, expected in ((0.0, a), (1.0, b)):
        blended = interpolate_generators(a, b, alpha)
        for got, want in zip(blended.get_weights(), expected.get_weights()):
            np.testing.assert_array_equal(got, want)
    half = interpolate_generators(a, b, 0.5)
    for got, wa, wb in zip(half.get_weights(), a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(got, (wa + wb) / 2, rtol=1e-6, atol=1e-7)
    lr = np.random.default_rng(0).uniform(size=(1, 8, 8, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(interpolate_generators(a, b, 1.0)(lr)), np.asarray(b(lr)))
    with pytest.raises(ValueError, match="alpha"):
        interpolate_generators(a, b, 1.5)


def test_mismatched_architectures_are_a_clear_error(tmp_path, capsys):
    a, _ = _pair()
    wider = make_generator(num_blocks=1, channels=16, batch_norm=False)
    with pytest.raises(ValueError, match="different architectures"):
        interpolate_generators(a, wider, 0.5)
    a.save(tmp_path / "a.keras")
    wider.save(tmp_path / "wide.keras")
    code = main(["interpolate", str(tmp_path / "a.keras"), str(tmp_path / "wide.keras"), "--alpha", "0.5",
                 "--out", str(tmp_path / "c.keras")])
    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith("error:") and "different architectures" in error and "wide.keras" in error
    assert not (tmp_path / "c.keras").exists()


def test_cli_writes_a_loadable_blend(tmp_path):
    import keras

    a, b = _pair()
    a.save(tmp_path / "a.keras")
    b.save(tmp_path / "b.keras")
    assert main(["interpolate", str(tmp_path / "a.keras"), str(tmp_path / "b.keras"), "--alpha", "0.8",
                 "--out", str(tmp_path / "c.keras")]) == 0
    blended = keras.saving.load_model(tmp_path / "c.keras", safe_mode=True)
    for got, wa, wb in zip(blended.get_weights(), a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(got, 0.2 * wa + 0.8 * wb, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=".keras"):
        interpolate_files(tmp_path / "a.keras", tmp_path / "b.keras", 0.5, tmp_path / "c.h5")
