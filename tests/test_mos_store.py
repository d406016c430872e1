"""MOS stimuli and study database: checks before anything is served, identical re-encoding, the anchors, the trial
orders (seeded, repeats later), tokens, resume, and the comparison-run input."""

import argparse
import io
import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from mos_fixtures import METHODS, make_db, make_folder
from sr_lib.mos import cli, stimuli, store


def _chunks(png: bytes) -> list:
    names, offset = [], 8
    while offset < len(png):
        length, name = struct.unpack(">I4s", png[offset:offset + 8])
        names.append(name.decode())
        offset += 12 + length
    return names


def test_encoding_is_identical_and_bare(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add_text("method", "srganzz")
    rgba = np.dstack([pixels, np.full((20, 24), 128, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png", pnginfo=info)
    Image.fromarray(pixels).save(tmp_path / "b.png", compress_level=0)
    Image.fromarray(pixels).save(tmp_path / "c.bmp")
    encoded = {stimuli.encode_png(stimuli.read_rgb(tmp_path / name)) for name in ("a.png", "b.png", "c.bmp")}
    assert len(encoded) == 1  # Equal pixels, equal bytes, whatever the source file held.
    png = encoded.pop()
    assert _chunks(png) == ["IHDR", "IDAT", "IEND"] and b"srganzz" not in png
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), pixels)


def test_anchors_from_hr():
    hr = np.random.default_rng(1).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    made = stimuli.anchors(hr, 4)
    assert made["nearest"].shape == made["bicubic"].shape == hr.shape
    blocks = made["nearest"].reshape(8, 4, 12, 4, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()  # NN: every 4x4 block is one LR pixel.
    assert not np.array_equal(made["bicubic"], made["nearest"])


def test_folder_gives_every_image_by_every_method(tmp_path):
    folder = make_folder(tmp_path / "study", n_images=2, size=30)  # 30 px: cropped to 28 at x4.
    # A method image may have the cropped size (28) or the uncropped HR size (30, then cropped the same way).
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(folder / "mseonly" / "img0.png")
    loaded = stimuli.load_folder(folder, 4)
    assert sorted((s.image, s.method) for s in loaded) == sorted(
        (f"img{i}", m) for i in range(2) for m in ("HR", "nearest", "bicubic") + METHODS)
    assert {Image.open(io.BytesIO(s.png)).size for s in loaded} == {(28, 28)}
    hr = next(s for s in loaded if s.image == "img1" and s.method == "HR")
    original = np.asarray(Image.open(folder / "HR" / "img1.png"))[:28, :28]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(hr.png))), original)


@pytest.mark.parametrize("breakage, message", [
    ("unreadable", r"srganzz[/\\]img1\.png: unreadable image"),
    ("missing", r"mseonly: no img2 \(HR has it\)"),
    ("size", r"srganzz[/\\]img0\.png: 16x16 px, HR is 32x32"),
    ("extra", r"mseonly[/\\]stray\.png: not in HR"),
    ("empty", r"no HR/ folder"),
    ("no_methods", r"no method folder"),
    ("reserved", r"'bicubic' is reserved"),
])
def test_bad_stimuli_named_before_serving(tmp_path, capsys, breakage, message):
    folder = make_folder(tmp_path / "study")
    if breakage == "unreadable":
        (folder / "srganzz" / "img1.png").write_bytes(b"not a png")
    elif breakage == "missing":
        (folder / "mseonly" / "img2.png").unlink()
    elif breakage == "size":
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "srganzz" / "img0.png")
    elif breakage == "extra":
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "mseonly" / "stray.png")
    elif breakage == "empty":
        folder = tmp_path / "empty"
        folder.mkdir()
    elif breakage == "no_methods":
        for method in METHODS:
            for path in (folder / method).iterdir():
                path.unlink()
            (folder / method).rmdir()
    elif breakage == "reserved":
        (folder / "mseonly").rename(folder / "bicubic")
    with pytest.raises(ValueError, match=message):
        stimuli.load_folder(folder, 4)
    db = tmp_path / "study.sqlite"
    assert cli.main(["serve", "--db", str(db), "--stimuli", str(folder), "--no-serve"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: stimuli in ") and error.count("\n") == 1 and "Traceback" not in error
    assert not db.exists()  # Nothing is created before the stimuli are good.


def test_trial_order_is_seeded_with_later_repeats():
    study, calibration = list(range(100, 160)), [1, 2, 3, 4, 5, 6]
    order = store.trial_order(study, calibration, seed=11, repeat_fraction=0.1)
    assert order == store.trial_order(study, calibration, seed=11, repeat_fraction=0.1)
    assert order != store.trial_order(study, calibration, seed=12, repeat_fraction=0.1)
    assert sorted(s for s, phase, _ in order[:6]) == calibration and all(p == "calibration" for _, p, _ in order[:6])
    main = order[6:]
    assert sorted(s for s, _, repeat in main if not repeat) == study
    repeats = [(index, s) for index, (s, _, repeat) in enumerate(main) if repeat]
    assert len(repeats) == 6
    for index, stimulus in repeats:
        first = next(i for i, (s, _, repeat) in enumerate(main) if s == stimulus and not repeat)
        assert index >= first + 2


def test_raters_tokens_seeds_and_resume(tmp_path, capsys):
    db, tokens = make_db(tmp_path, raters=3)
    assert len(set(tokens)) == 3 and all(re.fullmatch(r"[A-Za-z0-9_-]{22}", token) for token in tokens)  # 128 bits.
    connection = store.connect(db)
    orders = [[row[0] for row in connection.execute(
        "SELECT stimulus_id FROM trials WHERE rater_id = ? ORDER BY position", (rater,))] for rater in (1, 2, 3)]
    assert len({tuple(order) for order in orders}) == 3
    seeds = [row[0] for row in connection.execute("SELECT seed FROM raters ORDER BY id")]
    ids = {kind: [row[0] for row in connection.execute("SELECT id FROM stimuli WHERE kind = ? ORDER BY id", (kind,))]
           for kind in ("study", "calibration")}
    expected = store.trial_order(ids["study"], ids["calibration"], seeds[1], 0.1)
    assert [s for s, _, _ in expected] == orders[1]  # The stored seed reproduces the stored order.
    assert store.ensure_raters(connection, 2) == tokens  # Never re-created or removed.
    assert store.ensure_raters(connection, 4)[:3] == tokens
    connection.close()
    folder = tmp_path / "study"
    assert cli.main(["serve", "--db", str(db), "--stimuli", str(folder), "--raters", "4", "--no-serve"]) == 0
    printed = capsys.readouterr().out
    assert "resumed" in printed and all(f"/r/{token}" in printed for token in tokens)
    other = make_folder(tmp_path / "other", methods=("mseonly", "thirdxx"))
    assert cli.main(["serve", "--db", str(db), "--stimuli", str(other), "--no-serve"]) == 2
    assert "another study" in capsys.readouterr().err


def test_not_a_study_database(tmp_path, capsys):
    path = tmp_path / "x.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + bytes(100))
    assert cli.main(["report", "--db", str(path)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert cli.main(["report", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert "no study database" in capsys.readouterr().err


def test_calibration_pictures_are_other_photographs():
    made = stimuli.calibration_stimuli(4)
    assert {(s.method, s.expected) for s in made} == {("HR", 5), ("nearest", 1)}
    assert {s.image for s in made} == set(stimuli.CALIBRATION_PHOTOS)
    assert all(Image.open(io.BytesIO(s.png)).size == (256, 256) for s in made)


def test_comparison_run_gives_a_study_folder(tmp_path):
    import keras

    def tiny_generator():  # LR in [0, 1] -> SR x2 in [-1, 1], of standard layers only (any generator would do).
        inputs = keras.Input((None, None, 3))
        x = keras.layers.UpSampling2D(2)(keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs))
        return keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same", activation="tanh")(x))

    comparison = tmp_path / "compare"
    (comparison / "config.json").parent.mkdir(parents=True)
    (comparison / "config.json").write_text(json.dumps({"data": {"scale": 2}}))
    for slug in ("srresnet_mse", "vgg54_modified"):
        (comparison / "variants" / slug).mkdir(parents=True)
        tiny_generator().save(comparison / "variants" / slug / "generator_final.keras")
    hr = tmp_path / "Set2"
    hr.mkdir()
    for index in range(2):
        Image.fromarray(np.random.default_rng(index).integers(0, 256, (18, 21, 3), np.uint8)).save(hr / f"p{index}.png")
    folder, scale = stimuli.from_comparison(comparison, hr, tmp_path / "stimuli")
    assert scale == 2
    loaded = stimuli.load_folder(folder, scale)
    assert sorted({s.method for s in loaded}) == sorted(["HR", "nearest", "bicubic", "srresnet_mse", "vgg54_modified"])
    assert {Image.open(io.BytesIO(s.png)).size for s in loaded} == {(20, 18)}
    with pytest.raises(ValueError, match="no variant nope"):
        stimuli.from_comparison(comparison, hr, tmp_path / "x", variants=["nope"])
    db = tmp_path / "from_comparison.sqlite"
    assert cli.main(["serve", "--db", str(db), "--comparison", str(comparison), "--hr", str(hr), "--variants",
                     "vgg54_modified", "--no-serve"]) == 0
    connection = store.connect(db)
    assert store.study_names(connection) == (["p0", "p1"], ["HR", "bicubic", "nearest", "vgg54_modified"])
    assert store.meta(connection)["scale"] == "2"
    connection.close()
    assert (tmp_path / "from_comparison_stimuli" / "vgg54_modified" / "p1.png").is_file()


def test_add_parser_gives_the_mos_command(tmp_path):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["mos", "serve", "--db", "s.sqlite", "--stimuli", "DIR", "--raters", "4"])
    assert args.func is cli.cmd_serve and args.raters == 4 and args.host == "127.0.0.1"
    args = parser.parse_args(["mos", "report", "--db", "s.sqlite", "--out", "R"])
    assert args.func is cli.cmd_report and args.out == "R"
    args = parser.parse_args(["mos", "serve", "--db", str(tmp_path / "n.sqlite"), "--comparison", "C"])
    with pytest.raises(ValueError, match="--comparison needs --hr"):  # The top command line prints "error: ...".
        args.func(args)


def test_folder_input_needs_no_tensorflow():
    """sr_lib.mos imports no TensorFlow (sr_lib's own __init__ does, so it is bypassed here)."""
    code = ("import sys, types; package = types.ModuleType('sr_lib'); package.__path__ = ['sr_lib']; "
            "sys.modules['sr_lib'] = package; import sr_lib.mos, sr_lib.mos.cli; "
            "assert not {'tensorflow', 'keras'} & set(sys.modules), 'TensorFlow imported'")
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], check=True)
