"""Tiled inference equals whole-image inference within one grey level; the `upscale` command on good, odd and broken
files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from sr_lib.inference import tiling
from sr_lib.cli import main
from sr_lib.nets.models import make_generator
from tolerances import FLOAT_ATOL, MAX_GREY_LEVELS, assert_uint8_close, within_one_grey_level

# In-process runs keep the test session's oneDNN setting; upscale says tiles are then exact only to float rounding.
pytestmark = pytest.mark.filterwarnings("ignore:oneDNN is on")
TINY = dict(num_blocks=1, channels=8)
ROOT = Path(__file__).resolve().parents[1]
CHATTER = ("oneDNN custom operations", "cuda drivers", "absl::InitializeLog", "cpu_feature_guard",
           "This TensorFlow binary")


def _env(**extra):
    env = {key: value for key, value in os.environ.items() if key not in ("TF_CPP_MIN_LOG_LEVEL",
                                                                        "TF_ENABLE_ONEDNN_OPTS")}
    return {**env, **extra}


# ------------------------------------------------------------------------------------------------ receptive field

def test_receptive_field_of_the_paper_generator():
    # Hand count for SRResNet-16 x4, in LR pixels: 9x9 head 4, 16 blocks x two 3x3 convs 32, body conv 1, first x2
    # stage's conv 1, second stage's conv 1/2 (at x2), 9x9 tail 4/4 (at x4): 39.5, and a cell needs whole pixels.
    field = tiling.receptive_field(make_generator(num_blocks=16, channels=64, scale=4))
    assert field.scale == 4 and field.before == (40, 40) and field.after == (40, 40)
    # The resized global-residual branch (bicubic: 2 LR px) is inside the body's reach, so nothing changes.
    residual = tiling.receptive_field(make_generator(num_blocks=16, channels=64, scale=4, global_residual="bicubic"))
    assert residual.radius == 40


@pytest.mark.parametrize("interpolation, reach", [("nearest", 1), ("bilinear", 1), ("bicubic", 2)])
def test_every_path_counts(interpolation, reach):
    """A 3x3 conv (1 LR px) upscaled x4, plus a resized copy of the input: the wider of the two paths decides."""
    inputs = keras.Input((None, None, 3))
    conv = keras.layers.UpSampling2D(4)(keras.layers.Conv2D(3, 3, padding="same")(inputs))
    resized = keras.layers.UpSampling2D(4, interpolation=interpolation)(inputs)
    field = tiling.receptive_field(keras.Model(inputs, keras.layers.Add()([conv, resized])))
    assert field.scale == 4 and field.before == field.after == (max(1, reach),) * 2
    alone = tiling.receptive_field(keras.Model(inputs, resized))
    assert alone.before == alone.after == (0 if interpolation == "nearest" else reach,) * 2


def test_receptive_field_grows_by_two_per_residual_block():
    radii = [tiling.receptive_field(make_generator(num_blocks=b, channels=4, scale=2)).radius for b in (0, 1, 5)]
    assert radii[1] - radii[0] == 2 and radii[2] - radii[0] == 10


def test_unknown_or_strided_layers_are_refused_by_name():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="strided")(inputs)
    outputs = keras.layers.UpSampling2D(2)(x)
    with pytest.raises(ValueError, match="strided"):
        tiling.receptive_field(keras.Model(inputs, outputs))
    y = keras.layers.Conv2D(3, 3, padding="valid", name="shrinks")(inputs)
    with pytest.raises(ValueError, match="shrinks"):
        tiling.receptive_field(keras.Model(inputs, y))


@pytest.mark.parametrize("size", [1, 5, 16, 17, 64, 100])
@pytest.mark.parametrize("tile", [0, 1, 7, 16])
def test_tiles_cover_each_pixel_once_with_clamped_context(size, tile):
    tiles = tiling.plan_axis(size, tile, before=5, after=3)
    kept = [i for _, _, k0, k1 in tiles for i in range(k0, k1)]
    assert kept == list(range(size))
    for r0, r1, k0, k1 in tiles:
        assert r0 == max(0, k0 - 5) and r1 == min(size, k1 + 3)  # Real context, clamped at the border, no padding.


# ------------------------------------------------------------------------------------------ tiled == whole image

@pytest.fixture(scope="module", params=["0", "1"], ids=["eigen", "onednn"])
def tiling_results(request, tmp_path_factory):
    """tests/tiling_check.py in its own process, with oneDNN's custom kernels off and on (read at TensorFlow's
    start), on whatever instruction set this CPU (or ONEDNN_MAX_CPU_ISA) gives."""
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "tiling_check.py"),
                           str(tmp_path_factory.mktemp("tiling"))], capture_output=True, text=True, cwd=ROOT,
                          env=_env(TF_ENABLE_ONEDNN_OPTS=request.param))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


CASES = [f"x{s}-{u}" for s in (2, 3, 4, 8) for u in ("subpixel", "upsampling")] + [
    "x4-subpixel-bicubic-residual", "x4-subpixel-bicubic-residual-savedmodel", "x2-upsampling-bilinear",
    "x3-subpixel-bicubic-residual", "x3-upsampling-bilinear"]


@pytest.mark.parametrize("case", CASES)
def test_tiled_equals_whole_image_within_one_grey_level(tiling_results, case):
    """Tiles are other problem sizes, so the CPU's kernels reorder float sums: equal within rounding, not bit for bit
    (bounds in tests/tolerances.py)."""
    result = tiling_results[case]
    scale = int(case.split("-")[0][1:])
    assert len(result["shapes"]) >= 5
    for shape in result["shapes"]:
        height, width = shape["shape"]
        assert shape["output"] == [height * scale, width * scale, 3]
        assert within_one_grey_level(shape["uint8"]), shape
        assert shape["float_max_diff"] <= FLOAT_ATOL, shape


@pytest.mark.parametrize("case", CASES)
def test_one_pixel_less_context_changes_the_result(tiling_results, case):
    """The computed context is needed on every side: one pixel less and pixels read zero padding instead, which
    moves the result by more than any rounding difference."""
    short = tiling_results[case]["short_context_max_diff"]
    assert set(short) == {"before[0]", "before[1]", "after[0]", "after[1]"}
    assert all(diff > FLOAT_ATOL for diff in short.values()), short


@pytest.mark.parametrize("case", CASES)
def test_tiles_without_context_leave_a_visible_seam(tiling_results, case):
    """A context smaller than the receptive field fails visibly: a whole HR row or column at a tile edge is off by
    more than one grey level on average."""
    assert tiling_results[case]["no_context_seam"] > MAX_GREY_LEVELS, tiling_results[case]["no_context_seam"]


# ------------------------------------------------------------------------------------------------ the command

@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    keras.utils.set_random_seed(3)
    path = tmp_path_factory.mktemp("model") / "g.keras"
    make_generator(**TINY, scale=2, global_residual="bicubic", batch_norm=False).save(path)
    return path


def _save_inputs(folder):
    """Good images in odd modes (palette, 16-bit grey, grey+alpha, CMYK JPEG, EXIF-rotated) and broken files."""
    folder.mkdir(parents=True)
    (folder / "nested" / "deeper").mkdir(parents=True)
    photo = skdata.astronaut()[80:110, 150:190]  # 30 x 40
    Image.fromarray(photo).save(folder / "rgb.png")
    Image.fromarray(photo).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    Image.fromarray((skdata.camera()[:20, :25].astype(np.uint16) * 257)).save(folder / "gray16.png")
    Image.fromarray(photo).convert("LA").save(folder / "nested" / "gray_alpha.png")
    Image.fromarray(photo).convert("CMYK").save(folder / "nested" / "deeper" / "cmyk.jpg")
    rotated = Image.fromarray(photo)
    exif = rotated.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees on display.
    rotated.save(folder / "exif_rotated.jpg", exif=exif)
    good = {"rgb": (30, 40), "palette": (30, 40), "gray16": (20, 25), "gray_alpha": (30, 40), "cmyk": (30, 40),
            "exif_rotated": (40, 30)}
    (folder / "text.png").write_text("this is not an image")
    (folder / "empty.jpg").write_bytes(b"")
    whole = folder / "rgb.png"
    (folder / "truncated.png").write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 2])
    Image.fromarray(skdata.coffee()[:60, :60]).save(folder / "nested" / "bomb.png")  # Over the limit set below.
    return good, {"text.png", "empty.jpg", "truncated.png", "bomb.png"}


def test_upscale_writes_every_good_image_and_names_every_bad_one(tiny_model, tmp_path, capsys, monkeypatch):
    good, bad = _save_inputs(tmp_path / "in")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1500)  # 60x60 = 3600 px is then a "decompression bomb" (> 2x).
    out = tmp_path / "out"
    code = main(["upscale", "--model", str(tiny_model), str(tmp_path / "in"), "--out", str(out), "--tile", "9",
                 "--no-progress"])
    monkeypatch.undo()  # Pillow's usual limit again, to open the outputs.
    captured = capsys.readouterr()
    assert code == 2
    written = {path.relative_to(out).as_posix(): path for path in out.rglob("*.png")}
    assert set(written) == {"rgb_x2.png", "palette_x2.png", "gray16_x2.png", "nested/gray_alpha_x2.png",
                            "nested/deeper/cmyk_x2.png", "exif_rotated_x2.png"}  # Sub-folders mirrored.
    for name, path in written.items():
        with Image.open(path) as image:
            height, width = good[Path(name).stem[:-3]]
            assert image.mode == "RGB" and image.size == (width * 2, height * 2)
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    for name in bad:
        assert sum(name in line for line in errors) >= 1, (name, errors)
    assert "4 input(s) failed" in captured.err and "Traceback" not in captured.err
    assert "upscaled 6 image(s) x2" in captured.out


def test_upscale_never_writes_over_an_input(tiny_model, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(skdata.astronaut()[:20, :24]).save(folder / "a.png")
    Image.fromarray(skdata.coffee()[:16, :16]).save(folder / "a_x2.png")  # The output name of a.png.
    before = (folder / "a_x2.png").read_bytes()
    code = main(["upscale", "--model", str(tiny_model), str(folder), "--out", str(folder), "--no-progress"])
    error = capsys.readouterr().err
    assert code == 2
    assert (folder / "a_x2.png").read_bytes() == before
    assert any("a.png" in line and "which is an input" in line for line in error.splitlines())
    with Image.open(folder / "a_x2_x2.png") as image:  # The other input was still upscaled.
        assert image.size == (32, 32)


def test_the_same_output_for_two_inputs_is_refused(tiny_model, tmp_path, capsys):
    for sub in ("one", "two"):
        (tmp_path / sub).mkdir()
        Image.fromarray(skdata.astronaut()[:12, :12]).save(tmp_path / sub / "x.png")
    code = main(["upscale", "--model", str(tiny_model), str(tmp_path / "one" / "x.png"),
                 str(tmp_path / "two" / "x.png"), "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 2
    assert "also the output of" in capsys.readouterr().err
    assert len(list((tmp_path / "out").glob("*.png"))) == 1


@pytest.mark.parametrize("argv, message", [
    (["--model", "/no/such/g.keras", "IMG"], "/no/such/g.keras"),
    (["--model", "MODELDIR", "IMG"], "not a SavedModel"),
    (["--model", "MODEL", "IMG", "--tile", "-3"], "--tile"),
    (["--model", "MODEL", "/no/such/photo.png"], "/no/such/photo.png"),
])
def test_bad_arguments_are_clear_errors(argv, message, tiny_model, tmp_path, capsys):
    Image.fromarray(skdata.astronaut()[:12, :12]).save(tmp_path / "img.png")
    (tmp_path / "modeldir").mkdir()
    names = {"IMG": str(tmp_path / "img.png"), "MODEL": str(tiny_model), "MODELDIR": str(tmp_path / "modeldir")}
    code = main(["upscale"] + [names.get(arg, arg) for arg in argv] + ["--out", str(tmp_path / "o"),
                                                                       "--no-progress"])
    error = capsys.readouterr().err
    assert code == 2 and message in error and "Traceback" not in error


def test_command_line_run_matches_whole_image_and_is_quiet(tiny_model, tmp_path):
    """`python -m sr_lib upscale` as a user runs it: tiled output equals --tile 0 within one grey level, and stderr
    holds the command's own lines, not TensorFlow's start-up chatter."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(skdata.astronaut()[40:101, 60:127]).save(folder / "photo.png")  # 61 x 67
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    outputs = {}
    for tile in ("0", "11"):
        done = subprocess.run([sys.executable, "-m", "sr_lib", "upscale", "--model", str(tiny_model), str(folder),
                               "--out", str(tmp_path / f"tile{tile}"), "--tile", tile, "--no-progress"],
                              capture_output=True, text=True, cwd=tmp_path, env=_env())
        assert done.returncode == 2, done.stderr[-2000:]
        assert not any(text in done.stderr for text in CHATTER), done.stderr
        lines = done.stderr.strip().splitlines()  # Only the command's own lines.
        assert len(lines) == 2, lines
        assert lines[0].startswith(f"error: cannot decode image {folder / 'broken.png'}")
        assert lines[1] == "error: 1 input(s) failed (listed above); the others were written"
        outputs[tile] = np.asarray(Image.open(tmp_path / f"tile{tile}" / "photo_x2.png"))
    assert outputs["0"].shape == (122, 134, 3)
    assert_uint8_close(outputs["11"], outputs["0"])


def test_warnings_are_one_line_and_verbose_shows_tensorflow(tiny_model, tmp_path):
    script = ("import sys, warnings\n"
              "sys.argv = ['-m', 'upscale']\n"  # As `python -m sr_lib upscale` looks while sr_lib is imported.
              "import sr_lib\n"
              "warnings.warn('a warning for the user')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=_env())
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == ["warning: a warning for the user"]
    Image.fromarray(skdata.astronaut()[:30, :30]).save(tmp_path / "a.png")
    command = [sys.executable, "-m", "sr_lib", "upscale", "--model", str(tiny_model), str(tmp_path / "a.png"),
               "--out", str(tmp_path / "o"), "--tile", "8", "--no-progress"]
    quiet = subprocess.run(command, capture_output=True, text=True, env=_env())
    assert quiet.returncode == 0 and quiet.stderr.strip() == "", quiet.stderr[-2000:]
    verbose = subprocess.run(command + ["--verbose"], capture_output=True, text=True, env=_env())
    assert verbose.returncode == 0
    assert len(verbose.stderr.strip().splitlines()) > 0  # TensorFlow's own start-up log is shown again.


def test_start_up_chatter_is_dropped_but_real_native_errors_pass(tmp_path):
    """The C++ log filter of `python -m sr_lib`: start-up notices go, anything else reaches the terminal, even from a
    process that then dies."""
    script = (
        "import os, sys\n"
        "sys.argv = ['-m', 'upscale']\n"  # As `python -m sr_lib upscale` looks while sr_lib is being imported.
        "import sr_lib\n"
        "os.write(2, b'I0000 00:00:1795723445.246832    6283 port.cc:153] oneDNN custom operations are on.\\n')\n"
        "os.write(2, b'E0000 00:00:1795724942.196663    6504 cuda_platform.cc:52] failed call to cuInit\\n')\n"
        "os.write(2, b'F0000 00:00:1795724942.196663    6504 conv_ops.cc:99] Check failed: a real problem\\n')\n"
        "print('python stderr', file=sys.stderr, flush=True)\n"
        "os.abort()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=_env())
    assert done.returncode != 0
    assert "Check failed: a real problem" in done.stderr and "python stderr" in done.stderr
    assert "oneDNN" not in done.stderr and "cuInit" not in done.stderr


# ------------------------------------------------------------------------------------------- the measured context

def test_default_context_of_a_large_model_is_the_measured_one():
    """SRResNet-16 x4 (field 40 px) tiles with the context benchmarks/tile_context.py measured on real photographs,
    per precision; fields within it keep their exact context (the tests' tiny models), deeper ones the measured
    fraction."""
    from sr_lib.inference.upscale import MEASURED_CONTEXT, default_context

    measured = json.loads((ROOT / "benchmarks" / "tile_context.json").read_text())
    assert measured["receptive_field"]["radius"] == 40 and set(measured["precisions"]) == set(MEASURED_CONTEXT)
    field = tiling.receptive_field(make_generator(num_blocks=16, channels=64, scale=4))
    tiny = tiling.receptive_field(make_generator(**TINY, scale=2))
    deep = tiling.receptive_field(make_generator(num_blocks=32, channels=8, scale=4))
    for precision, context in MEASURED_CONTEXT.items():
        assert default_context(field, precision) == context == measured["precisions"][precision]["chosen_context"]
        assert tiny.radius <= context and default_context(tiny, precision) == tiny.radius
        if context < field.radius:  # float32: a far pixel's influence decays below rounding.
            assert context < default_context(deep, precision) < deep.radius
        else:  # bfloat16: its roundings cascade, so it keeps the whole field.
            assert default_context(deep, precision) == deep.radius
    assert MEASURED_CONTEXT["float32"] < field.radius
    assert field.with_context(12).before == field.with_context(12).after == (12, 12)
    assert field.with_context(500) == field and field.with_context(None) == field


def _upscale_png(model, image_path, out, *options):
    assert main(["upscale", "--model", str(model), str(image_path), "--out", str(out), "--no-progress", *options]) == 0
    return np.asarray(Image.open(out / "photo_x2.png"))


def test_a_context_smaller_than_the_field_leaves_a_seam(tiny_model, tmp_path, capsys):
    """`--context` below the receptive field of a random (untrained, so no decay of far pixels' influence) model:
    tile edges read zero padding instead of the image, a seam worse than one grey level along a whole HR row or
    column; the exact field (the default for this tiny model) leaves none."""
    from tiling_check import _seam

    Image.fromarray(skdata.astronaut()[::4, ::4][:48, :48]).save(tmp_path / "photo.png")
    whole = _upscale_png(tiny_model, tmp_path / "photo.png", tmp_path / "whole", "--tile", "0")
    short = _upscale_png(tiny_model, tmp_path / "photo.png", tmp_path / "short", "--tile", "16", "--context", "2")
    assert "with 2 px of context, receptive field 10 px, " in capsys.readouterr().out
    assert _seam(whole, short, 16, 2) > MAX_GREY_LEVELS
    exact = _upscale_png(tiny_model, tmp_path / "photo.png", tmp_path / "exact", "--tile", "16")
    assert "with 10 px of context, receptive field 10 px, " in capsys.readouterr().out
    assert_uint8_close(exact, whole)


def test_a_context_beyond_the_field_is_clamped(tiny_model, tmp_path, capsys):
    from sr_lib.inference.upscale import resolve_context
    from sr_lib.inference.upscaler import load_upscaler

    upscaler = load_upscaler(tiny_model)
    assert resolve_context(upscaler, 1000) == upscaler.field.radius == 10
    Image.fromarray(skdata.astronaut()[100:137, 200:241]).save(tmp_path / "photo.png")
    whole = _upscale_png(tiny_model, tmp_path / "photo.png", tmp_path / "whole", "--tile", "0")
    wide = _upscale_png(tiny_model, tmp_path / "photo.png", tmp_path / "wide", "--tile", "9", "--context", "1000")
    assert "tiles of 9 LR px with 10 px of context" in capsys.readouterr().out
    assert_uint8_close(wide, whole)
    code = main(["upscale", "--model", str(tiny_model), str(tmp_path / "photo.png"), "--out", str(tmp_path / "bad"),
                 "--context", "-1", "--no-progress"])
    error = capsys.readouterr().err
    assert code == 2 and "--context" in error and "Traceback" not in error


def test_an_image_within_one_tiles_memory_runs_whole():
    from sr_lib.inference.upscale import tile_for_image

    field = tiling.ReceptiveField(2, (10, 10), (10, 10), 4)
    assert tile_for_image(field, 16, None, (36, 36, 3)) == 0  # 36 x 36 px: exactly one read window.
    assert tile_for_image(field, 16, None, (30, 43)) == 0  # Fewer pixels than a window, in another shape.
    assert tile_for_image(field, 16, None, (37, 36)) == 16
    assert tile_for_image(field, 16, 2, (20, 21)) == 16  # A smaller context reads a smaller window.
    assert tile_for_image(field, 0, None, (500, 500)) == 0


def test_the_default_tile_runs_small_images_whole_and_tiles_large_ones(tiny_model, tmp_path, capsys, monkeypatch):
    from sr_lib.inference import upscale
    from sr_lib.inference.upscaler import load_upscaler

    field = load_upscaler(tiny_model).field
    window = tiling.MIN_DEFAULT_TILE + 2 * field.radius  # The smallest default tile (32 px): a 52 x 52 px window.
    monkeypatch.setattr(tiling, "DEFAULT_ACTIVATION_BUDGET", field.bytes_per_pixel * window**2)
    monkeypatch.setattr(upscale, "onednn_below_avx512", lambda: False)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(skdata.astronaut()[:30, :40]).save(folder / "small.png")  # 1200 px: one window holds it.
    Image.fromarray(skdata.astronaut()[::4, ::4][:60, :60]).save(folder / "large.png")
    assert main(["upscale", "--model", str(tiny_model), str(folder), "--out", str(tmp_path / "out"),
                 "--precision", "float32", "--no-progress"]) == 0  # The budget counts float32 bytes.
    said = capsys.readouterr().out
    assert "tiles of 32 LR px with 10 px of context" in said
    assert "; 1 image(s) within one tile's memory ran whole" in said  # small.png; large.png (3600 px) was tiled.
    assert main(["upscale", "--model", str(tiny_model), str(folder), "--out", str(tmp_path / "whole"), "--tile", "0",
                 "--precision", "float32", "--no-progress"]) == 0
    for name in ("small_x2.png", "large_x2.png"):
        assert_uint8_close(np.asarray(Image.open(tmp_path / "out" / name)),
                           np.asarray(Image.open(tmp_path / "whole" / name)))


# ------------------------------------------------------------------------------------------------ the precision

def test_bf16_is_the_default_only_where_native_and_only_for_keras_generators(tiny_model, monkeypatch):
    from types import SimpleNamespace

    from sr_lib.inference import upscale
    from sr_lib.inference.upscaler import load_upscaler

    upscaler = load_upscaler(tiny_model)
    for native in (True, False):
        monkeypatch.setattr(upscale, "native_bf16", lambda native=native: native)
        assert upscale.resolve_precision(upscaler, "auto") == ("mixed_bfloat16" if native else "float32")
    assert upscale.resolve_precision(upscaler, "float32") == "float32"
    export = SimpleNamespace(name="saved_model", field=upscaler.field)  # An export: no Keras model to copy.
    assert upscale.resolve_precision(export, "auto") == "float32"
    with pytest.raises(ValueError, match="float32"):
        upscale.resolve_precision(export, "mixed_bfloat16")
    with pytest.raises(ValueError, match="--precision"):
        upscale.resolve_precision(upscaler, "float16")


def test_bf16_tiles_equal_the_bf16_whole_image(tiny_model):
    """Under mixed_bfloat16 the tiles (exact context of this tiny model) equal the bf16 whole image within one grey
    level; bf16 itself differs from float32 by its 8-bit roundings, a few grey levels at most here."""
    from sr_lib.inference.upscale import native_bf16, with_precision
    from sr_lib.inference.upscaler import load_upscaler

    if not native_bf16():
        pytest.skip("no native bf16 here (CPU, ONEDNN_MAX_CPU_ISA or TF_ENABLE_ONEDNN_OPTS=0): upscale runs float32")
    upscaler = load_upscaler(tiny_model)
    bf16 = with_precision(upscaler, "mixed_bfloat16")
    image = skdata.astronaut()[100:161, 200:267]
    whole = tiling.upscale_tiled(bf16.upscale_uint8, image, bf16.field, 0)
    assert_uint8_close(tiling.upscale_tiled(bf16.upscale_uint8, image, bf16.field, 11), whole)
    float32 = tiling.upscale_tiled(upscaler.upscale_uint8, image, upscaler.field, 0)
    difference = np.abs(whole.astype(np.int16) - float32.astype(np.int16))
    assert 0 < difference.max() <= 8, difference.max()  # bf16 really computes, and stays close.
