# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 01 · Preprocessing: from photographs to (LR, HR) training pairs
#
# Super-resolution learns the inverse of a degradation, so the degradation *is* the data set. This notebook shows
# where images come from, how odd files are handled, how an HR crop becomes its LR input (antialiased bicubic
# downsampling, optionally after a blur), the augmentations, and how fast the `tf.data` stream delivers crops.
# Everything is a call into `sr_lib.data`; the code behind it is tested in `tests/test_data.py`.

# %% tags=["parameters"]
DATA = "../data/DIV2K"  # A folder of images, a folder holding DIV2K_train_HR/, or None for the embedded photographs.
OUT_ROOT = "../runs/notebooks"  # Figures and scratch files go to OUT_ROOT/01_preprocessing.
THROUGHPUT_STEPS = 200  # Batches timed per pipeline setting.

# %%
from pathlib import Path

import numpy as np
from IPython.display import Image
from PIL import Image as PILImage

from sr_lib import data, runtime
from sr_lib.core import ranges
from sr_lib.evaluation import evaluate, plots
from sr_lib.config import get_preset
from sr_lib.evaluation.tables import Table

OUT = Path(OUT_ROOT) / "01_preprocessing"
OUT.mkdir(parents=True, exist_ok=True)
print(runtime.describe(precision="none", vgg_weights="none"))

# %% [markdown]
# ## The data sources
#
# `data.resolve_images(source)` accepts three kinds of source, and the rest of the library never needs to know which:
#
# * `None` — the **embedded photographs** shipped inside scikit-image and matplotlib: natural colour images that need
#   no download, so `make demo`, the tests and these notebooks run offline. They are split once and for all into
#   training and validation images.
# * a **folder** (searched recursively; `.png .jpg .jpeg .bmp .webp`), local or a `gs://` URL;
# * the **DIV2K layout**: a folder holding `DIV2K_train_HR/` and `DIV2K_valid_HR/` as unpacked from the official zips.

# %%
Table([{"split": split, "image": name, "source": data.files.bundled_image_label(name),
        "size (H x W)": "x".join(map(str, image.shape[:2]))}
       for split in ("train", "valid")
       for name, image in zip(data.DEFAULT_IMAGES[split], data.default_images(split))],
      title="Embedded photographs")

# %%
if DATA is None:
    print("DATA is None: the embedded photographs are the training set.")
elif data.is_div2k(DATA):
    print(f"{DATA} has the DIV2K layout: {len(data.find_div2k(DATA, 'train'))} training images")
else:
    print(f"{DATA} is a plain folder with {len(data.find_images(DATA))} images")
train_images = data.resolve_images(DATA, split="train", min_size=96)
print(f"{len(train_images)} training images decoded, {sum(image.size for image in train_images) / 2**20:.0f} MB as uint8")

# %% [markdown]
# ## Robust decoding
#
# A folder of real photographs holds surprises: greyscale and CMYK JPEGs, PNGs with alpha, 16-bit PNGs, EXIF-rotated
# phone pictures, files that are not images at all. Every file is decoded once with Pillow to upright RGB uint8; a
# file that cannot be decoded is skipped with one warning naming it (`strict=True` makes it an error instead).

# %%
odd = OUT / "odd_folder"
odd.mkdir(exist_ok=True)
photo = data.default_images("valid")[0]
PILImage.fromarray(photo).save(odd / "rgb.png")
PILImage.fromarray(photo).convert("L").save(odd / "greyscale.jpg")
PILImage.fromarray(photo).convert("RGBA").save(odd / "with_alpha.png")
PILImage.fromarray(photo).convert("CMYK").save(odd / "cmyk.jpg")
PILImage.fromarray((photo[..., 0].astype(np.uint16) * 257)).save(odd / "sixteen_bit.png")
(odd / "truncated.jpg").write_bytes((odd / "greyscale.jpg").read_bytes()[:4000])
(odd / "notes.txt").write_text("not an image: ignored by extension")
Table(data.inspect_images(data.find_images(odd)))

# %% [markdown]
# ## HR crops and their LR inputs
#
# Training pairs are random HR crops and their ×4 antialiased bicubic downsampling (`data.make_pair`), the degradation
# the paper and every benchmark use. Two crop sizes are presets: the seed project's **256 → 64** and the paper's
# **96 → 24**. Below, LR, its bicubic upscaling (the baseline every model must beat) and HR, each shown at the same
# size with nearest-neighbour display so that LR's pixels stay visible.

# %%
rows, titles = [], []
for preset in ("seed", "paper"):
    hr_size = get_preset(preset).data.hr_size
    lr, hr = next(iter(data.make_train_dataset(data.default_images("train"), hr_size=hr_size, batch_size=2, seed=3)))
    rows += evaluate.comparison_rows(lr[:1], hr[:1], 4, [])
    titles.append(f"{preset}: {hr_size} -> {hr_size // 4}")
Image(plots.save_image_grid(rows, OUT / "pairs.png", titles=titles, cell_inches=3.2))

# %% [markdown]
# ## The optional blur
#
# `data.blur_sigma` blurs HR with a Gaussian before downsampling (in HR pixels), a harder and more realistic
# degradation than bicubic alone. The paper and the benchmarks use none (σ = 0); a model trained with one degradation
# and tested on another loses most of its advantage over bicubic.

# %%
crop = data.random_crop(data.default_images("valid")[1], 128, seed=0)
rows = [[(f"LR, sigma = {sigma}", ranges.unit_to_uint8(data.make_pair(crop, 4, sigma)[0]).numpy())
         for sigma in (0.0, 1.0, 2.0)] + [("HR", crop.numpy())]]
Image(plots.save_image_grid(rows, OUT / "blur.png", cell_inches=3.2))

# %% [markdown]
# ## Augmentations
#
# Each training crop gets one of the 8 flips and quarter turns, drawn from a stateless seed: the same seed gives the
# same batches whatever the parallelism, so a resumed run sees the data it would have seen.

# %%
rows = [[(f"seed {seed}", data.augment(crop, seed).numpy()) for seed in range(8)]]
Image(plots.save_image_grid(rows, OUT / "augmentations.png", cell_inches=2.0))

# %% [markdown]
# ## Pipeline throughput
#
# Crops per second that the stream delivers on this machine (crop, augment, blur, downsample, batch, prefetch), to
# compare with the training step's appetite (`make bench`): the pipeline must never be the bottleneck.

# %%
Table([{"preset": preset, "HR crop": get_preset(preset).data.hr_size, "batch": 16,
        "crops / s": data.crops_per_second(train_images, 16, get_preset(preset).data.hr_size, THROUGHPUT_STEPS)}
       for preset in ("seed", "paper")], digits=0, title=f"tf.data stream, {runtime.device_name()}")
