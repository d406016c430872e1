"""The networks: ``layers`` (registered custom Keras layers), ``models`` (generator, discriminator), ``vgg`` (VGG19
features), ``saving`` (load and save generators) and ``interpolation`` (blending two generators' weights)."""

from sr_lib.nets import interpolation, layers, models, saving, vgg
from sr_lib.nets.models import as_float32, make_discriminator, make_generator
from sr_lib.nets.saving import load_generator, model_scale, save_model_atomic
from sr_lib.nets.vgg import make_vgg_features

__all__ = ["interpolation", "layers", "models", "saving", "vgg", "as_float32", "load_generator", "make_discriminator",
           "make_generator", "make_vgg_features", "model_scale", "save_model_atomic"]
