"""Running a trained generator: ``upscaler`` (a .keras or SavedModel runner), ``tiling`` (receptive field and tiles),
``upscale`` (the command), ``export`` (SavedModel, TFLite) and ``standalone`` (an export run without sr_lib)."""
