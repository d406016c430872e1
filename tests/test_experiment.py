"""The comparison's GAN-health columns: the collapse flag, and starting from a given pretrained generator."""

import numpy as np
import pytest

from sr_lib import experiment
from sr_lib.config import ConfigError, get_preset
from sr_lib.models import make_generator


def _crops(seed=0):
    return np.random.default_rng(seed).uniform(size=(4, 16, 16, 3))


def test_constant_output_is_flagged_collapsed():
    hr = _crops()
    constant = np.zeros_like(hr)  # An all-black generator, as the random-VGG54 variant produced.
    assert experiment.collapse_status(constant, hr, psnr_y=25.0, bicubic_psnr_y=24.0) == "collapsed"


def test_a_good_output_is_ok_and_a_far_worse_one_is_collapsed():
    hr = _crops()
    good = np.clip(hr + np.random.default_rng(1).normal(0, 0.02, hr.shape), 0, 1)
    assert experiment.collapse_status(good, hr, psnr_y=26.0, bicubic_psnr_y=24.0) == "ok"
    margin = experiment.COLLAPSE_PSNR_MARGIN_DB
    assert experiment.collapse_status(good, hr, psnr_y=24.0 - margin - 0.1, bicubic_psnr_y=24.0) == "collapsed"
    assert experiment.collapse_status(good, hr, psnr_y=float("nan"), bicubic_psnr_y=24.0) == "collapsed"


def test_pretrained_generator_of_another_architecture_is_refused_before_training(tmp_path):
    config = get_preset("ci")
    other = make_generator(num_blocks=2, channels=8, scale=4)
    other.save(tmp_path / "other.keras")
    with pytest.raises(ConfigError, match="model"):
        experiment.run_comparison(config, tmp_path / "cmp", experiment.get_variants(["srresnet_mse"]),
                                  pretrained=tmp_path / "other.keras")
    assert not (tmp_path / "cmp").exists()
