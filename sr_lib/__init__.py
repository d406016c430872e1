"""sr_lib: SRResNet and SRGAN (Ledig et al., 2017) in Keras 3, with TF-GAN adversarial losses side by side."""

__version__ = "0.1.0"

import sys as _sys

if _sys.argv[:1] == ["-m"]:  # `python -m sr_lib ...`: quiet TensorFlow's start-up before it is imported (console.py).
    from sr_lib import console as _console

    _console.start(_sys.argv[1:])

# Registers sr_lib's custom layers with Keras, so that any generator saved by sr_lib loads with
# keras.saving.load_model(path, safe_mode=True) once sr_lib (or any of its modules) is imported.
from sr_lib.nets import layers as _layers  # noqa: E402,F401
