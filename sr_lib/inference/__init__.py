"""Running a trained generator: ``upscaler`` (a .keras, SavedModel or .onnx runner), ``tiling`` (receptive field and
tiles), ``upscale`` (the command), ``export`` (SavedModel, TFLite, ONNX), ``onnx`` (the ONNX conversion and its
onnxruntime runner) and ``standalone`` (an export run without sr_lib)."""

from sr_lib.inference import export, standalone, tiling, upscale, upscaler
from sr_lib.inference.export import export_generator
from sr_lib.inference.upscale import upscale_files
from sr_lib.inference.upscaler import Upscaler, load_upscaler

__all__ = ["export", "standalone", "tiling", "upscale", "upscaler", "Upscaler", "export_generator", "load_upscaler",
           "upscale_files"]
