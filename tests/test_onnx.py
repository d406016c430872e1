"""ONNX export (tf2onnx) run by onnxruntime: uint8 in and out with dynamic sizes, parity with the SavedModel, the
metadata stored in the model, `upscale` and `evaluate` on a .onnx model, and clear errors when a package is missing."""

import json
import sys
from pathlib import Path

import keras
import numpy as np
import onnx
import onnxruntime  # Pinned in requirements.txt: a missing one fails here, it never skips these tests silently.
import pytest
import tensorflow as tf
from PIL import Image
from skimage import data as skdata

from sr_lib.cli import main
from sr_lib.inference.onnx import ONNX_FILE, ONNX_FLOAT_FILE, ONNX_OPSET, PINS, OptionalDependencyError
from sr_lib.inference.tiling import ReceptiveField
from sr_lib.inference.upscaler import METADATA_FILE, load_upscaler
from sr_lib.nets.models import make_generator
from tolerances import FLOAT_ATOL, assert_uint8_close

pytestmark = [pytest.mark.filterwarnings("ignore:oneDNN is on"),
              pytest.mark.filterwarnings("ignore:.*NIQE is undefined")]  # evaluate on small images
ROOT = Path(__file__).resolve().parents[1]
TINY = dict(num_blocks=1, channels=8)
# Odd, and large enough that 1 pixel in 10^4 allows a few: ONNX Runtime's convolutions sum in another order than
# TensorFlow's (float results differ by about 1e-7, which flips a rounded grey level on about 2e-5 of the pixels).
SIZES = [(11, 13), (64, 96)]
MODELS = {"x4-bicubic-residual": dict(scale=4, global_residual="bicubic", batch_norm=False),
          "x3-subpixel-bn": dict(scale=3),
          "x2-nearest-resize-bilinear-residual": dict(scale=2, upsample="upsampling", interpolation="nearest",
                                                      global_residual="bilinear")}


def _session(path):
    """As a user without sr_lib runs the file."""
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module", params=sorted(MODELS))
def exported(request, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp(request.param)
    keras.utils.set_random_seed(7)
    make_generator(**TINY, **MODELS[request.param]).save(tmp_path / "g.keras")
    out = tmp_path / "export"
    assert main(["export", "--model", str(tmp_path / "g.keras"), "--out", str(out), "--onnx"]) == 0
    rng = np.random.default_rng(0)
    inputs = [rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8) for h, w in SIZES]
    return dict(out=out, keras_file=tmp_path / "g.keras", inputs=inputs, scale=MODELS[request.param]["scale"],
                saved=tf.saved_model.load(str(out)))


def test_onnx_is_uint8_with_dynamic_sizes_and_matches_the_saved_model(exported):
    session = _session(exported["out"] / ONNX_FILE)
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, inp.shape) == ("images", "tensor(uint8)", ["N", "H", "W", 3])
    scale = exported["scale"]
    assert (out.name, out.type, out.shape) == ("output_0", "tensor(uint8)", ["N", f"{scale}H", f"{scale}W", 3])
    float_session = _session(exported["out"] / ONNX_FLOAT_FILE)
    assert float_session.get_inputs()[0].type == float_session.get_outputs()[0].type == "tensor(float)"
    for image in exported["inputs"]:  # Two sizes through one session: H and W are dynamic.
        sr = session.run(None, {"images": image})[0]
        reference = exported["saved"].serving_default(image).numpy()
        assert sr.dtype == np.uint8 and sr.shape == (1, image.shape[1] * scale, image.shape[2] * scale, 3)
        assert_uint8_close(sr, reference)  # Rounding of float results about 1e-7 apart: see tests/tolerances.py.
        unit = image.astype(np.float32) / 255
        np.testing.assert_allclose(float_session.run(None, {"images": unit})[0],
                                   exported["saved"].upscale_float(unit).numpy(), atol=FLOAT_ATOL, rtol=0)


def test_metadata_is_in_the_model_and_in_the_export(exported):
    metadata = json.loads((exported["out"] / METADATA_FILE).read_text())
    assert (metadata["onnx"], metadata["onnx_float"], metadata["onnx_opset"]) == (ONNX_FILE, ONNX_FLOAT_FILE,
                                                                                  ONNX_OPSET)
    assert metadata["onnx_converter"] == "tf2onnx " + PINS["tf2onnx"].split("==")[1]
    for name in (ONNX_FILE, ONNX_FLOAT_FILE):
        model = onnx.load(str(exported["out"] / name))
        assert [opset.version for opset in model.opset_import if opset.domain in ("", "ai.onnx")] == [ONNX_OPSET]
        assert json.loads({p.key: p.value for p in model.metadata_props}["sr_lib"]) == metadata
    upscaler = load_upscaler(exported["out"] / ONNX_FILE)
    assert upscaler.scale == exported["scale"] and upscaler.metadata == metadata
    assert upscaler.field == ReceptiveField.from_json(metadata["receptive_field"])


def test_upscaler_functions_match_the_saved_model(exported):
    """Both files behind one Upscaler: uint8 through model.onnx, float (what `evaluate` feeds) through
    model_float.onnx; and model_float.onnx alone gives the same uint8 results."""
    upscaler = load_upscaler(exported["out"] / ONNX_FILE)
    float_only = load_upscaler(exported["out"] / ONNX_FLOAT_FILE)
    saved = load_upscaler(exported["out"])
    for image in exported["inputs"]:
        assert_uint8_close(upscaler.upscale_uint8(image), saved.upscale_uint8(image).numpy())
        assert_uint8_close(float_only.upscale_uint8(image), saved.upscale_uint8(image).numpy())
        lr = np.random.default_rng(1).random(image.shape, dtype=np.float32)  # Not on the uint8 grid.
        np.testing.assert_allclose(upscaler(lr), saved(lr).numpy(), atol=2 * FLOAT_ATOL, rtol=0)  # [-1, 1]: twice.


def _photo(folder, name="photo.png", crop=(slice(40, 77), slice(100, 161))):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(skdata.astronaut()[crop]).save(folder / name)
    return folder / name


@pytest.mark.parametrize("exported", ["x4-bicubic-residual"], indirect=True)  # One model is enough.
def test_upscale_cli_with_onnx_tiles_and_whole(exported, tmp_path):
    photo = _photo(tmp_path / "in")
    lr = np.asarray(Image.open(photo))
    reference = exported["saved"].serving_default(lr[np.newaxis]).numpy()[0]
    for tile in ("8", "0"):  # Tiles with the receptive field from the metadata, and the whole image.
        out = tmp_path / f"out{tile}"
        assert main(["upscale", "--model", str(exported["out"] / ONNX_FILE), str(photo), "--out", str(out),
                     "--tile", tile, "--no-progress"]) == 0
        assert_uint8_close(np.asarray(Image.open(out / "photo_x4.png")), reference)


@pytest.mark.parametrize("exported", ["x4-bicubic-residual"], indirect=True)  # One model is enough.
def test_evaluate_cli_with_onnx_gives_the_keras_numbers(exported, tmp_path):
    folder = tmp_path / "Set1" / "HR"
    _photo(folder, "a.png", (slice(100, 164), slice(120, 192)))
    _photo(folder, "b.png", (slice(200, 260), slice(300, 356)))
    assert main(["evaluate", "--model", str(exported["keras_file"]), "--model", str(exported["out"] / ONNX_FILE),
                 "--data", str(folder), "--out", str(tmp_path / "ev")]) == 0
    rows = {row["method"]: row for row in json.loads((tmp_path / "ev" / "evaluation.json").read_text())}
    assert {"bicubic", "g.keras", "model.onnx"} <= set(rows)
    for key in ("psnr_y", "ssim_y", "psnr_rgb"):
        assert rows["model.onnx"]["means"][key] == pytest.approx(rows["g.keras"]["means"][key], abs=1e-3)


@pytest.mark.parametrize("exported", ["x3-subpixel-bn"], indirect=True)  # One model is enough.
def test_a_lone_onnx_file_without_metadata(exported, tmp_path, capsys):
    """A model.onnx copied on its own, metadata stripped: the scale comes from a probe run, upscale runs whole images
    (no receptive field, so tiles are refused), and float inputs are rounded to uint8 with a warning."""
    model = onnx.load(str(exported["out"] / ONNX_FILE))
    del model.metadata_props[:]
    lone = tmp_path / "lone" / "sr.onnx"
    lone.parent.mkdir()
    onnx.save(model, str(lone))
    upscaler = load_upscaler(lone)
    assert upscaler.scale == 3 and upscaler.field is None and upscaler.metadata == {}
    image = exported["inputs"][0]
    with pytest.warns(UserWarning, match="rounded to uint8"):
        sr = upscaler(image.astype(np.float32) / 255)
    np.testing.assert_allclose(sr, exported["saved"].serving_default(image).numpy() / 127.5 - 1, atol=1 / 127.5 + 1e-6)
    photo = _photo(tmp_path / "in")
    assert main(["upscale", "--model", str(lone), str(photo), "--out", str(tmp_path / "o"), "--tile", "8",
                 "--no-progress"]) == 2
    assert "receptive field" in capsys.readouterr().err
    assert main(["upscale", "--model", str(lone), str(photo), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert (tmp_path / "o" / "photo_x3.png").is_file()


def test_pins_in_messages_are_those_of_requirements():
    pinned = {line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()}
    assert set(PINS.values()) <= pinned


@pytest.mark.parametrize("exported", ["x4-bicubic-residual"], indirect=True)  # One model is enough.
def test_missing_packages_are_clear_one_line_errors(exported, tmp_path, monkeypatch, capsys):
    photo = _photo(tmp_path / "in")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # As if not installed: importing it raises ImportError.
    with pytest.raises(OptionalDependencyError, match="pip install onnxruntime==") as raised:
        load_upscaler(exported["out"] / ONNX_FILE)
    assert isinstance(raised.value, ImportError) and isinstance(raised.value, ValueError)
    commands = [["upscale", "--model", str(exported["out"] / ONNX_FILE), str(photo), "--out", str(tmp_path / "o")],
                ["evaluate", "--model", str(exported["out"] / ONNX_FILE), "--data", str(photo.parent), "--out",
                 str(tmp_path / "ev")]]
    for argv in commands:
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert error.startswith("error: ") and f"pip install {PINS['onnxruntime']}" in error
        assert "Traceback" not in error and len(error.strip().splitlines()) == 1
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    assert main(["export", "--model", str(exported["keras_file"]), "--out", str(tmp_path / "e"), "--onnx"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and f"pip install {PINS['tf2onnx']}" in error
    assert not (tmp_path / "e").exists()


def test_a_file_that_is_not_onnx_is_refused_by_name(tmp_path, capsys):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    photo = _photo(tmp_path / "in")
    assert main(["upscale", "--model", str(bad), str(photo), "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: could not load the ONNX model") and "broken.onnx" in error
