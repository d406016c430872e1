"""Tests for sr_lib.data: discovery, robust decoding, bicubic pairs, crops/augmentation and the tf.data stream."""

import struct
import warnings
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageFile

from sr_lib import data
from sr_lib.core import ranges


def noise(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def coordinate_image(height, width, tag):
    """Pixel (y, x) holds (y, x, tag): any crop reveals where it came from, and from which image."""
    grid = np.stack(np.meshgrid(np.arange(height), np.arange(width), indexing="ij"), axis=-1)
    return np.concatenate([grid, np.full((height, width, 1), tag)], axis=-1).astype(np.uint8)


def dihedral(image):
    """The 8 flips/rotations of a square HWC image."""
    return [np.rot90(flipped, k) for flipped in (image, image[:, ::-1]) for k in range(4)]


def write_png16_rgb(path, array):
    """A 16-bit RGB PNG, written by hand because Pillow cannot write one."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    height, width, _ = array.shape
    rows = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))


# --- Decoding --------------------------------------------------------------------------------------------------------

def test_decode_grayscale_and_16_bit(tmp_path):
    gray = np.array([[0, 100], [200, 255]], np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    deep = np.array([[0, 257 * 100], [65535, 257 * 7]], np.uint16)
    Image.fromarray(deep).save(tmp_path / "gray16.png")
    assert Image.open(tmp_path / "gray16.png").mode.startswith("I")
    rgb16 = np.array([[[0, 257 * 10, 65535], [257 * 200, 257 * 3, 257 * 128]]], np.uint16)
    write_png16_rgb(tmp_path / "rgb16.png", rgb16)

    for name, expected in [("gray.png", np.repeat(gray[..., None], 3, -1)),
                           ("gray16.png", np.repeat(np.array([[0, 100], [255, 7]], np.uint8)[..., None], 3, -1)),
                           ("rgb16.png", (rgb16 // 257).astype(np.uint8))]:
        decoded = data.decode_image(tmp_path / name)
        assert decoded.dtype == np.uint8
        np.testing.assert_array_equal(decoded, expected, err_msg=name)


def test_decode_transparency_composited_on_white(tmp_path):
    rgba = np.array([[[255, 0, 0, 255], [255, 0, 0, 0], [0, 0, 0, 128]]], np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgba[..., [0, 3]], "LA").save(tmp_path / "la.png")
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 255, 0, 255, 0] + [0] * 762)
    palette.putpixel((0, 0), 0)
    palette.putpixel((1, 0), 1)
    palette.save(tmp_path / "palette.png")
    palette.save(tmp_path / "palette_transparent.png", transparency=1)

    np.testing.assert_array_equal(data.decode_image(tmp_path / "rgba.png"),
                                  [[[255, 0, 0], [255, 255, 255], [127, 127, 127]]])
    np.testing.assert_array_equal(data.decode_image(tmp_path / "la.png"),
                                  [[[255, 255, 255], [255, 255, 255], [127, 127, 127]]])
    np.testing.assert_array_equal(data.decode_image(tmp_path / "palette.png"), [[[0, 0, 255], [0, 255, 0]]])
    np.testing.assert_array_equal(data.decode_image(tmp_path / "palette_transparent.png"),
                                  [[[0, 0, 255], [255, 255, 255]]])


def test_decode_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (16, 16), (255, 0, 0, 0)).save(tmp_path / "cmyk.jpg", quality=95)  # Pure cyan.
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    decoded = data.decode_image(tmp_path / "cmyk.jpg")
    assert decoded.shape == (16, 16, 3) and decoded.dtype == np.uint8
    np.testing.assert_allclose(decoded.reshape(-1, 3).mean(0), [0, 255, 255], atol=4)


@pytest.mark.parametrize("extension", ["png", "jpg"])
def test_decode_applies_exif_orientation(tmp_path, extension):
    stored = np.zeros((16, 32, 3), np.uint8)  # 16 high, 32 wide: red left half, blue right half, green top rows.
    stored[:, :16] = (255, 0, 0)
    stored[:, 16:] = (0, 0, 255)
    stored[:4] = (0, 255, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation 6: the viewer turns the stored image 90 degrees clockwise.
    path = tmp_path / f"rotated.{extension}"
    Image.fromarray(stored).save(path, exif=exif, **({"quality": 95} if extension == "jpg" else {}))

    decoded = data.decode_image(path)
    expected = np.rot90(stored, k=-1)  # Clockwise: red on top, blue below, green on the right.
    assert decoded.shape == (32, 16, 3)
    if extension == "png":
        np.testing.assert_array_equal(decoded, expected)
    else:  # JPEG is lossy: compare the centres of the colour blocks.
        for y, x in [(6, 4), (26, 4), (6, 14), (26, 14)]:
            np.testing.assert_allclose(decoded[y, x], expected[y, x], atol=40)


def make_bad_folder(folder):
    """One good image, and one of each problem; returns the problem file names."""
    folder.mkdir()
    Image.fromarray(noise(32, 32)).save(folder / "good.png")
    Image.fromarray(noise(8, 40)).save(folder / "small.png")
    for name in ("truncated.png", "truncated.jpg"):
        Image.fromarray(noise(64, 64)).save(folder / "full_image", format="PNG" if name.endswith("png") else "JPEG")
        payload = (folder / "full_image").read_bytes()
        (folder / name).write_bytes(payload[:len(payload) // 2])
    (folder / "full_image").unlink()
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("not an image")
    return ["empty.png", "small.png", "text.png", "truncated.jpg", "truncated.png"]


def test_bad_files_reported_in_one_warning(tmp_path):
    bad = make_bad_folder(tmp_path / "images")
    paths = data.find_images(tmp_path / "images")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images, problems = data.load_images(paths, min_size=16)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert all(name in message for name in bad) and "good.png" not in message
    assert sorted(path.rsplit("/", 1)[1] for path, _ in problems) == bad
    assert "too small" in dict(problems)[str(tmp_path / "images" / "small.png")]
    assert len(images) == 1 and images[0].shape == (32, 32, 3)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False

    with pytest.raises(data.DataError) as error:
        data.load_images(paths, min_size=16, strict=True)
    assert all(name in str(error.value) for name in bad)
    for name in ("truncated.png", "truncated.jpg", "empty.png"):
        with pytest.raises(data.DataError, match=name):
            data.decode_image(tmp_path / "images" / name)


def test_decompression_bomb_is_a_problem(tmp_path, monkeypatch):
    Image.fromarray(noise(32, 32)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1024 pixels is then over twice the limit.
    with pytest.raises(data.DataError, match="huge.png.*DecompressionBomb"):
        data.decode_image(tmp_path / "huge.png")
    with pytest.raises(data.DataError, match="huge.png"):
        data.load_images([tmp_path / "huge.png"])


def test_no_usable_image_is_an_error(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(data.DataError, match="broken.jpg"):
        data.load_images([tmp_path / "broken.jpg"])
    with pytest.raises(data.DataError, match="no image files"):
        data.load_images([])


# --- Discovery -------------------------------------------------------------------------------------------------------

def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(data.DataError, match="not found.*nowhere"):
        data.find_images(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(data.DataError, match="no images"):
        data.find_images(tmp_path / "empty")
    with pytest.raises(data.DataError, match="empty"):
        data.resolve_images(tmp_path / "empty")


def test_find_images_sorted_recursive_and_filtered(tmp_path):
    names = ["b.PNG", "a.jpg", "sub/c.JPEG", "sub/deep/d.webp", "e.bmp", "notes.txt", ".hidden.png",
             ".cache/f.png", "z.gif"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    relative = [path[len(str(tmp_path)) + 1:] for path in data.find_images(tmp_path)]
    assert relative == ["a.jpg", "b.PNG", "e.bmp", "sub/c.JPEG", "sub/deep/d.webp"]
    flat = [path[len(str(tmp_path)) + 1:] for path in data.find_images(tmp_path, recursive=False)]
    assert flat == ["a.jpg", "b.PNG", "e.bmp"]


def test_div2k_layout(tmp_path):
    for split, name, size in [("train", "0002.png", 24), ("train", "0001.png", 20), ("valid", "0801.png", 28)]:
        (tmp_path / f"DIV2K_{split}_HR").mkdir(exist_ok=True)
        Image.fromarray(noise(size, size)).save(tmp_path / f"DIV2K_{split}_HR" / name)
    assert data.is_div2k(tmp_path) and not data.is_div2k(tmp_path / "DIV2K_train_HR")
    assert [p.rsplit("/", 1)[1] for p in data.find_div2k(tmp_path, "train")] == ["0001.png", "0002.png"]
    assert [image.shape for image in data.resolve_images(tmp_path, split="train")] == [(20, 20, 3), (24, 24, 3)]
    assert [image.shape for image in data.resolve_images(tmp_path, split="valid")] == [(28, 28, 3)]
    (tmp_path / "DIV2K_valid_HR" / "0801.png").unlink()
    (tmp_path / "DIV2K_valid_HR").rmdir()
    with pytest.raises(data.DataError, match="DIV2K_valid_HR"):
        data.find_div2k(tmp_path, "valid")
    with pytest.raises(ValueError, match="test"):
        data.find_div2k(tmp_path, "test")


def test_default_images_fixed_split():
    valid = data.default_images("valid")
    assert [image.shape for image in valid] == [(300, 451, 3), (400, 600, 3)]
    from skimage import data as skimage_data
    np.testing.assert_array_equal(valid[0], skimage_data.chelsea())
    train = data.default_images("train")
    assert len(train) == 5 and all(image.dtype == np.uint8 and image.shape[-1] == 3 for image in train)
    with pytest.raises(ValueError, match="bogus"):
        data.default_images("bogus")
    with pytest.warns(UserWarning, match="skimage.data.chelsea"):
        assert [image.shape for image in data.resolve_images(None, "valid", min_size=350)] == [(400, 600, 3)]
    with pytest.raises(data.DataError, match="chelsea"):
        data.resolve_images(None, "valid", min_size=350, strict=True)


# --- Pairs, crops, augmentation --------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_pair_geometry_and_ranges(scale):
    images = [noise(30, 41, 1), noise(48, 25, 2)]
    lr, hr = next(iter(data.make_train_dataset(images, hr_size=24, scale=scale, batch_size=3, seed=scale)))
    assert lr.shape == (3, 24 // scale, 24 // scale, 3) and hr.shape == (3, 24, 24, 3)
    assert lr.dtype == hr.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(lr)) and float(tf.reduce_max(lr)) <= 1.0
    assert -1.0 <= float(tf.reduce_min(hr)) < -0.9 and 0.9 < float(tf.reduce_max(hr)) <= 1.0
    valid_lr, valid_hr = data.make_validation_set(images, hr_size=24, scale=scale, crops_per_image=2)
    assert isinstance(valid_lr, np.ndarray) and valid_lr.shape == (4, 24 // scale, 24 // scale, 3)
    assert valid_hr.shape == (4, 24, 24, 3)
    assert data.bicubic_upscale(valid_lr, scale).shape == valid_hr.shape


def test_lr_is_antialiased_bicubic_of_hr():
    images = [noise(40, 40, 3)]
    lr, hr = next(iter(data.make_train_dataset(images, hr_size=32, scale=4, batch_size=2, seed=5)))
    valid_lr, valid_hr = data.make_validation_set(images, hr_size=32, scale=4)
    for low, high in [(lr, hr), (valid_lr, valid_hr)]:
        crop = ranges.hr_to_unit(high)
        expected = tf.clip_by_value(tf.image.resize(crop, (8, 8), "bicubic", antialias=True), 0.0, 1.0)
        np.testing.assert_allclose(low, expected, atol=1e-5)
        aliased = tf.image.resize(crop, (8, 8), "bicubic", antialias=False)
        assert np.abs(np.asarray(low) - np.asarray(aliased)).max() > 0.05  # The antialiasing matters.
        # HR is exactly the uint8 crop on the [-1, 1] scale.
        np.testing.assert_allclose(high, ranges.uint8_to_hr(ranges.hr_to_uint8(high)), atol=1e-6)


def test_size_checks_name_the_value():
    images = [noise(32, 32), noise(20, 40)]
    with pytest.raises(ValueError, match="5"):
        data.make_train_dataset(images, hr_size=20, scale=5)
    with pytest.raises(ValueError, match="hr_size=18.*scale=4"):
        data.make_train_dataset(images, hr_size=18, scale=4)
    with pytest.raises(ValueError, match=r"images\[1\] \(20x40\)"):
        data.make_train_dataset(images, hr_size=24, scale=4)
    with pytest.raises(ValueError, match="batch_size"):
        data.make_train_dataset(images, hr_size=16, scale=4, batch_size=0)
    with pytest.raises(ValueError, match=r"images\[1\]"):
        data.make_validation_set(images, hr_size=24, scale=4)
    with pytest.raises(ValueError, match="10x10.*4"):
        data.bicubic_downsample(np.zeros((10, 10, 3), np.float32), 4)
    with pytest.raises(ValueError, match="smaller"):
        data.random_crop(noise(10, 30), 16, seed=0)
    with pytest.raises(ValueError, match="seed.*None"):
        data.make_train_dataset(images, hr_size=16, scale=4, seed=None)
    with pytest.raises(ValueError, match="6x6.*sigma 2"):
        data.gaussian_blur(np.zeros((6, 6, 3), np.float32), 2)
    with pytest.raises(data.DataError, match="empty data source"):
        data.resolve_images("")


def test_random_crop_is_a_seeded_slice():
    image = coordinate_image(40, 50, tag=9)
    origins = set()
    for seed in range(8):
        crop = data.random_crop(image, 16, seed=(seed, 1)).numpy()
        top, left = int(crop[0, 0, 0]), int(crop[0, 0, 1])
        np.testing.assert_array_equal(crop, image[top:top + 16, left:left + 16])
        np.testing.assert_array_equal(crop, data.random_crop(image, 16, seed=(seed, 1)))
        origins.add((top, left))
    assert len(origins) > 4


def test_pipeline_crops_are_slices_of_the_images():
    # Different widths exercise the per-image offsets of the flat buffer; the tag says which image a crop is from.
    images = [coordinate_image(20, 30, tag=0), coordinate_image(35, 17, tag=1), coordinate_image(16, 50, tag=2)]
    _, hr = next(iter(data.make_train_dataset(images, hr_size=16, scale=4, batch_size=24, seed=0, augment=False)))
    tags = set()
    for crop in ranges.hr_to_uint8(hr).numpy():
        tag, top, left = int(crop[0, 0, 2]), int(crop[0, 0, 0]), int(crop[0, 0, 1])
        np.testing.assert_array_equal(crop, images[tag][top:top + 16, left:left + 16])
        tags.add(tag)
    assert tags == {0, 1, 2}


def test_pipeline_is_fixed_by_the_seed():
    images = [noise(40, 40, 1), noise(36, 52, 2)]

    def first_batches(seed, count=3):
        iterator = iter(data.make_train_dataset(images, hr_size=16, scale=4, batch_size=4, seed=seed))
        return [np.concatenate([lr.numpy().ravel(), hr.numpy().ravel()]) for lr, hr in
                (next(iterator) for _ in range(count))]

    reference = first_batches(seed=7)
    tf.random.set_seed(999)  # Stateless ops: the global seed must not matter.
    for again, batch in zip(first_batches(seed=7), reference):
        np.testing.assert_array_equal(again, batch)
    assert not np.array_equal(first_batches(seed=8)[0], reference[0])
    assert not np.array_equal(reference[0], reference[1])


def test_augment_only_flips_and_rotates():
    image = noise(8, 8, 4)
    variants = dihedral(image)
    seen = set()
    for seed in range(24):
        result = data.augment(image, seed=(seed, 3)).numpy()
        matches = [index for index, variant in enumerate(variants) if np.array_equal(result, variant)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) >= 6

    # In the pipeline, the augmented crops are the plain crops (same positions), flipped/rotated.
    images = [noise(30, 30, 5)]
    settings = dict(hr_size=16, scale=4, batch_size=8, seed=3)
    _, plain = next(iter(data.make_train_dataset(images, augment=False, **settings)))
    _, augmented = next(iter(data.make_train_dataset(images, augment=True, **settings)))
    for original, result in zip(ranges.hr_to_uint8(plain).numpy(), ranges.hr_to_uint8(augmented).numpy()):
        assert any(np.array_equal(result, variant) for variant in dihedral(original))
    assert not np.array_equal(plain, augmented)


def test_blur():
    crop = noise(16, 16, 6)
    lr_plain, hr_plain = data.make_pair(crop, 4)
    lr_zero, hr_zero = data.make_pair(crop, 4, blur_sigma=0.0)
    lr_blur, hr_blur = data.make_pair(crop, 4, blur_sigma=1.5)
    np.testing.assert_array_equal(lr_zero, lr_plain)
    np.testing.assert_array_equal(hr_blur, hr_plain)
    assert np.abs(lr_blur.numpy() - lr_plain.numpy()).max() > 0.02

    unit = ranges.uint8_to_unit(crop)
    np.testing.assert_array_equal(data.gaussian_blur(unit, 0.0), unit)
    blurred = data.gaussian_blur(unit[tf.newaxis], 1.0)
    assert blurred.shape == (1, 16, 16, 3) and float(tf.math.reduce_std(blurred)) < float(tf.math.reduce_std(unit))
    np.testing.assert_allclose(data.gaussian_blur(tf.fill([9, 9, 3], 0.3), 2.0), 0.3, atol=1e-6)  # Borders too.
    impulse = np.zeros((15, 15, 3), np.float32)
    impulse[7, 7] = 1.0
    np.testing.assert_allclose(tf.reduce_sum(data.gaussian_blur(impulse, 1.0), axis=(0, 1)), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="-1"):
        data.gaussian_blur(unit, -1.0)

    images = [noise(32, 32, 7)]
    settings = dict(hr_size=16, scale=4, batch_size=2, seed=1)
    lr_a, hr_a = next(iter(data.make_train_dataset(images, **settings)))
    lr_b, hr_b = next(iter(data.make_train_dataset(images, blur_sigma=1.0, **settings)))
    np.testing.assert_array_equal(hr_a, hr_b)
    assert not np.allclose(lr_a, lr_b, atol=1e-3)


def test_validation_set_is_deterministic():
    images = [noise(40, 40, 8), noise(30, 50, 9)]
    first = data.make_validation_set(images, hr_size=16, scale=4, seed=2, crops_per_image=2)
    again = data.make_validation_set(images, hr_size=16, scale=4, seed=2, crops_per_image=2)
    other = data.make_validation_set(images, hr_size=16, scale=4, seed=3, crops_per_image=2)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])
    fewer = data.make_validation_set(images, hr_size=16, scale=4, seed=2, crops_per_image=1)
    np.testing.assert_array_equal(fewer[1], first[1][::2])  # Crop (i, j) depends only on (seed, i, j).


def test_split_holdout_is_deterministic_and_spread():
    paths = [f"{name}{i:03d}.png" for name in ("bsd", "t") for i in range(50)]
    train, held = data.split_holdout(paths, 10)
    assert len(held) == 10 and len(train) == 90 and not set(train) & set(held)
    assert held == data.split_holdout(list(paths), 10)[1]
    assert any(p.startswith("bsd") for p in held) and any(p.startswith("t") for p in held)
    with pytest.raises(data.DataError, match="at least one"):
        data.split_holdout(paths[:3], 3)


def test_inspect_images_reports_each_file(tmp_path):
    from PIL import Image

    photo = np.zeros((20, 30, 3), np.uint8)
    Image.fromarray(photo).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(photo).save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    rows = {row["file"]: row for row in data.inspect_images(data.find_images(tmp_path))}
    assert rows["cmyk.jpg"]["stored as"] == "JPEG CMYK 30x20" and rows["cmyk.jpg"]["decoded to"] == "RGB uint8 20x30"
    assert rows["good.png"]["decoded to"] == "RGB uint8 20x30"
    assert rows["broken.png"]["decoded to"].startswith("unreadable")


def test_center_crop_takes_the_middle_and_keeps_short_sides():
    image = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    np.testing.assert_array_equal(data.center_crop(image, 4), image[1:5, 2:6])
    assert data.center_crop(image, 7).shape == (6, 7, 3)
    assert data.center_crop(image, 100).shape == image.shape
