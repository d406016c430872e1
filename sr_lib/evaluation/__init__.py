"""Measuring results: ``metrics`` (PSNR/SSIM on Y), ``niqe`` (no-reference NIQE), ``evaluate`` (models and bicubic on image folders), ``plots``,
``tables``, ``zoom`` (zoomed crops) and ``published`` (the paper's numbers)."""

from sr_lib.evaluation import evaluate, metrics, niqe, plots, published, tables, zoom
from sr_lib.evaluation.evaluate import Evaluation, evaluate_arrays, evaluate_images, load_model
from sr_lib.evaluation.tables import Table

__all__ = ["evaluate", "metrics", "niqe", "plots", "published", "tables", "zoom", "Evaluation", "Table", "evaluate_arrays",
           "evaluate_images", "load_model"]
