"""SavedModel/TFLite export, loaded without sr_lib; `evaluate` on .keras files and SavedModels in one table."""

import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from skimage import data as skdata

from sr_lib.core import ranges
from sr_lib.evaluation import metrics
from sr_lib.cli import main
from sr_lib.config import get_preset
from sr_lib.inference.export import TFLITE_FILE
from sr_lib.inference.upscaler import METADATA_FILE
from sr_lib.nets.models import as_float32, make_generator
from tolerances import assert_uint8_close, skip_if_onednn_bf16_hidden

TINY = dict(num_blocks=1, channels=8)
SIZES = [(17, 23), (32, 48)]
MODELS = {"x4-bicubic-residual": dict(scale=4, global_residual="bicubic", batch_norm=False),
          "x3-subpixel-bn": dict(scale=3)}

# Runs in a fresh interpreter that never imports sr_lib: what a TF Serving user or another project has.
LOAD_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf

folder, inputs, outputs = sys.argv[1:4]
loaded = tf.saved_model.load(folder)
signature = loaded.signatures["serving_default"]
arrays = dict(np.load(inputs))
results = {}
for key, image in arrays.items():
    results[key + "/uint8"] = loaded.serving_default(image).numpy()
    results[key + "/float"] = loaded.upscale_float(image.astype(np.float32) / 255.0).numpy()
    results[key + "/signature"] = signature(images=tf.constant(image))["output_0"].numpy()  # As TF Serving calls it.
np.savez(outputs, **results)
spec = signature.structured_input_signature[1]["images"]
print(json.dumps({"sr_lib_imported": any(name.split(".")[0] == "sr_lib" for name in sys.modules),
                  "signatures": sorted(loaded.signatures), "input_shape": spec.shape.as_list(),
                  "input_dtype": spec.dtype.name, "metadata": json.loads(loaded.metadata().numpy().decode())}))
"""


def _run_dir(tmp_path, options):
    """A run directory as training leaves it: generator, config.json, log.csv."""
    run = tmp_path / "run"
    run.mkdir()
    keras.utils.set_random_seed(7)
    make_generator(**TINY, **options).save(run / "generator_best_psnr_y.keras")
    get_preset("ci").to_json(run / "config.json")
    (run / "log.csv").write_text("step,loss,psnr_y,ssim_y\n2,0.5,21.5,0.61\n4,0.4,22.25,0.65\n6,0.45,22.0,0.64\n")
    return run


@pytest.fixture(scope="module", params=sorted(MODELS))
def exported(request, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp(request.param)
    run = _run_dir(tmp_path, MODELS[request.param])
    out = tmp_path / "saved_models" / "tiny"
    assert main(["export", "--model", str(run / "generator_best_psnr_y.keras"), "--out", str(out), "--tflite"]) == 0
    rng = np.random.default_rng(0)
    inputs = {f"{h}x{w}": rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8) for h, w in SIZES}
    np.savez(tmp_path / "inputs.npz", **inputs)
    env = {key: value for key, value in os.environ.items()}
    done = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(out), str(tmp_path / "inputs.npz"),
                           str(tmp_path / "outputs.npz")], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    model = keras.saving.load_model(run / "generator_best_psnr_y.keras", safe_mode=True)
    return dict(out=out, run=run, inputs=inputs, outputs=dict(np.load(tmp_path / "outputs.npz")), info=info,
                model=model, scale=MODELS[request.param]["scale"])


def test_saved_model_loads_without_sr_lib_and_matches_keras(exported):
    info = exported["info"]
    assert info["sr_lib_imported"] is False
    assert info["signatures"] == ["metadata", "serving_default", "upscale_float"]
    assert info["input_shape"] == [None, None, None, 3] and info["input_dtype"] == "uint8"
    scale = exported["scale"]
    # Graph mode, as the SavedModel runs (eager op-by-op kernels can differ in the last bit and then, rarely, in a
    # rounded grey level, which would test TensorFlow's execution modes rather than the export), traced per image
    # size: Keras 3.15's bicubic UpSampling2D cannot trace with unknown sizes (model.predict's second size).
    keras_graph = tf.function(lambda images: exported["model"](images, training=False))
    for key, image in exported["inputs"].items():
        keras_out = keras_graph(tf.constant(image.astype(np.float32) / 255.0))
        sr_uint8 = exported["outputs"][key + "/uint8"]
        assert sr_uint8.dtype == np.uint8 and sr_uint8.shape == (1, image.shape[1] * scale, image.shape[2] * scale, 3)
        assert_uint8_close(sr_uint8, ranges.hr_to_uint8(keras_out).numpy())  # Rounding: see tests/tolerances.py.
        np.testing.assert_array_equal(exported["outputs"][key + "/signature"], sr_uint8)
        sr_float = exported["outputs"][key + "/float"]
        assert sr_float.dtype == np.float32 and 0.0 <= sr_float.min() and sr_float.max() <= 1.0
        np.testing.assert_allclose(sr_float, ranges.hr_to_unit(keras_out).numpy(), atol=1e-5, rtol=0)


def test_metadata_holds_scale_config_and_metrics(exported):
    metadata = exported["info"]["metadata"]
    assert metadata == json.loads((exported["out"] / METADATA_FILE).read_text())
    assert metadata["scale"] == exported["scale"] and metadata["precision"] == "float32"
    assert metadata["training_config"] == json.loads((exported["run"] / "config.json").read_text())
    log = metadata["metrics"]
    assert log["final"]["step"] == 6 and log["best_psnr_y"]["step"] == 4 and log["best_psnr_y"]["psnr_y"] == 22.25
    assert metadata["receptive_field"]["scale"] == exported["scale"]
    assert metadata["receptive_field"]["radius"] >= 4 + 2 + 1  # Head 9x9, one block, body conv, at least.


def test_tflite_matches_after_resize_tensor_input(exported):
    """Tolerance: at most 1 grey level on at most 0.1% of values (TFLite's CPU kernels round differently)."""
    loaded = tf.saved_model.load(str(exported["out"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice.
        interpreter = tf.lite.Interpreter(model_path=str(exported["out"] / TFLITE_FILE))
    detail = interpreter.get_input_details()[0]
    assert list(detail["shape_signature"]) == [-1, -1, -1, 3] and detail["dtype"] == np.uint8
    for image in exported["inputs"].values():
        interpreter.resize_tensor_input(detail["index"], image.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(detail["index"], image)
        interpreter.invoke()
        result = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        reference = loaded.serving_default(image).numpy()
        assert result.shape == reference.shape and result.dtype == np.uint8
        difference = np.abs(result.astype(int) - reference.astype(int))
        assert difference.max() <= 1 and np.mean(difference > 0) <= 1e-3


def test_mixed_precision_generator_exports_float32(tmp_path):
    skip_if_onednn_bf16_hidden()  # It also runs the generator in bfloat16, to show the export differs from it.
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = make_generator(**TINY, scale=2, global_residual="bicubic", batch_norm=False)
    keras.mixed_precision.set_global_policy("float32")
    model.save(tmp_path / "g.keras")
    assert main(["export", "--model", str(tmp_path / "g.keras"), "--out", str(tmp_path / "sm")]) == 0
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    assert loaded.variables and all(variable.dtype == tf.float32 for variable in loaded.variables)
    graph = loaded.signatures["serving_default"].graph.as_graph_def()
    assert "DT_BFLOAT16" not in str(graph)
    metadata = json.loads(loaded.metadata().numpy().decode())
    assert metadata["precision"] == "float32" and "mixed_bfloat16" in metadata["trained_dtype_policies"]
    image = np.random.default_rng(1).random((1, 13, 19, 3), dtype=np.float32)
    exported = loaded.upscale_float(image).numpy()
    float32 = ranges.hr_to_unit(as_float32(model)(image)).numpy()
    np.testing.assert_allclose(exported, float32, atol=1e-5, rtol=0)
    # The generator as trained (bfloat16 compute) is visibly different: the test could tell.
    assert np.abs(ranges.hr_to_unit(model(image)).numpy() - exported).max() > 1e-3


def test_export_errors_are_clear(tmp_path, capsys):
    run = _run_dir(tmp_path, dict(scale=2))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file.txt").write_text("keep me")
    cases = [(["--model", str(tmp_path / "missing.keras"), "--out", str(tmp_path / "a")], "missing.keras"),
             (["--model", str(run / "generator_best_psnr_y.keras"), "--out", str(tmp_path / "taken")], "not empty"),
             (["--model", str(run / "generator_best_psnr_y.keras"), "--out", str(tmp_path / "b"),
               "--metrics", str(tmp_path / "nope.csv")], "nope.csv")]
    for argv, message in cases:
        assert main(["export"] + argv) == 2
        error = capsys.readouterr().err
        assert error.startswith("error: ") and message in error and "Traceback" not in error
    assert (tmp_path / "taken" / "file.txt").read_text() == "keep me"
    assert not (tmp_path / "b").exists() and not any(p.name.startswith(".b.") for p in tmp_path.iterdir())


# --------------------------------------------------------------------------------------------------- evaluate

def test_evaluate_keras_and_saved_model_in_one_table(exported, tmp_path):
    if exported["scale"] != 4:
        pytest.skip("one model is enough")
    folder = tmp_path / "Set2" / "HR"
    folder.mkdir(parents=True)
    Image.fromarray(skdata.astronaut()[100:160, 120:176]).save(folder / "a.png")
    Image.fromarray(skdata.coffee()[50:90, 200:244]).save(folder / "b.png")
    Image.fromarray(skdata.coffee()[:1, :1]).save(folder / "dot.png")  # Smaller than the scale.
    Image.fromarray(skdata.coffee()[:19, :40]).save(folder / "thin.png")  # Too thin for SSIM after the border.
    keras_file = exported["run"] / "generator_best_psnr_y.keras"
    with pytest.warns(UserWarning) as caught:
        code = main(["evaluate", "--model", str(keras_file), "--model", str(exported["out"]), "--data", str(folder),
                     "--save-images", "--out", str(tmp_path / "ev")])
    assert code == 0
    skipped = [str(w.message) for w in caught if "skipping" in str(w.message)]
    assert skipped and all("dot" in m and "thin" in m and " a:" not in m for m in skipped)
    table = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert [row["method"] for row in table] == ["bicubic", "generator_best_psnr_y.keras", "tiny"]
    assert all([image["name"] for image in row["per_image"]] == ["a", "b"] for row in table)
    keras_row, saved_row = table[1]["means"], table[2]["means"]
    for key in ("psnr_y", "ssim_y", "psnr_rgb"):
        assert saved_row[key] == pytest.approx(keras_row[key], abs=1e-3)
    # The written SR images give the same numbers to anyone who measures them.
    hr = np.asarray(Image.open(folder / "a.png"))
    sr = np.asarray(Image.open(tmp_path / "ev" / "images" / "Set2" / "tiny" / "a.png"))
    assert sr.shape == (60, 56, 3)
    assert float(metrics.psnr_y(hr, sr, crop_border=4)) == pytest.approx(table[2]["per_image"][0]["psnr_y"], abs=1e-4)


def test_evaluate_refuses_a_model_of_another_scale(exported, tmp_path, capsys):
    if exported["scale"] != 3:
        pytest.skip("one model is enough")
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(skdata.astronaut()[:48, :48]).save(folder / "a.png")
    assert main(["evaluate", "--model", str(exported["out"]), "--scale", "4", "--data", str(folder), "--out",
                 str(tmp_path / "ev")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "tiny (x3)" in error
