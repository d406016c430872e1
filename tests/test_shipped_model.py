"""The shipped generators. SRResNet x4 (saved_models/srresnet_x4): loads in safe mode, runs in float32, beats bicubic
on embedded photographs it never saw (it was trained on T91 + BSD200), and is the architecture the demo preset
fine-tunes. SRGAN-MSE x4 (saved_models/srgan_x4, the reference comparison's mse_modified): the same, and it trades
PSNR for a lower NIQE on the embedded photographs, as on Set5 and Set14."""

from pathlib import Path

import keras
import pytest

from sr_lib import data
from sr_lib.config import get_preset
from sr_lib.evaluation.evaluate import evaluate_images
from sr_lib.nets.interpolation import check_same_architecture
from sr_lib.training.phases import build_generator

SHIPPED = Path(__file__).resolve().parents[1] / "saved_models" / "srresnet_x4" / "srresnet_x4.keras"
SRGAN = Path(__file__).resolve().parents[1] / "saved_models" / "srgan_x4" / "srgan_x4.keras"


@pytest.fixture(scope="module")
def shipped():
    return keras.saving.load_model(SHIPPED, safe_mode=True)


def test_shipped_generator_is_float32_and_small(shipped):
    assert all(layer.compute_dtype == "float32" for layer in shipped.layers)
    assert SHIPPED.stat().st_size < 25 * 2**20
    assert sum(path.stat().st_size for path in SHIPPED.parent.iterdir()) < 25 * 2**20


def test_shipped_generator_beats_bicubic_on_embedded_crops(shipped):
    crops = [image[top:top + 96, left:left + 96] for image, (top, left) in
             zip(data.default_images("valid"), [(100, 150), (150, 250)])]
    bicubic = evaluate_images(crops, 4).means
    model = evaluate_images(crops, 4, shipped).means
    assert model["psnr_y"] > bicubic["psnr_y"] + 0.5
    assert model["psnr_rgb"] > bicubic["psnr_rgb"]
    assert model["color_shift"] < 2.0


def test_demo_preset_fine_tunes_the_shipped_architecture(shipped):
    check_same_architecture(build_generator(get_preset("demo")), shipped)
    # The paper preset (BN, no global residual) is another architecture: the check must notice.
    with pytest.raises(ValueError, match="different architectures"):
        check_same_architecture(build_generator(get_preset("paper")), shipped)


@pytest.fixture(scope="module")
def srgan():
    return keras.saving.load_model(SRGAN, safe_mode=True)


def test_shipped_srgan_is_float32_small_and_the_reference_architecture(srgan):
    assert all(layer.compute_dtype == "float32" for layer in srgan.layers)
    assert getattr(srgan, "optimizer", None) is None  # The network alone: no optimizer state shipped.
    assert sum(path.stat().st_size for path in SRGAN.parent.iterdir()) < 25 * 2**20
    check_same_architecture(build_generator(get_preset("reference")), srgan)


def test_shipped_srgan_trades_psnr_for_a_lower_niqe(shipped, srgan):
    # The embedded photographs (astronaut, rocket, motorcycle pair, grace_hopper): neither model trained on them.
    images = data.default_images("train")
    srresnet = evaluate_images(images, 4, shipped, niqe=True).means
    gan = evaluate_images(images, 4, srgan, niqe=True).means
    # Measured: NIQE 6.48 -> 4.74 here (Set5/Set14: -1.4/-1.6); half a unit is far outside float noise.
    assert gan["niqe"] < srresnet["niqe"] - 0.5
    assert gan["psnr_y"] < srresnet["psnr_y"]
