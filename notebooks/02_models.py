# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 02 · Models: the SRResNet generator, its upsampling, the discriminator and VGG19
#
# The networks of Ledig et al. (2017), built by `sr_lib.nets.models` from plain Keras layers, so the same file runs under
# TensorFlow or JAX. This notebook compares the generator's upsampling choices — the paper's sub-pixel convolution
# (`depth_to_space`) with and without ICNR initialisation, and resize-convolutions (`UpSampling2D` nearest or bilinear,
# then a conv) — by their parameters, output shapes and *untrained* outputs, where the checkerboard of a randomly
# initialised sub-pixel layer is plain to see. Then the discriminator and the VGG19 feature layers of the perceptual
# losses.

# %% tags=["parameters"]
PRESET = "paper"  # Network sizes: "paper" (16 blocks, 64 channels), "ci" (toy size, what CI runs).
VGG_WEIGHTS = "auto"  # "imagenet", a local .h5 file, None (random: offline), or "auto" (ImageNet if obtainable).
OUT_ROOT = "../runs/notebooks"

# %%
from pathlib import Path

import keras
from IPython.display import Image

from sr_lib import data, runtime
from sr_lib.core import ranges
from sr_lib.evaluation import evaluate, metrics, plots
from sr_lib.nets import models, vgg
from sr_lib.config import get_preset
from sr_lib.evaluation.tables import Table

OUT = Path(OUT_ROOT) / "02_models"
config = get_preset(PRESET)
print(runtime.describe(precision="none", vgg_weights=VGG_WEIGHTS))
print(f"preset {PRESET!r}: {config.model.num_blocks} residual blocks, {config.model.channels} channels, "
      f"x{config.data.scale}")

# %% [markdown]
# ## Four ways to upsample
#
# Each generator is built from the same seed, so the variants differ only in their upsampling stages (×2 twice for
# ×4). Output shapes are for a 24×24 LR input (the paper's 96-px HR crops); the networks are fully convolutional and
# take any size.

# %%
UPSAMPLERS = {
    "sub-pixel, random init": dict(upsample="subpixel", icnr=False),
    "sub-pixel + ICNR": dict(upsample="subpixel", icnr=True),
    "resize-conv, nearest": dict(upsample="upsampling", interpolation="nearest"),
    "resize-conv, bilinear": dict(upsample="upsampling", interpolation="bilinear"),
}
generators = {}
for label, options in UPSAMPLERS.items():
    keras.utils.set_random_seed(0)
    generators[label] = models.make_generator(num_blocks=config.model.num_blocks, channels=config.model.channels,
                                              scale=config.data.scale, batch_norm=config.model.batch_norm, **options)
Table([{"upsampling": label, "parameters": f"{generator.count_params():,}",
        "output for 24x24 LR": str(generator.compute_output_shape((1, 24, 24, 3)))}
       for label, generator in generators.items()])

# %% [markdown]
# ## Untrained outputs: the checkerboard
#
# A sub-pixel conv computes the `r × r` output phases with independent random filters, so before training every phase
# has its own brightness: a grid of period 2 per ×2 stage. ICNR initialises the `r²` filters of each output channel
# identically, which makes the layer start as nearest-neighbour upsampling (Aitken et al., 2017); resize-convolutions
# have no phases at all. `metrics.checkerboard` measures the pattern: the spread of the mean brightness over the 4×4
# pixel phases, in grey levels (≈0 for a natural image). Training removes the grid of the randomly initialised
# layer eventually, but it is where the checkerboard artefacts users complain about start.

# %%
hr = data.random_crop(data.default_images("valid")[1], 128, seed=0).numpy()
hr_unit, lr_unit = evaluate.make_lr(hr, config.data.scale)
outputs = {label: ranges.hr_to_unit(generator(lr_unit[None], training=False))[0]
           for label, generator in generators.items()}
Table([{"upsampling": label, "checkerboard (grey levels)": float(metrics.checkerboard(sr, period=4))}
       for label, sr in {**outputs, "HR (reference)": hr_unit}.items()])

# %% [markdown]
# The untrained images, rescaled to their own range so that the structure is visible (an untrained network's output
# is nearly flat), zoomed on their top-left 32×32 pixels:

# %%
rows = [[(label, ranges.unit_to_uint8(ranges.stretch(sr[:32, :32])).numpy()) for label, sr in outputs.items()]]
Image(plots.save_image_grid(rows, OUT / "untrained_outputs.png", cell_inches=2.8))

# %% [markdown]
# ## The discriminator
#
# Eight 3×3 convolutions (64 → 512 channels, strided every second one), LeakyReLU(0.2) and BatchNorm, then two dense
# layers to one logit: the paper's Figure 4. Its dense layer fixes the input size to the HR crop size.

# %%
discriminator = models.make_discriminator(hr_size=config.data.hr_size, channels=config.model.discriminator_channels)
discriminator.summary(line_length=100)

# %% [markdown]
# ## VGG19 features for the content loss
#
# The paper's perceptual losses compare VGG19 feature maps of SR and HR: VGG22 (`block2_conv2`, after its ReLU: low
# level) and VGG54 (`block5_conv4`: high level); the "Per-Pix" loss adds pixel MSE to VGG54. The network is frozen and
# takes images in [-1, 1] (it converts them to VGG's BGR, mean-subtracted input itself).

# %%
weights = vgg.resolve_vgg_weights(VGG_WEIGHTS)
rows = []
for layer in ("vgg22", "vgg54"):
    features = vgg.make_vgg_features(layer, weights=weights)
    rows.append({"loss": layer, "Keras layer": vgg.VGG_LAYERS[layer], "weights": features.vgg_weights,
                 "features for a 96x96 HR crop": str(features.compute_output_shape((1, 96, 96, 3))),
                 "trainable": features.trainable})
Table(rows)

# %% [markdown]
# When the weights column says `random`, the ImageNet file was not available (offline); the perceptual losses then
# compare random features, and no VGG result made with them is a perceptual result.
