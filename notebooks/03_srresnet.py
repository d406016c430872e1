# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 03 · Phase 1: SRResNet, the pixel-loss generator
#
# SRGAN starts from SRResNet, the same generator trained with a pixel loss only: the GAN phase then adds texture to a
# network that already reconstructs the image (training the GAN from scratch tends to collapse). This notebook runs a
# short live phase 1 through Keras' `fit` (its progress bar and validation PSNR curve), then looks at the SRResNet
# shipped in `saved_models/srresnet_x4/`: its training curve, its Set5/Set14 numbers with the paper's protocol, and
# zoomed crops.

# %% tags=["parameters"]
PRESET = "srresnet"  # The shipped model's recipe; "paper" for the paper's (BN, MSE, 10^6 steps); "ci": toy size.
DATA = "../data/DIV2K"  # Training images: a folder, the DIV2K layout, or None for the embedded photographs.
LIVE_STEPS = 2000  # Steps of the live run (the preset's validation interval applies).
LOSS = "mse"  # The live run's pixel loss: "mse" (the paper's SRResNet) or "l1" (the shipped model's recipe).
SHIPPED = "../saved_models/srresnet_x4"  # The shipped model's folder (srresnet_x4.keras, log.csv, README.md).
BENCHMARKS = ["../data/Set5/HR", "../data/Set14/HR"]  # HR folders for evaluation only (never trained on).
MAX_IMAGES = None  # Evaluate only the first N images of each set (None: all).
OUT_ROOT = "../runs/notebooks"

# %%
from pathlib import Path

from IPython.display import Image, Markdown, display

from sr_lib import runtime
from sr_lib.evaluation import evaluate, plots, zoom
from sr_lib.training import phases as training
from sr_lib.config import get_preset
from sr_lib.nets import saving
from sr_lib.data import DEFAULT_IMAGES, default_images
from sr_lib.evaluation.published import published
from sr_lib.evaluation.tables import Table

OUT = Path(OUT_ROOT) / "03_srresnet"
config = get_preset(PRESET).replace(**{"data.source": DATA, "train.pretrain_loss": LOSS})
print(runtime.describe(precision=config.train.mixed_precision, vgg_weights="none"))
print(f"preset {PRESET!r}: {config.model.num_blocks} blocks x {config.model.channels} channels, "
      f"{config.train.pretrain_loss.upper()} loss, batch {config.data.batch_size} of {config.data.hr_size}-px crops")

# %% [markdown]
# ## A live phase 1
#
# `training.pretrain` is `fit` on a small `keras.Model` that holds the generator, with callbacks for validation
# (PSNR-Y on fixed crops held apart from training), checkpoints, the CSV log and TensorBoard. Run the cell again and
# it resumes from the run directory's latest checkpoint instead of starting over.

# %%
train_data = training.prepare_data(config)
live = training.pretrain(config, OUT / "live", train_data, steps=LIVE_STEPS, verbose=1)
print(f"best validation PSNR-Y {live.best_psnr_y:.2f} dB at step {live.best_step}; saved {live.best_path}")

# %%
log = training.read_log(OUT / "live")
bicubic_valid = evaluate.evaluate_arrays(train_data.valid_lr, train_data.valid_hr, config.data.scale).means["psnr_y"]
Image(plots.plot_psnr_curves({f"live run ({PRESET})": ([row["step"] for row in log], [row["psnr_y"] for row in log])},
                             OUT / "live_curve.png", baseline=("bicubic", bicubic_valid),
                             title="Validation PSNR-Y during the live phase 1"))

# %% [markdown]
# ## The shipped SRResNet
#
# `saved_models/srresnet_x4/` holds a generator trained by the repository's own command on this CPU (its model card,
# `README.md`, gives the command, data, steps and wall time, and how it departs from the paper: no BatchNorm, a global
# bicubic residual and an L1 loss, each measured). Its training curve, from the `log.csv` written during training:

# %%
shipped_log = training.read_log(SHIPPED)
Image(plots.plot_psnr_curves(
    {"shipped SRResNet x4": ([row["step"] for row in shipped_log], [row["psnr_y"] for row in shipped_log])},
    OUT / "shipped_curve.png", title="Shipped SRResNet: validation PSNR-Y (held-apart training images)"))

# %% [markdown]
# ## Set5 and Set14 with the paper's protocol
#
# ×4, PSNR and SSIM on Y (ITU-R BT.601 as MATLAB's `rgb2ycbcr`), 4-pixel border removed, SR rounded to uint8 as a
# saved image would be. The published column is the paper's Table 2. These sets are for evaluation only: no model
# here was trained or selected on them.

# %%
generator = saving.load_generator(Path(SHIPPED) / "srresnet_x4.keras")
sets = {evaluate.benchmark_name(folder): evaluate.load_benchmark(folder) for folder in BENCHMARKS}
if not sets:
    display(Markdown("**No benchmark folder given: the embedded validation photographs stand in for Set5/Set14.**"))
    sets = {"embedded": (list(DEFAULT_IMAGES["valid"]), default_images("valid"))}
rows = []
for name, (names, images) in sets.items():
    for method, model, paper_name in (("bicubic", None, "bicubic"), ("SRResNet (shipped)", generator, "SRResNet")):
        result = evaluate.evaluate_images(images[:MAX_IMAGES], config.data.scale, model, method, name,
                                          names[:MAX_IMAGES])
        rows.append({"set": name, "images": len(result.per_image), "method": method, **result.means,
                     "paper's PSNR-Y": published(name, paper_name)})
Table(rows, digits=4)

# %% [markdown]
# ## Zoomed crops
#
# The most detailed 96×96 window of one image of each set: LR (enlarged with its pixels visible), bicubic, the shipped
# SRResNet and HR. SRResNet's edges are sharper than bicubic's, but fine texture stays smooth: a pixel loss averages
# over all plausible textures. That is what the GAN phase (notebook 04) is for.

# %%
rows = [zoom.zoom_row(images[-1], config.data.scale, [("SRResNet (shipped)", generator)], size=96)
        for names, images in sets.values()]
titles = [f"{name}: {names[-1]}" for name, (names, _) in sets.items()]
Image(plots.save_image_grid(rows, OUT / "zoomed_crops.png", titles=titles, cell_inches=2.6))
