"""Figures for notebooks and reports: PSNR curves, the perception-distortion plane and side-by-side image grids, saved
as PNG files.

Figures are drawn on matplotlib's Agg canvas directly (not through ``pyplot``), so they work on headless machines,
never open windows, and leave the notebook's pyplot state alone. Every function creates the parent folder of `path`
and returns the path it wrote; show the file in a notebook with ``IPython.display.Image(path)``.
"""

import os
import textwrap

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _save(figure, path, dpi):
    """Writes `figure` to `path` as PNG, creating parent folders, and returns the path as a string."""
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png", dpi=dpi, bbox_inches="tight")
    return path


def plot_psnr_curves(curves, path, baseline=None, title=None, ylabel="PSNR-Y (dB)", dpi=100, xlabel="step"):
    """Plots one line per run (e.g. validation PSNR-Y against training step), with an optional bicubic baseline.

    Args:
        curves: Non-empty dict of legend name -> (steps, values), two sequences of equal, non-zero length. Names are
            shown as given, e.g. "SRGAN-VGG54 (random VGG)".
        path: PNG file to write.
        baseline: Optional (label, value) drawn as a dashed horizontal line, e.g. ("bicubic", 24.1).
        title: Optional figure title.
        ylabel: Y axis label.
        dpi: Resolution of the saved file.
        xlabel: X axis label (e.g. "alpha" for a network-interpolation sweep).

    Returns:
        `path` as a string.
    """
    if not curves:
        raise ValueError("plot_psnr_curves needs at least one curve, got none")
    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    for name, curve in curves.items():
        try:
            steps, values = (np.asarray(part, dtype=float).ravel() for part in curve)
        except (TypeError, ValueError):
            raise ValueError(f"curve {name!r} must be a (steps, values) pair of number sequences") from None
        if len(steps) == 0 or len(steps) != len(values):
            raise ValueError(f"curve {name!r} has {len(steps)} steps and {len(values)} values; need equal, non-zero")
        # Markers keep curves with only one or a few evaluations visible.
        axes.plot(steps, values, marker="o", markersize=3, label=str(name))
    if baseline is not None:
        try:
            label, value = baseline
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"baseline must be a (label, value) pair, got {baseline!r}") from None
        axes.axhline(value, color="gray", linestyle="--", label=str(label))
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if title:
        axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend()
    return _save(figure, path, dpi)


def _pair(value, what):
    """(x, y) as floats, or a ValueError naming ``what``."""
    try:
        x, y = value
        return float(x), float(y)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a (PSNR-Y, NIQE) pair of numbers, got {value!r}") from None


def perception_distortion_figure(points, bicubic=None, hr_niqe=None, sweep=None, title=None, note=None) -> Figure:
    """The perception-distortion plane (Blau and Michaeli, CVPR 2018) as a Figure: PSNR-Y on x, NIQE on y.

    Each entry of ``points`` is one scatter artist labelled with its name, whose offsets are its point, so the plotted
    values can be read back from ``figure.axes[0].collections``.

    Args:
        points: Non-empty dict of name -> (PSNR-Y, NIQE), one marker each (NaN: listed in the legend, not drawn).
        bicubic: Optional (PSNR-Y, NIQE) reference point.
        hr_niqe: Optional NIQE of the HR images: a horizontal line (HR has no PSNR against itself).
        sweep: Optional (label, alphas, PSNR-Y values, NIQE values): a line through the network-interpolation blends.
        title: Optional figure title.
        note: Optional text written inside the axes, e.g. why NIQE is undefined.
    """
    if not points:
        raise ValueError("perception_distortion_figure needs at least one point, got none")
    figure = Figure(figsize=(10, 5), layout="constrained")
    axes = figure.add_subplot()
    if sweep is not None:
        try:
            label, alphas, psnrs, niqes = sweep
            alphas, psnrs, niqes = (np.asarray(part, dtype=float).ravel() for part in (alphas, psnrs, niqes))
        except (TypeError, ValueError):
            raise ValueError("sweep must be (label, alphas, PSNR-Y values, NIQE values)") from None
        if not len(alphas) == len(psnrs) == len(niqes):
            raise ValueError(f"sweep has {len(alphas)} alphas, {len(psnrs)} PSNR-Y and {len(niqes)} NIQE values")
        axes.plot(psnrs, niqes, color="gray", linewidth=1, marker=".", label=str(label), zorder=1)
        # Only the two ends are named: the blends of a short run sit within a few pixels of each other.
        for index in sorted({0, len(alphas) - 1}) if len(alphas) else ():
            if np.isfinite(psnrs[index]) and np.isfinite(niqes[index]):
                axes.annotate(f"α={alphas[index]:g}", (psnrs[index], niqes[index]), textcoords="offset points",
                              xytext=(4, 4), fontsize=7, color="gray")
    for name, point in points.items():
        x, y = _pair(point, f"point {name!r}")
        axes.scatter([x], [y], s=50, label=str(name), zorder=3)
    if bicubic is not None:
        x, y = _pair(bicubic, "bicubic")
        axes.scatter([x], [y], s=50, marker="s", color="black", label="bicubic", zorder=3)
    if hr_niqe is not None and np.isfinite(float(hr_niqe)):
        axes.axhline(float(hr_niqe), color="black", linestyle=":", label="HR (natural images; no PSNR)")
        # Labelled at the right edge too, where a point of infinite PSNR would sit.
        axes.annotate("HR", (1.0, float(hr_niqe)), xycoords=("axes fraction", "data"), xytext=(-4, 3),
                      textcoords="offset points", ha="right", fontsize=8)
    if note:
        axes.text(0.5, 0.5, "\n".join(textwrap.wrap(str(note), 60)), transform=axes.transAxes, ha="center",
                  va="center", fontsize=9, color="dimgray")
    axes.margins(x=0.08, y=0.08)  # Room for the labels of points at the edges.
    axes.set_xlabel("PSNR-Y (dB), higher = less distortion")
    axes.set_ylabel("NIQE, lower = better (more natural)")
    if title:
        axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # Outside: it would hide points.
    return figure


def plot_perception_distortion(points, path, bicubic=None, hr_niqe=None, sweep=None, title=None, note=None,
                               dpi=100):
    """Saves :func:`perception_distortion_figure` (same arguments) as a PNG and returns `path` as a string."""
    return _save(perception_distortion_figure(points, bicubic, hr_niqe, sweep, title, note), path, dpi)


def plot_logit_curves(runs, path, title=None, dpi=100):
    """GAN health: one small panel per run with the discriminator's mean logits on real (HR) and fake (SR) images
    against the step. Real far above fake for long means the discriminator wins easily and the generator's adversarial
    gradient fades; both drifting together means the critic's offset is free (Wasserstein).

    Args:
        runs: Non-empty dict of run name -> (steps, real_logits, fake_logits), three sequences of equal length.
        path: PNG file to write.
        title: Optional figure title.
        dpi: Resolution of the saved file.

    Returns:
        `path` as a string.
    """
    if not runs:
        raise ValueError("plot_logit_curves needs at least one run, got none")
    columns = min(3, len(runs))
    rows = -(-len(runs) // columns)
    figure = Figure(figsize=(4.2 * columns, 3.0 * rows))
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes, (name, curve) in zip(grid.ravel(), runs.items()):
        steps, real, fake = (np.asarray(part, dtype=float).ravel() for part in curve)
        if not len(steps) == len(real) == len(fake):
            raise ValueError(f"run {name!r}: steps, real and fake logits must have equal lengths")
        axes.plot(steps, real, marker="o", markersize=3, label="real (HR)")
        axes.plot(steps, fake, marker="o", markersize=3, label="fake (SR)")
        axes.axhline(0.0, color="gray", linewidth=0.8)
        axes.set_title("\n".join(textwrap.wrap(str(name), 40)), fontsize=9)
        axes.set_xlabel("step")
        axes.set_ylabel("mean D logit")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
    for axes in grid.ravel()[len(runs):]:
        axes.set_axis_off()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return _save(figure, path, dpi)


def plot_bars(values, path, ylabel, title=None, baseline=0.0, dpi=100):
    """Grouped bars: one group per item (e.g. image), one bar per series (e.g. model), with a reference line.

    Args:
        values: Non-empty dict of series name -> dict of item name -> value; items are shown in the first series'
            order.
        path: PNG file to write.
        ylabel: Y axis label, e.g. "PSNR-Y gain over bicubic (dB)".
        title: Optional figure title.
        baseline: Value of the horizontal reference line (None for none).
        dpi: Resolution of the saved file.

    Returns:
        `path` as a string.
    """
    if not values or not all(values.values()):
        raise ValueError("plot_bars needs at least one non-empty series")
    items = list(next(iter(values.values())))
    width = 0.8 / len(values)
    figure = Figure(figsize=(max(6.0, 0.6 * len(items) * len(values) + 2), 4.0))
    axes = figure.add_subplot()
    positions = np.arange(len(items))
    for index, (name, series) in enumerate(values.items()):
        heights = [float(series.get(item, np.nan)) for item in items]
        axes.bar(positions + (index - (len(values) - 1) / 2) * width, heights, width, label=str(name))
    if baseline is not None:
        axes.axhline(baseline, color="gray", linewidth=0.8)
    axes.set_xticks(positions, [str(item) for item in items], rotation=45 if len(items) > 6 else 0, ha="right"
                    if len(items) > 6 else "center")
    axes.set_ylabel(ylabel)
    if title:
        axes.set_title(title)
    axes.grid(True, axis="y", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return _save(figure, path, dpi)


def save_image_grid(rows, path, titles=None, cell_inches=None, dpi=100):
    """Saves images side by side, e.g. one row per test image: LR, bicubic, each model, HR.

    Every image gets a cell of the same size whatever its resolution, drawn with nearest-neighbour interpolation,
    so an LR input appears enlarged to the HR size with its pixels visible rather than smoothed.

    Args:
        rows: Non-empty list of rows; each row a non-empty list of (label, image) with image a uint8 HxWx3 (or HxW
            grey) array or tensor. Rows may differ in length; missing cells stay blank.
        path: PNG file to write.
        titles: Optional list of row titles, one per row, written to the left of each row.
        cell_inches: Width and height of each cell in inches. None: large enough that the biggest image is shown
            at (at least) its own resolution, so that no image is downsampled and blurred or aliased by the display.
        dpi: Resolution of the saved file.

    Returns:
        `path` as a string.
    """
    if not rows or any(not row for row in rows):
        raise ValueError("save_image_grid needs a non-empty list of non-empty rows")
    if titles is not None and len(titles) != len(rows):
        raise ValueError(f"got {len(titles)} titles for {len(rows)} rows")
    rows = [[_check_image(item, row_index) for item in row] for row_index, row in enumerate(rows)]
    num_columns = max(len(row) for row in rows)
    if cell_inches is None:
        largest = max(max(image.shape[:2]) for row in rows for _, image in row)
        # The extra inch holds the cell's title and the padding between cells.
        cell_inches = max(2.5, largest / dpi + 1.0)
    figure = Figure(figsize=(cell_inches * num_columns, cell_inches * len(rows)))
    grid = figure.subplots(len(rows), num_columns, squeeze=False)
    for row_index, row in enumerate(rows):
        for column_index, axes in enumerate(grid[row_index]):
            if column_index >= len(row):
                axes.set_axis_off()
                continue
            label, image = row[column_index]
            grey = dict(cmap="gray", vmin=0, vmax=255) if image.ndim == 2 else {}
            axes.imshow(image, interpolation="nearest", **grey)
            # Long variant names are wrapped so that neighbouring titles never overlap.
            axes.set_title("\n".join(textwrap.wrap(str(label), 22)), fontsize=9)
            # Ticks are hidden but the axes kept, so that a row title can sit on the first cell's y label.
            axes.set_xticks([])
            axes.set_yticks([])
            if titles is not None and column_index == 0:
                axes.set_ylabel(str(titles[row_index]))
    figure.tight_layout()
    return _save(figure, path, dpi)


def _check_image(item, row_index):
    """Returns (label, uint8 HxWx3 or HxW array) from a (label, image) grid item, or raises ValueError."""
    try:
        label, image = item
    except (TypeError, ValueError):
        kind = type(item).__name__
        raise ValueError(f"row {row_index}: grid items must be (label, image) pairs, got {kind}") from None
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (1, 3))):
        raise ValueError(
            f"image {label!r} (row {row_index}) must be uint8 HxWx3 or HxW, got {image.dtype} {image.shape}; "
            "convert with sr_lib.core.ranges.unit_to_uint8 or hr_to_uint8"
        )
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return str(label), image
