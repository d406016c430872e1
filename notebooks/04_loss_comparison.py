# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 04 · Phase 2: the adversarial losses side by side
#
# Every variant starts from the **same pretrained generator** and trains for the same steps on the same data and seed,
# so the only difference is the loss: SRResNet-MSE (no discriminator, the control), pixel MSE with each of five
# adversarial losses taken from TF-GAN's `losses_impl` (modified — the paper's "SRGAN-MSE" —, least-squares,
# Wasserstein with gradient penalty, relativistic, hinge; these need no VGG weights to mean something), the paper's
# SRGAN (VGG54 content + "modified"), and the "Per-Pix" content loss (pixel MSE + VGG54) with the same five.
# `experiment.run_comparison` trains them and writes the report; this notebook shows it: the PSNR-vs-step curves, the
# table with PSNR/SSIM and NIQE (no reference, lower is better), the perception-distortion plane, an image grid, the
# discriminator's logits (is the GAN healthy or collapsing?) and the network-interpolation sweep between SRResNet and a
# GAN generator.

# %% tags=["parameters"]
PRESET = "srresnet"  # "srresnet": fine-tune the shipped architecture (paper's GAN schedule); "demo": CPU minutes.
PRETRAINED = "../saved_models/srresnet_x4/srresnet_x4.keras"  # Start every variant here; None: run phase 1 first.
DATA = "../data/DIV2K"  # Training images: a folder, the DIV2K layout, or None for the embedded photographs.
VARIANTS = None  # Variant slugs (None: the default four, ["all"]: all twelve), e.g. ["srresnet_mse", "mse_hinge"].
VGG_WEIGHTS = "auto"  # "imagenet", a local .h5 file, None (random: offline), or "auto" (ImageNet if obtainable).
BENCHMARKS = ["../data/Set5/HR"]  # Evaluated whole after training (never trained or selected on).
OUT_ROOT = "../runs/notebooks"

# %%
from pathlib import Path

from IPython.display import Image, Markdown, display

from sr_lib import runtime
from sr_lib.evaluation import plots
from sr_lib.training import experiment, phases as training
from sr_lib.config import get_preset
from sr_lib.evaluation.tables import Table

OUT = Path(OUT_ROOT) / "04_loss_comparison"
config = get_preset(PRESET).replace(**{"data.source": DATA, "loss.vgg_weights": VGG_WEIGHTS})
variants = experiment.get_variants(VARIANTS)
print(runtime.describe(precision=config.train.mixed_precision, vgg_weights=VGG_WEIGHTS))
print(f"preset {PRESET!r}: {len(variants)} variants x {config.train.gan_steps} GAN steps, batch "
      f"{config.data.batch_size} of {config.data.hr_size}-px crops, from "
      f"{PRETRAINED or f'{config.train.pretrain_steps} steps of phase 1'}")

# %% [markdown]
# ## Train every variant
#
# Interrupt at any time: running the cell again resumes each variant from its latest checkpoint, and finished variants
# are not trained again.

# %%
report = experiment.run_comparison(config, OUT, variants, benchmarks=BENCHMARKS, verbose=0, pretrained=PRETRAINED)

# %%
if report["random_vgg"]:
    display(Markdown("**The VGG19 weights were random** (the ImageNet file could not be obtained here). The VGG "
                     "content losses then compare random features: the rows marked *(random VGG)* show that the "
                     "pipeline runs, not what a perceptual loss achieves. Run on a machine with the ImageNet weights "
                     "(or pass `VGG_WEIGHTS` a local file) for perceptual results."))

# %% [markdown]
# ## Validation PSNR-Y during training
#
# PSNR rewards the average of all plausible textures, so the adversarial variants are *expected* to fall below
# SRResNet-MSE: the paper's SRGAN loses about 2.6 dB on Set5 while looking sharper. A variant far below bicubic, or
# falling steadily, is collapsing (the table's status column applies a stated criterion).

# %%
Image(report["curves"])

# %% [markdown]
# ## The table: distortion (PSNR/SSIM) and perception (NIQE)
#
# NIQE (Mittal et al. 2013) scores naturalness without a reference (lower is better), on Y with the same border as
# PSNR. The HR row is the HR images' own NIQE, the perceptual target; its PSNR/SSIM are not measurements (—). NIQE
# needs two 96×96 blocks per image, so small validation crops show — (the report's notes say so once).

# %%
columns = ["method"] + [key for key in report["rows"][0] if key.endswith(("/psnr_y", "/ssim_y", "/niqe"))] + [
    "status", "d_real_logit", "d_fake_logit", "note"]
for note in report["niqe_notes"]:
    print(note)
Table(report["rows"] + [report["hr_row"]], columns=columns, digits=3)

# %% [markdown]
# ## The perception-distortion plane
#
# Blau and Michaeli (CVPR 2018): no method can be best at both. PSNR-Y on x (right: less distortion), NIQE on y
# (down: more natural); a point per variant, bicubic, the HR images' NIQE as a line (HR has no PSNR against itself),
# and the network-interpolation sweep as a line through its α values. Adversarial losses are meant to move down and
# to the left of SRResNet-MSE.

# %%
Image(report["perception_distortion"])

# %% [markdown]
# ## The same validation crop through every variant

# %%
Image(report["grid"])

# %% [markdown]
# ## GAN health: the discriminator's logits
#
# The mean logit of the discriminator on HR (real) and SR (fake) crops at each validation step. For the saturating
# losses (modified, least-squares, relativistic), a real/fake gap that keeps widening means the discriminator wins and
# the generator's adversarial gradient fades; a gap near zero from the start means the discriminator learned nothing.
# Wasserstein and hinge critics have no fixed offset: only their gap matters.

# %%
logits = {}
for variant in variants:
    log = training.read_log(OUT / "variants" / variant.slug)
    if log and "d_real_logit" in log[0]:
        logits[variant.name] = ([row["step"] for row in log], [row["d_real_logit"] for row in log],
                                [row["d_fake_logit"] for row in log])
if logits:
    display(Image(plots.plot_logit_curves(logits, OUT / "report" / "logits.png")))

# %% [markdown]
# ## Network interpolation
#
# Blending the weights of SRResNet-MSE and a GAN generator, `(1 - α) MSE + α GAN` (Wang et al., ESRGAN), trades PSNR
# for texture continuously without retraining: `python -m sr_lib interpolate` writes any blend as a model file.

# %%
if report["interpolation_plot"]:
    sweep = report["interpolation"]
    display(Image(report["interpolation_plot"]))
    display(Table([{"alpha": alpha, **{f"{name} {label}": sweep[key][name][index] for name in sweep["psnr_y"]
                                       for key, label in (("psnr_y", "PSNR-Y"), ("niqe", "NIQE"))}}
                   for index, alpha in enumerate(sweep["alphas"])], digits=3))
else:
    print("no sweep: it needs the SRResNet-MSE variant and at least one GAN variant")
