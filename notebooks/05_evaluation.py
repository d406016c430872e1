# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 05 · Evaluation: any generator on Set5, Set14 and your own photographs
#
# The paper's protocol, the one every published ×4 number uses: HR cropped to a multiple of 4, LR made from it by
# bicubic downsampling, SR rounded to uint8, PSNR and SSIM on Y (ITU-R BT.601, as MATLAB's `rgb2ycbcr`) with a 4-pixel
# border removed. `sr_lib.evaluation.metrics` equals an independent MATLAB-protocol reference (tests/test_metrics.py). The same
# table comes from the command line: `python -m sr_lib evaluate --model M.keras --data Set5/HR Set14/HR`.

# %% tags=["parameters"]
MODELS = {"SRResNet (shipped)": "../saved_models/srresnet_x4/srresnet_x4.keras"}  # Label -> .keras or SavedModel.
GAN_VARIANT = "perpix_modified"  # Also evaluate this variant of notebook 04's run, when it exists (None: don't).
BENCHMARKS = ["../data/Set5/HR", "../data/Set14/HR"]  # HR folders, for evaluation only.
USER_FOLDER = None  # A folder of your own HR photographs; None: the embedded validation photographs, as a folder.
MAX_IMAGES = None  # Only the first N images of each set (None: all).
OUT_ROOT = "../runs/notebooks"

# %%
import json
from pathlib import Path

from IPython.display import Image
from PIL import Image as PILImage

from sr_lib import runtime
from sr_lib.evaluation import evaluate, plots, zoom
from sr_lib.data import DEFAULT_IMAGES, default_images
from sr_lib.nets import saving
from sr_lib.evaluation.published import published
from sr_lib.evaluation.tables import Table

OUT = Path(OUT_ROOT) / "05_evaluation"
print(runtime.describe(precision="none", vgg_weights="none"))

# %% [markdown]
# ## The generators
#
# A `.keras` file is loaded with `safe_mode=True`; a folder written by `python -m sr_lib export` is loaded as a
# SavedModel. Notebook 04's GAN generator joins when its run exists (labelled with its VGG weights).

# %%
paths = dict(MODELS)
gan = Path(OUT_ROOT) / "04_loss_comparison" / "variants" / str(GAN_VARIANT) / "generator_final.keras"
report_04 = Path(OUT_ROOT) / "04_loss_comparison" / "report" / "results.json"
if GAN_VARIANT and gan.is_file():
    random_vgg = report_04.is_file() and json.loads(report_04.read_text())["random_vgg"]
    paths[f"{GAN_VARIANT} (notebook 04{', random VGG' if random_vgg else ''})"] = gan
generators = {label: evaluate.load_model(path) for label, path in paths.items()}
scale = evaluate.resolve_scale(list(generators.items()))
Table([{"method": label, "file": str(path), "scale": f"x{saving.model_scale(generators[label])}"}
       for label, path in paths.items()])

# %% [markdown]
# ## The image sets
#
# Set5 and Set14 as given, and a folder of your photographs, evaluated the same way. Without `USER_FOLDER` the embedded
# validation photographs are written to a folder and used, so that the folder path is exercised.

# %%
user_folder = Path(USER_FOLDER) if USER_FOLDER else OUT / "my_photos"
if not USER_FOLDER:
    user_folder.mkdir(parents=True, exist_ok=True)
    for name, image in zip(DEFAULT_IMAGES["valid"], default_images("valid")):
        PILImage.fromarray(image).save(user_folder / f"{name}.png")
sets = {evaluate.benchmark_name(folder): evaluate.load_benchmark(folder) for folder in [*BENCHMARKS, user_folder]}
sets = {name: (names[:MAX_IMAGES], images[:MAX_IMAGES]) for name, (names, images) in sets.items()}
Table([{"set": name, "images": len(images), "sizes (H x W)": ", ".join(f"{i.shape[0]}x{i.shape[1]}" for i in images)}
       for name, (names, images) in sets.items()])

# %%
evaluations = {(name, label): evaluate.evaluate_images(images, scale, generator, label, name, names)
               for name, (names, images) in sets.items()
               for label, generator in [("bicubic", None), *generators.items()]}
Table([{"set": name, "method": label, **result.means,
        "paper's PSNR-Y": published(name, "SRResNet" if "SRResNet" in label else label)}
       for (name, label), result in evaluations.items()], digits=4,
      title=f"x{scale}: PSNR/SSIM on Y and RGB ({scale}-px border); color_shift = worst image's channel offset")

# %% [markdown]
# ## Per image
#
# A mean hides the images where a model does worse than bicubic, and Set5's mean is dominated by its easiest images.
# Per-image PSNR-Y, then the gain over bicubic per image:

# %%
Table([{"set": name, "image": row["name"],
        **{label: evaluations[(name, label)].per_image[index]["psnr_y"] for label in ["bicubic", *generators]}}
       for name, (names, _) in sets.items() for index, row in enumerate(evaluations[(name, "bicubic")].per_image)],
      digits=2, title="PSNR-Y (dB) per image")

# %%
gains = {(name, label): evaluations[(name, label)].gains_over(evaluations[(name, "bicubic")])
         for name in sets for label in generators}
Image(plots.plot_bars({label: {f"{name}/{image}": gains[(name, label)][image] for name in sets
                               for image in gains[(name, label)]} for label in generators},
                      OUT / "gain_over_bicubic.png", ylabel="PSNR-Y gain over bicubic (dB)",
                      title="Where each model helps: PSNR-Y(model) - PSNR-Y(bicubic), per image"))

# %% [markdown]
# ## Zoomed comparison
#
# For each set, the image where the first model gains most over bicubic, at its most detailed 96×96 window.

# %%
first = next(iter(generators))
best = {name: max(gains[(name, first)], key=gains[(name, first)].get) for name in sets}
rows = [zoom.zoom_row(sets[name][1][sets[name][0].index(image)], scale, list(generators.items()), size=96)
        for name, image in best.items()]
Image(plots.save_image_grid(rows, OUT / "zoomed_comparison.png", titles=[f"{name}: {image}" for name, image in
                                                                        best.items()], cell_inches=2.6))
