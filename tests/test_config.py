"""Config: presets, JSON round trip, and rejection of unknown keys, wrong types and bad values by name."""

import json

import pytest

from sr_lib.config import PRESETS, Config, ConfigError, get_preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(tmp_path, name):
    config = get_preset(name)
    path = tmp_path / "config.json"
    config.to_json(path)
    assert Config.from_json(path) == config


def test_paper_preset_is_the_papers_setting():
    config = get_preset("paper")
    assert (config.model.num_blocks, config.model.channels, config.data.batch_size, config.data.hr_size) == (
        16, 64, 16, 96)
    assert (config.train.pretrain_steps, config.train.gan_steps, config.train.gan_decay_step) == (
        10**6, 2 * 10**5, 10**5)
    assert get_preset("seed").data.hr_size == 256


def test_unknown_key_is_rejected_by_name():
    values = get_preset("ci").to_dict()
    values["train"]["learning_rat"] = 1e-4
    with pytest.raises(ConfigError, match="train.learning_rat"):
        Config.from_dict(values)


@pytest.mark.parametrize("key, value", [("data.batch_size", "16"), ("data.scale", 4.0), ("model.icnr", 1),
                                        ("train.learning_rate", "fast"), ("loss.vgg_weights", 3)])
def test_wrong_type_is_rejected_by_name(key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        get_preset("ci").replace(**{key: value})


@pytest.mark.parametrize("key, value", [("data.scale", 5), ("data.hr_size", 30), ("model.upsample", "deconv"),
                                        ("loss.adversarial", "gan"), ("loss.content", "vgg99"),
                                        ("train.gan_steps", 3), ("train.mixed_precision", "fp8"),
                                        ("train.learning_rate", -1.0), ("loss.label_smoothing", 1.0)])
def test_bad_value_is_rejected_by_name(key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        get_preset("ci").replace(**{key: value})


def test_from_json_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        Config.from_json(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Config.from_json(broken)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"data": {"scale": 2, "hr_size": 48}}))
    config = Config.from_json(partial)
    assert config.data.scale == 2 and config.model.num_blocks == 16  # Missing keys take defaults.


def test_int_is_accepted_for_float_keys():
    config = get_preset("ci").replace(**{"train.learning_rate": 1})
    assert isinstance(config.train.learning_rate, float)


@pytest.mark.parametrize("key, value, message", [
    ("model.global_residual", "lanczos", "model.global_residual"),
    ("model.residual_init_scale", -1.0, "model.residual_init_scale"),
    ("train.pretrain_loss", "l2", "train.pretrain_loss"),
    ("train.pretrain_schedule", "linear", "train.pretrain_schedule"),
    ("train.beta_2", 1.0, "train.beta_2"),
    ("data.valid_holdout", -1, "data.valid_holdout"),
])
def test_new_keys_are_validated_by_name(key, value, message):
    with pytest.raises(ConfigError, match=message):
        get_preset("ci").replace(**{key: value})
