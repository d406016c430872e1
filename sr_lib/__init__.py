"""sr_lib: SRResNet and SRGAN (Ledig et al., 2017) in Keras 3, with TF-GAN adversarial losses side by side."""

__version__ = "0.1.0"

# Registers sr_lib's custom layers with Keras, so that any generator saved by sr_lib loads with
# keras.saving.load_model(path, safe_mode=True) once sr_lib (or any of its modules) is imported.
from sr_lib import layers as _layers  # noqa: E402,F401
