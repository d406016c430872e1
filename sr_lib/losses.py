"""Losses for SRResNet and SRGAN: pixel MSE, VGG content, Per-Pix, and TF-GAN's adversarial losses by name.

Content losses take ``(hr, sr)`` in the HR/SR range ``[-1, 1]`` (see ``sr_lib.core.ranges``). Adversarial losses take the
discriminator's LOGITS on real (HR) and generated (SR) images. Every loss is a float32 scalar, also under mixed
precision, and works eagerly and inside ``tf.function``.
"""

import functools
import importlib.util
import pathlib
import sys
import threading
import types
from dataclasses import dataclass, field
from typing import Callable

import keras
import tensorflow as tf

# Ledig et al. (2017) rescale VGG feature maps by 1/12.75 "to obtain VGG losses of a scale comparable to the MSE loss".
PAPER_VGG_RESCALE = 1.0 / 12.75

# ------------------------------------------------------------------------------------------------ TF-GAN loading
# Why not `import tensorflow_gan`: on TF >= 2.16 the package __init__ (tensorflow_gan/python/__init__ -> train.py,
# estimator/) touches tf.estimator, which was removed, so the import fails with AttributeError. The loss functions in
# tensorflow_gan/python/losses/losses_impl.py need only `tensorflow` and tensorflow_gan/python/contrib_utils.py (which
# itself imports only tensorflow), and they run eagerly and in tf.function on TF 2.21. We execute that installed file
# instead of copying TF-GAN code, so the comparison runs TF-GAN's own, maintained implementation.
_TFGAN_IMPL = "tensorflow_gan.python.losses.losses_impl"
_TFGAN_LOAD_LOCK = threading.Lock()


def _is_tfgan_module(name):
    return name == "tensorflow_gan" or name.startswith("tensorflow_gan.")


@functools.cache
def load_tfgan_losses():
    """Returns TF-GAN's installed ``losses_impl`` module, loaded without running the package ``__init__`` files.

    How: ``find_spec`` locates the package without executing it. Empty stubs for ``tensorflow_gan`` and
    ``tensorflow_gan.python`` (real ``__path__``) go into ``sys.modules`` so that losses_impl's
    ``from tensorflow_gan.python import contrib_utils`` loads the real file; losses_impl is loaded by file location
    under its full name (``losses/__init__`` imports more). Then every ``tensorflow_gan*`` entry added here, stubs
    included, is removed, so a later ``import tensorflow_gan`` behaves as without sr_lib (on TF >= 2.16 it still
    fails in TF-GAN's own __init__, never returns an empty stub). An existing ``sys.modules`` entry for losses_impl
    (TF-GAN importable on an older TF, or left by a failed ``import tensorflow_gan``) is reused.

    Raises:
        ImportError: if tensorflow-gan is not installed or lacks ``python/losses/losses_impl.py``.
    """
    if _TFGAN_IMPL in sys.modules:
        return sys.modules[_TFGAN_IMPL]
    spec = importlib.util.find_spec("tensorflow_gan")  # For a top-level package this only locates it.
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("sr_lib's adversarial losses need TF-GAN: pip install tensorflow-gan==2.1.0")
    package_dir = pathlib.Path(list(spec.submodule_search_locations)[0])
    impl_path = package_dir / "python" / "losses" / "losses_impl.py"
    if not impl_path.is_file():
        raise ImportError(f"TF-GAN losses not found at {impl_path}; sr_lib expects tensorflow-gan==2.1.0")
    with _TFGAN_LOAD_LOCK:
        before = {name for name in sys.modules if _is_tfgan_module(name)}
        try:
            for name, path in (("tensorflow_gan", package_dir), ("tensorflow_gan.python", package_dir / "python")):
                if name not in sys.modules:
                    stub = types.ModuleType(name, "Temporary sr_lib stub: lets losses_impl import contrib_utils.")
                    stub.__path__ = [str(path)]
                    sys.modules[name] = stub
            impl_spec = importlib.util.spec_from_file_location(_TFGAN_IMPL, impl_path)
            module = importlib.util.module_from_spec(impl_spec)
            impl_spec.loader.exec_module(module)
        finally:
            for name in [name for name in sys.modules if _is_tfgan_module(name) and name not in before]:
                del sys.modules[name]
    return module


# ------------------------------------------------------------------------------------------------ content losses
def _check_same_shape(hr, sr):
    # Broadcasting would silently turn e.g. an unbatched target into a wrong loss.
    if not hr.shape.is_compatible_with(sr.shape):
        raise ValueError(f"hr and sr must have the same shape, got {hr.shape} and {sr.shape}")


def pixel_mse(hr, sr):
    """Mean squared error over all pixels and channels, as a float32 scalar.

    Args:
        hr: target images in [-1, 1] (NHWC). On this range the MSE is 4x the MSE of the same images in [0, 1].
        sr: generated images in [-1, 1], same shape.
    """
    hr, sr = tf.cast(hr, tf.float32), tf.cast(sr, tf.float32)
    _check_same_shape(hr, sr)
    return tf.reduce_mean(tf.math.squared_difference(hr, sr))


def pixel_l1(hr, sr):
    """Mean absolute error over all pixels and channels, as a float32 scalar (EDSR/BasicSR's pretraining loss).

    Args:
        hr: target images in [-1, 1] (NHWC).
        sr: generated images in [-1, 1], same shape.
    """
    hr, sr = tf.cast(hr, tf.float32), tf.cast(sr, tf.float32)
    _check_same_shape(hr, sr)
    return tf.reduce_mean(tf.abs(hr - sr))


PIXEL_LOSSES = {"mse": pixel_mse, "l1": pixel_l1}


class PixelContentLoss:
    """A pixel content loss (``PIXEL_LOSSES``: "mse", the paper's SRResNet-MSE, or "l1", ESRGAN's pixel term) with the
    attributes every content loss exposes."""

    uses_vgg = False
    vgg_weights = None

    def __init__(self, name="mse"):
        self.name = _check_name(name, tuple(PIXEL_LOSSES), "pixel loss")
        self.loss = PIXEL_LOSSES[name]

    def __call__(self, hr, sr):
        return self.loss(hr, sr)


class VGGContentLoss:
    """MSE between feature maps of ``hr`` and ``sr`` (the paper's VGG22 / VGG54 losses).

    Args:
        feature_model: a frozen Keras model mapping [-1, 1] images to feature maps (``vgg.make_vgg_features``).
        rescale: factor applied to the features before the MSE, so the loss scales by ``rescale**2``. Default is the
            paper's 1/12.75; 1.0 disables it.
    """

    uses_vgg = True

    def __init__(self, feature_model, rescale=PAPER_VGG_RESCALE):
        if not rescale > 0:
            raise ValueError(f"rescale must be positive, got {rescale!r}")
        self.feature_model = feature_model
        self.rescale = float(rescale)
        self.vgg_weights = getattr(feature_model, "vgg_weights", None)
        self.name = "vgg_content"  # make_content_loss sets the layer key; Keras uses it as a name scope in compile()

    def features(self, images):
        """Rescaled float32 features (float16/bfloat16 under mixed precision are cast before the squares)."""
        return tf.cast(self.feature_model(images, training=False), tf.float32) * self.rescale

    def __call__(self, hr, sr):
        hr, sr = tf.cast(hr, tf.float32), tf.cast(sr, tf.float32)
        _check_same_shape(hr, sr)
        # The target's features are constants: no gradient flows into the HR branch.
        return tf.reduce_mean(tf.math.squared_difference(tf.stop_gradient(self.features(hr)), self.features(sr)))


class PerPixLoss:
    """Per-Pix loss: ``pixel_weight * pixel_mse + vgg_weight * VGGContentLoss``.

    Default ``vgg_weight=1.0``: the paper chose the 1/12.75 rescale to put the VGG loss on the MSE's scale, so equal
    weights mix the two terms evenly. In form this is the weight 6e-3 (~1/12.75**2) on un-rescaled features of several
    PyTorch SRGAN ports (their torchvision VGG normalises inputs differently, so magnitudes are not identical).

    Args:
        feature_model: frozen feature model, as for ``VGGContentLoss``.
        pixel_weight: weight of the pixel MSE (on [-1, 1] images).
        vgg_weight: weight of the VGG term.
        rescale: feature rescale of the VGG term (see ``VGGContentLoss``).
    """

    uses_vgg = True

    def __init__(self, feature_model, pixel_weight=1.0, vgg_weight=1.0, rescale=PAPER_VGG_RESCALE):
        _check_weights(pixel_weight=pixel_weight, vgg_weight=vgg_weight)
        self.vgg = VGGContentLoss(feature_model, rescale)
        self.pixel_weight, self.vgg_weight = float(pixel_weight), float(vgg_weight)
        self.vgg_weights = self.vgg.vgg_weights
        self.name = "perpix"

    def __call__(self, hr, sr):
        return self.pixel_weight * pixel_mse(hr, sr) + self.vgg_weight * self.vgg(hr, sr)


CONTENT_LOSSES = ("mse", "l1", "vgg22", "vgg54", "perpix")


def make_content_loss(name, vgg_weights="imagenet", vgg_layer=None, pixel_weight=1.0, vgg_weight=1.0,
                      rescale=PAPER_VGG_RESCALE):
    """Builds a content loss by name; VGG losses build their feature model with ``vgg.make_vgg_features``.

    Args:
        name: one of ``CONTENT_LOSSES``.
        vgg_weights: "imagenet", a local weights file, or None (random: offline tests only, not meaningful).
        vgg_layer: feature layer for "perpix" (default "vgg54"): a ``vgg.VGG_LAYERS`` key or a VGG19 layer name.
            For "vgg22"/"vgg54" the layer is the name itself; a different ``vgg_layer`` is an error.
        pixel_weight: "perpix" only, see ``PerPixLoss``.
        vgg_weight: "perpix" only, see ``PerPixLoss``.
        rescale: VGG feature rescale (VGG losses only), see ``VGGContentLoss``.

    Returns:
        A callable ``(hr, sr) -> scalar`` with attributes ``uses_vgg``, ``vgg_weights`` and ``name``.
    """
    _check_name(name, CONTENT_LOSSES, "content loss")
    if name in PIXEL_LOSSES:
        return PixelContentLoss(name)
    if name in ("vgg22", "vgg54") and vgg_layer not in (None, name):
        raise ValueError(f"content loss {name!r} fixes its VGG layer; got conflicting vgg_layer={vgg_layer!r}")
    # Imported here so that losses does not need models at import time.
    from sr_lib.nets.vgg import make_vgg_features

    features = make_vgg_features(layer=vgg_layer or ("vgg54" if name == "perpix" else name), weights=vgg_weights)
    if name == "perpix":
        loss = PerPixLoss(features, pixel_weight=pixel_weight, vgg_weight=vgg_weight, rescale=rescale)
    else:
        loss = VGGContentLoss(features, rescale=rescale)
    loss.name = name
    return loss


# ------------------------------------------------------------------------------------------------ adversarial
@dataclass(frozen=True)
class AdversarialSpec:
    """Which TF-GAN functions an adversarial loss name stands for (values of ``ADVERSARIAL_LOSSES``)."""

    generator: str  # function names in TF-GAN's losses_impl
    discriminator: str
    description: str
    generator_uses_real: bool = False  # the relativistic generator loss also compares against the real logits
    label_smoothing: bool = False  # accepts TF-GAN's (positive-label) label smoothing on the discriminator side
    gradient_penalty_weight: float = 0.0
    tf_compat_options: bool = True  # takes tf.compat.v1.losses options (reduction, loss_collection, add_summaries)


ADVERSARIAL_LOSSES = {
    "minimax": AdversarialSpec(
        "minimax_generator_loss", "minimax_discriminator_loss",
        "original GAN: G minimises log(1 - D(G(x))), which saturates early", label_smoothing=True),
    "modified": AdversarialSpec(
        "modified_generator_loss", "modified_discriminator_loss",
        "non-saturating GAN: G minimises -log D(G(x)) (the SRGAN paper)", label_smoothing=True),
    "least_squares": AdversarialSpec(
        "least_squares_generator_loss", "least_squares_discriminator_loss", "LSGAN (Mao et al. 2017)"),
    "wasserstein": AdversarialSpec(
        "wasserstein_generator_loss", "wasserstein_discriminator_loss", "WGAN critic loss (Arjovsky et al. 2017)"),
    "wasserstein_hinge": AdversarialSpec(
        "wasserstein_generator_loss", "wasserstein_hinge_discriminator_loss", "hinge critic, Wasserstein generator"),
    "relativistic": AdversarialSpec(
        "relativistic_generator_loss", "relativistic_discriminator_loss",
        "relativistic average GAN, as in ESRGAN", generator_uses_real=True, tf_compat_options=False),
    "wasserstein_gp": AdversarialSpec(
        "wasserstein_generator_loss", "wasserstein_discriminator_loss",
        "WGAN-GP: Wasserstein loss plus 10 x gradient_penalty, added by the caller", gradient_penalty_weight=10.0),
}


@dataclass(frozen=True)
class AdversarialLoss:
    """Generator and discriminator sides of one adversarial loss; both take ``(real_logits, fake_logits)``."""

    name: str
    generator_loss: Callable = field(repr=False)
    discriminator_loss: Callable = field(repr=False)
    gradient_penalty_weight: float = 0.0  # the caller adds weight * gradient_penalty(...) to the discriminator loss
    label_smoothing: float = 0.0


def get_adversarial_loss(name, label_smoothing=0.0):
    """Returns the named TF-GAN adversarial loss, with float32 casting and scalar mean reduction.

    Args:
        name: one of ``ADVERSARIAL_LOSSES``.
        label_smoothing: "minimax"/"modified" discriminator only. TF-GAN's convention: real targets become
            ``1 - label_smoothing / 2`` (0.2 gives the 0.9 of Salimans et al. 2016). Default 0, not TF-GAN's 0.25.
            The generator side is never smoothed.

    Note: TF-GAN's minimax generator loss is ``mean(log(1 - sigmoid(fake))) + log(sigmoid(1))``; the constant
    (about -0.31) does not change gradients.
    """
    spec = ADVERSARIAL_LOSSES[_check_name(name, ADVERSARIAL_LOSSES, "adversarial loss")]
    label_smoothing = float(label_smoothing)
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if label_smoothing and not spec.label_smoothing:
        supported = [key for key, value in ADVERSARIAL_LOSSES.items() if value.label_smoothing]
        raise ValueError(f"label_smoothing applies only to {supported}, not to {name!r}")
    tfgan = load_tfgan_losses()
    generator_fn, discriminator_fn = getattr(tfgan, spec.generator), getattr(tfgan, spec.discriminator)
    options = {}
    if spec.tf_compat_options:
        # SUM_BY_NONZERO_WEIGHTS with weights 1 is the mean over the batch (a scalar). No loss collections or
        # summaries: they are TF1 graph machinery.
        options = dict(reduction=tf.compat.v1.losses.Reduction.SUM_BY_NONZERO_WEIGHTS, loss_collection=None,
                       add_summaries=False)
    discriminator_options = dict(options, label_smoothing=label_smoothing) if spec.label_smoothing else options

    def generator_loss(real_logits, fake_logits):
        fake_logits = _as_float32(fake_logits)
        if not spec.generator_uses_real:
            return generator_fn(fake_logits, **options)
        if real_logits is None:
            raise ValueError(f"the {name!r} generator loss needs real_logits, got None")
        return generator_fn(_as_float32(real_logits), fake_logits, **options)

    def discriminator_loss(real_logits, fake_logits):
        return discriminator_fn(_as_float32(real_logits), _as_float32(fake_logits), **discriminator_options)

    return AdversarialLoss(name, generator_loss, discriminator_loss, spec.gradient_penalty_weight, label_smoothing)


def _as_float32(logits):
    # Mixed precision: compute every loss in float32 whatever the discriminator's compute dtype.
    return tf.cast(logits, tf.float32)


def _uniform(shape, seed):
    if seed is None:
        return tf.random.uniform(shape)
    if isinstance(seed, keras.random.SeedGenerator):
        return tf.cast(keras.random.uniform(shape, seed=seed), tf.float32)
    if isinstance(seed, int):
        seed = (seed, 0)
    return tf.random.stateless_uniform(shape, seed=tf.cast(seed, tf.int32))


def gradient_penalty(discriminator, real, fake, seed=None, target=1.0, training=True):
    """WGAN-GP penalty ``mean((||grad_x D(x_hat)||_2 - target)**2)``, x_hat = eps*real + (1-eps)*fake per sample.

    The gradient comes from ``tf.GradientTape``: TF-GAN's ``wasserstein_gradient_penalty`` uses ``tf.gradients``,
    which works only in graph mode (it raises eagerly). Called under an outer tape, the penalty is differentiable
    with respect to the discriminator's weights (double backprop). TF-GAN divides by ``target`` (``(s/t - 1)**2``);
    this follows Gulrajani et al. and matches it for the default target 1.

    Args:
        discriminator: Keras model (or callable accepting ``training=``) mapping images to logits.
        real: real images, NHWC.
        fake: generated images, same shape.
        seed: None (stateful random), an int or a pair (stateless: the same eps on every call with that seed), or a
            ``keras.random.SeedGenerator``.
        target: target gradient norm.
        training: passed to the discriminator. With BatchNorm in training mode the penalty mixes samples through
            batch statistics (Gulrajani et al. advise a critic without BatchNorm).

    Returns:
        A float32 scalar.
    """
    real, fake = tf.cast(real, tf.float32), tf.cast(fake, tf.float32)
    _check_same_shape(real, fake)
    eps_shape = tf.concat([tf.shape(real)[:1], tf.ones([tf.rank(real) - 1], tf.int32)], axis=0)
    interpolates = fake + _uniform(eps_shape, seed) * (real - fake)
    with tf.GradientTape() as tape:
        tape.watch(interpolates)
        logits = tf.cast(discriminator(interpolates, training=training), tf.float32)
    gradients = tape.gradient(logits, interpolates)
    squares = tf.reduce_sum(tf.square(gradients), axis=tf.range(1, tf.rank(gradients)))
    # The epsilon keeps the gradient of sqrt finite at 0, as in TF-GAN.
    return tf.reduce_mean(tf.square(tf.sqrt(squares + 1e-10) - target))


# ------------------------------------------------------------------------------------------------ generator
class GeneratorLoss:
    """The SRGAN generator objective: ``content + adversarial_weight * adversarial + pixel_weight * pixel_mse``.

    Args:
        content_loss: callable ``(hr, sr) -> scalar``, e.g. from ``make_content_loss``.
        adversarial: an ``AdversarialLoss`` or its name.
        adversarial_weight: 1e-3 in Ledig et al. (2017).
        pixel_weight: optional extra pixel MSE, a stabiliser for perceptual training (0 = off, the paper).
    """

    def __init__(self, content_loss, adversarial, adversarial_weight=1e-3, pixel_weight=0.0):
        _check_weights(adversarial_weight=adversarial_weight, pixel_weight=pixel_weight)
        self.content_loss = content_loss
        self.adversarial = get_adversarial_loss(adversarial) if isinstance(adversarial, str) else adversarial
        self.adversarial_weight, self.pixel_weight = float(adversarial_weight), float(pixel_weight)

    def __call__(self, hr, sr, real_logits, fake_logits, adversarial_on=1.0):
        """Returns a dict of float32 scalars: total, content, adversarial and pixel (logged even when unweighted).
        ``adversarial_on`` (0 or 1, a tensor in a train step) switches the adversarial term off during a
        discriminator warm-up."""
        content = tf.cast(self.content_loss(hr, sr), tf.float32)
        adversarial = self.adversarial.generator_loss(real_logits, fake_logits)
        pixel = pixel_mse(hr, sr)
        total = content + adversarial_on * self.adversarial_weight * adversarial + self.pixel_weight * pixel
        return {"total": total, "content": content, "adversarial": adversarial, "pixel": pixel}


# ------------------------------------------------------------------------------------------------ helpers
def _check_name(name, valid, kind):
    if not isinstance(name, str) or name not in valid:
        raise ValueError(f"unknown {kind} {name!r}; valid names: {', '.join(valid)}")
    return name


def _check_weights(**weights):
    for key, value in weights.items():
        if not value >= 0:
            raise ValueError(f"{key} must be >= 0, got {value!r}")
