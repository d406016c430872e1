# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 06 · Export: a SavedModel (and TFLite) anyone can run, and large photographs in tiles
#
# `python -m sr_lib export` turns a trained `.keras` generator into a TensorFlow SavedModel whose `serving_default`
# signature takes uint8 images of any size and returns uint8 images ×4 (TF Serving, `tf.saved_model.load`, other
# languages), plus an optional TFLite file. This notebook exports the shipped SRResNet, inspects the signatures,
# reloads it in a fresh process where sr_lib cannot be imported and checks that it returns the same pixels, then
# upscales a large photograph in tiles and shows that the tiled result equals the whole-image one within one grey
# level (the kernels TensorFlow picks for the CPU reorder float sums by tile size; see the README).

# %% tags=["parameters"]
MODEL = "../saved_models/srresnet_x4/srresnet_x4.keras"  # The .keras generator to export.
PHOTO = None  # An image file to upscale; None: the embedded astronaut photograph.
PHOTO_SIDE = 1024  # Its centre crop of this side (LR pixels) is upscaled; None: the whole image.
TILE = 256  # Kept tile side in LR pixels (the context around each tile is added automatically).
TFLITE = True  # Also convert to TFLite and compare.
OUT_ROOT = "../runs/notebooks"

# %%
import time
from pathlib import Path

import numpy as np
from IPython.display import Image

from sr_lib import data, runtime
from sr_lib.core import ranges, storage
from sr_lib.evaluation import plots
from sr_lib.inference import export, upscaler as inference, standalone, tiling
from sr_lib.evaluation.tables import Table
from sr_lib.nets import saving

OUT = Path(OUT_ROOT) / "06_export"
print(runtime.describe(precision="none", vgg_weights="none"))

# %% [markdown]
# ## Export
#
# The export is float32 whatever precision training used, holds the receptive field (so that tiles can be exact) and
# the training config and metrics when they sit next to the model file.

# %%
storage.rmtree(OUT / "srresnet_x4_savedmodel")  # A re-run replaces this notebook's export (export never overwrites).
metadata = export.export_generator(MODEL, OUT / "srresnet_x4_savedmodel", tflite=TFLITE,
                                   config_path=Path(MODEL).parent / "config.json",
                                   metrics_path=Path(MODEL).parent / "log.csv")
Table([{"file": str(path.relative_to(OUT)), "KiB": path.stat().st_size / 2**10}
       for path in sorted((OUT / "srresnet_x4_savedmodel").rglob("*")) if path.is_file()], digits=0)

# %%
Table([{"key": key, "value": str(metadata[key])} for key in ("source_model", "scale", "parameters", "precision",
                                                            "receptive_field", "endpoints")])

# %% [markdown]
# ## Reload without sr_lib
#
# A fresh Python process with only TensorFlow and NumPy (importing sr_lib is made to fail there) loads the SavedModel
# and calls `serving_default` as TF Serving would. Its output must equal the Keras model's, rounded to uint8 the same
# way, within one grey level (graph and eager kernels may round a value near .5 differently).

# %%
photo = data.decode_image(PHOTO) if PHOTO else data.default_images("train")[0]
lr = data.center_crop(photo, PHOTO_SIDE) if PHOTO_SIDE else photo
check = lr[:96, :96]
sr_standalone, described = standalone.run_without_sr_lib(OUT / "srresnet_x4_savedmodel", check)
keras_model = saving.load_generator(MODEL)
sr_keras = ranges.hr_to_uint8(keras_model(ranges.uint8_to_unit(check)[None], training=False))[0].numpy()
print("signatures:", described["signatures"], "| endpoints:", described["endpoints"])
print("input:", described["input"], "| outputs:", described["outputs"])
print(f"SavedModel without sr_lib vs Keras on a 96x96 crop: {sr_standalone.shape}, "
      f"max |difference| = {np.abs(sr_standalone.astype(int) - sr_keras.astype(int)).max()} grey levels on "
      f"{100 * np.mean(sr_standalone != sr_keras):.4f}% of the values")

# %%
if TFLITE:
    sr_tflite = standalone.run_tflite(OUT / "srresnet_x4_savedmodel" / export.TFLITE_FILE, check)
    difference = np.abs(sr_tflite.astype(int) - sr_standalone.astype(int))
    print(f"TFLite vs SavedModel: max |difference| = {difference.max()} grey levels on "
          f"{100 * np.mean(difference > 0):.3f}% of the values (TFLite's kernels round differently)")

# %% [markdown]
# ## A large photograph, whole and in tiles
#
# Upscaling a photograph whole needs memory in proportion to its area times the network's widest layer (256 channels
# at ×2 resolution here): gigabytes for a phone picture. Tiles bound it. Each tile is read with the context its
# receptive field needs and only its centre is kept, so the result is not merely seamless but equal to the
# whole-image result up to float rounding: at most one grey level, on rare pixels.

# %%
upscaler = inference.load_upscaler(OUT / "srresnet_x4_savedmodel")
print(f"LR {lr.shape[1]}x{lr.shape[0]} -> SR {lr.shape[1] * upscaler.scale}x{lr.shape[0] * upscaler.scale}; "
      f"receptive field: {upscaler.field.before} before, {upscaler.field.after} after (LR px)")
start = time.perf_counter()
whole = tiling.upscale_tiled(upscaler.upscale_uint8, lr, upscaler.field, tile=0)
whole_seconds = time.perf_counter() - start
start = time.perf_counter()
tiled = tiling.upscale_tiled(upscaler.upscale_uint8, lr, upscaler.field, tile=TILE)
tiled_seconds = time.perf_counter() - start
Table([{"run": "whole image", "tiles": 1, "seconds": whole_seconds},
       {"run": f"tiles of {TILE} px", "tiles": len(tiling.plan_tiles(*lr.shape[:2], TILE, upscaler.field)),
        "seconds": tiled_seconds},
       {"run": "largest tiled-whole difference (grey levels)", "tiles": "",
        "seconds": str(np.abs(tiled.astype(int) - whole.astype(int)).max())},
       {"run": "pixels that differ (%)", "tiles": "", "seconds": f"{100 * np.mean(np.any(tiled != whole, axis=-1)):.4f}"}],
      digits=1)

# %% [markdown]
# The upscaled photograph, and a 128×128 window of it at full resolution next to bicubic:

# %%
bicubic = ranges.unit_to_uint8(data.bicubic_upscale(ranges.uint8_to_unit(lr), upscaler.scale)).numpy()
Image(plots.save_image_grid([[("SRResNet, tiled (top-left 512 px)", tiled[:512, :512]),
                              ("bicubic, centre 128 px", data.center_crop(bicubic, 128)),
                              ("SRResNet, centre 128 px", data.center_crop(tiled, 128))]], OUT / "photo.png",
                            cell_inches=3.5))
