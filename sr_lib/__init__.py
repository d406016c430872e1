"""sr_lib: SRResNet and SRGAN (Ledig et al., 2017) in Keras 3, with TF-GAN adversarial losses side by side."""

__version__ = "0.1.0"
