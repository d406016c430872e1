"""One configuration object for every run: nested dataclasses, named presets, strict JSON load/save.

A config is saved as ``config.json`` in every run directory, and a run can be rebuilt from that file alone.
Unknown keys and wrong types are rejected by name before anything runs (nanoGPT's rule, without its ``exec``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field

from sr_lib.core.storage import as_path, write_text

# Values of train.strategy (see TrainConfig.strategy and sr_lib.training.phases.make_strategy).
STRATEGIES = ("default", "mirrored", "multi_worker")


class ConfigError(ValueError):
    """A configuration key is unknown, has the wrong type, or an invalid value."""


@dataclass
class DataConfig:
    source: str | None = None  # None: scikit-image's bundled photographs; else a folder or a DIV2K root.
    valid_source: str | None = None  # None: the validation split of `source` (DIV2K_valid_HR, or embedded).
    hr_size: int = 256  # HR crop side; LR side is hr_size // scale (the seed project's 256 -> 64).
    scale: int = 4
    blur_sigma: float = 0.0  # Gaussian blur before bicubic downsampling; 0 = plain bicubic degradation.
    batch_size: int = 16
    valid_hr_size: int = 0  # Validation crop side; 0 = same as hr_size.
    valid_crops_per_image: int = 1
    strict: bool = False  # True: unreadable or too-small images are an error instead of a warning.
    # With a plain training folder and no valid_source: hold this many of its images (evenly spaced in sorted order)
    # apart for validation, so that "best" checkpoints are chosen on images never trained on (and not on test sets).
    valid_holdout: int = 0


@dataclass
class ModelConfig:
    num_blocks: int = 16
    channels: int = 64
    upsample: str = "subpixel"  # "subpixel" (conv + depth_to_space) or "upsampling" (UpSampling2D + conv).
    interpolation: str = "nearest"  # For upsample="upsampling": "nearest" or "bilinear".
    icnr: bool = True  # ICNR init of sub-pixel convs, against checkerboard artifacts at the start of training.
    batch_norm: bool = True  # The paper's BN in the generator body; False drops it (EDSR/ESRGAN style).
    # "none" (the paper: conv + tanh), "bicubic" or "bilinear": add the network's output to that upsampling of the
    # input (VDSR/MSRResNet global residual learning; not the paper's architecture).
    global_residual: str = "none"
    residual_init_scale: float | None = None  # None: Keras' default init; 0.1: BasicSR's scaled He init of the blocks.
    discriminator_channels: int = 64
    discriminator_fixed_size: bool = True  # True: the paper's Flatten + Dense on hr_size crops; False: global pooling.
    # Multi-device runs: BatchNorm statistics over the global batch (all replicas) instead of each replica's share.
    sync_batch_norm: bool = False


@dataclass
class LossConfig:
    content: str = "vgg54"  # "mse", "l1" (pixel losses), "vgg22", "vgg54" or "perpix".
    adversarial: str = "modified"  # A name in sr_lib.losses.ADVERSARIAL_LOSSES, or "none" for content-only training.
    adversarial_weight: float = 1e-3  # The paper's 10^-3 on the adversarial term.
    pixel_weight: float = 0.0  # Extra pixel-MSE term in the generator objective, as a stabiliser.
    perpix_vgg_weight: float = 1.0  # lambda in Per-Pix = MSE + lambda * VGG (on features rescaled by vgg_rescale).
    vgg_rescale: float = 1 / 12.75  # The paper's feature rescaling; 1.0 disables it.
    # "imagenet" (downloaded once, cached by Keras), a local weights file, "auto" (imagenet if obtainable, else random,
    # labelled), or None (random: tests and offline runs; never a perceptual result).
    vgg_weights: str | None = "imagenet"
    label_smoothing: float = 0.0
    gradient_penalty_weight: float = 10.0  # Used by "wasserstein_gp" only.


@dataclass
class TrainConfig:
    pretrain_steps: int = 1_000_000  # Phase 1 (SRResNet, MSE).
    gan_steps: int = 200_000  # Phase 2 (SRGAN).
    learning_rate: float = 1e-4
    decayed_learning_rate: float = 1e-5
    pretrain_loss: str = "mse"  # Phase 1 pixel loss: "mse" (the paper) or "l1" (EDSR, BasicSR).
    # Phase 1 rate: "constant" (the paper) or "cosine" (learning_rate -> decayed_learning_rate over pretrain_steps).
    pretrain_schedule: str = "constant"
    gan_decay_step: int = 100_000  # Phase-2 step at which the rate drops to decayed_learning_rate.
    # Phase 2's discriminator: its own Adam rate (None: the generator's schedule; a number: that rate with the same
    # decay step and ratio), and warm-up steps at the start of phase 2 during which the discriminator learns while the
    # generator trains on its content loss alone (no adversarial term yet), so the first adversarial gradients come
    # from a discriminator that tells real from fake.
    discriminator_learning_rate: float | None = None
    discriminator_warmup_steps: int = 0
    beta_1: float = 0.9
    beta_2: float = 0.999  # Adam's second-moment decay (Keras default; BasicSR uses 0.99).
    validate_every: int = 1000  # Steps between validations, checkpoints and log rows.
    images_every: int = 10_000  # Steps between image grids (a multiple of validate_every).
    mixed_precision: str = "none"  # "none", "auto", "mixed_bfloat16" or "mixed_float16".
    # "default" (one device), "mirrored" (all GPUs of this machine; without GPUs, its logical CPU devices) or
    # "multi_worker" (MultiWorkerMirroredStrategy over the machines that the TF_CONFIG environment variable lists).
    # data.batch_size is the global batch, split across the replicas.
    strategy: str = "default"
    seed: int = 0


@dataclass
class Config:
    name: str = "srgan"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self, path=None) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"
        if path is not None:
            write_text(path, text)  # Whole or not at all: a temporary name then a rename, or one remote object.
        return text

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        config = _build(cls, values, prefix="")
        validate(config)
        return config

    @classmethod
    def from_json(cls, path) -> "Config":
        """Loads a config.json: a local path or a ``tf.io.gfile`` URL (``gs://...``)."""
        path = as_path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path} is not valid JSON: {error}") from None
        return cls.from_dict(values)

    def replace(self, **dotted) -> "Config":
        """A copy with dotted keys overridden, e.g. ``replace(**{"train.gan_steps": 10})``; validated."""
        values = self.to_dict()
        for key, value in dotted.items():
            section, _, leaf = key.rpartition(".")
            target = values
            for part in section.split(".") if section else []:
                if part not in target or not isinstance(target[part], dict):
                    raise ConfigError(f"unknown config key: {key}")
                target = target[part]
            if leaf not in target:
                raise ConfigError(f"unknown config key: {key}")
            target[leaf] = value
        return Config.from_dict(values)


def _type_ok(value, annotation) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, annotation)


def _build(cls, values, prefix):
    if not isinstance(values, dict):
        raise ConfigError(f"config section '{prefix or 'root'}' must be an object, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown config key: {prefix}{unknown[0]} (valid keys here: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in values.items():
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            kwargs[name] = _build(annotation, value, prefix=f"{prefix}{name}.")
        elif not _type_ok(value, annotation):
            raise ConfigError(f"config key {prefix}{name} must be {_type_name(annotation)}, got {value!r}")
        else:
            kwargs[name] = float(value) if annotation is float else value
    return cls(**kwargs)


def _type_name(annotation) -> str:
    return str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _check(condition, key, message):
    if not condition:
        raise ConfigError(f"config key {key}: {message}")


def validate(config: Config) -> Config:
    """Check values (types are checked when loading); raises ConfigError naming the key."""
    from sr_lib.losses import ADVERSARIAL_LOSSES, CONTENT_LOSSES, PIXEL_LOSSES
    from sr_lib.nets.models import GLOBAL_RESIDUALS, INTERPOLATIONS, SCALES, UPSAMPLERS

    d, m, l, t = config.data, config.model, config.loss, config.train
    _check(bool(config.name) and "/" not in config.name, "name", f"must be a non-empty folder name, got {config.name!r}")
    _check(d.scale in SCALES, "data.scale", f"must be one of {', '.join(map(str, SCALES))}, got {d.scale}")
    _check(d.hr_size > 0 and d.hr_size % d.scale == 0, "data.hr_size",
           f"must be a positive multiple of data.scale={d.scale}, got {d.hr_size}")
    valid_size = d.valid_hr_size or d.hr_size
    _check(valid_size % d.scale == 0 and valid_size >= 0, "data.valid_hr_size",
           f"must be 0 or a positive multiple of data.scale={d.scale}, got {d.valid_hr_size}")
    _check(d.batch_size > 0, "data.batch_size", f"must be positive, got {d.batch_size}")
    _check(d.blur_sigma >= 0, "data.blur_sigma", f"must be >= 0, got {d.blur_sigma}")
    _check(d.valid_crops_per_image > 0, "data.valid_crops_per_image", "must be positive")
    _check(m.num_blocks > 0, "model.num_blocks", f"must be positive, got {m.num_blocks}")
    _check(m.channels > 0, "model.channels", f"must be positive, got {m.channels}")
    _check(m.discriminator_channels > 0, "model.discriminator_channels", "must be positive")
    _check(m.upsample in UPSAMPLERS, "model.upsample", f"must be one of {', '.join(UPSAMPLERS)}, got {m.upsample!r}")
    _check(m.global_residual in GLOBAL_RESIDUALS, "model.global_residual",
           f"must be one of {', '.join(GLOBAL_RESIDUALS)}, got {m.global_residual!r}")
    _check(m.residual_init_scale is None or (math.isfinite(m.residual_init_scale) and m.residual_init_scale > 0),
           "model.residual_init_scale", f"must be null or > 0, got {m.residual_init_scale}")
    _check(d.valid_holdout >= 0, "data.valid_holdout", f"must be >= 0, got {d.valid_holdout}")
    _check(t.pretrain_loss in PIXEL_LOSSES, "train.pretrain_loss",
           f"must be one of {', '.join(PIXEL_LOSSES)}, got {t.pretrain_loss!r}")
    _check(t.pretrain_schedule in ("constant", "cosine"), "train.pretrain_schedule",
           f"must be 'constant' or 'cosine', got {t.pretrain_schedule!r}")
    _check(0 <= t.beta_2 < 1, "train.beta_2", f"must be in [0, 1), got {t.beta_2}")
    _check(m.interpolation in INTERPOLATIONS, "model.interpolation",
           f"must be one of {', '.join(INTERPOLATIONS)}, got {m.interpolation!r}")
    _check(l.content in CONTENT_LOSSES, "loss.content", f"must be one of {', '.join(CONTENT_LOSSES)}, got {l.content!r}")
    adversarial_names = ("none",) + tuple(ADVERSARIAL_LOSSES)
    _check(l.adversarial in adversarial_names, "loss.adversarial",
           f"must be one of {', '.join(adversarial_names)}, got {l.adversarial!r}")
    for key in ("adversarial_weight", "pixel_weight", "perpix_vgg_weight", "gradient_penalty_weight"):
        value = getattr(l, key)
        _check(math.isfinite(value) and value >= 0, f"loss.{key}", f"must be a finite number >= 0, got {value}")
    _check(math.isfinite(l.vgg_rescale) and l.vgg_rescale > 0, "loss.vgg_rescale", "must be > 0")
    _check(0 <= l.label_smoothing < 1, "loss.label_smoothing", f"must be in [0, 1), got {l.label_smoothing}")
    _check(t.pretrain_steps >= 0, "train.pretrain_steps", f"must be >= 0, got {t.pretrain_steps}")
    _check(t.gan_steps >= 0, "train.gan_steps", f"must be >= 0, got {t.gan_steps}")
    _check(t.validate_every > 0, "train.validate_every", f"must be positive, got {t.validate_every}")
    for key in ("pretrain_steps", "gan_steps", "images_every"):
        _check(getattr(t, key) % t.validate_every == 0, f"train.{key}",
               f"must be a multiple of train.validate_every={t.validate_every}, got {getattr(t, key)}")
    for key in ("learning_rate", "decayed_learning_rate"):
        _check(math.isfinite(getattr(t, key)) and getattr(t, key) > 0, f"train.{key}", "must be > 0")
    _check(0 <= t.beta_1 < 1, "train.beta_1", f"must be in [0, 1), got {t.beta_1}")
    _check(t.discriminator_learning_rate is None
           or (math.isfinite(t.discriminator_learning_rate) and t.discriminator_learning_rate > 0),
           "train.discriminator_learning_rate", f"must be null or > 0, got {t.discriminator_learning_rate}")
    _check(0 <= t.discriminator_warmup_steps <= t.gan_steps, "train.discriminator_warmup_steps",
           f"must be in [0, train.gan_steps={t.gan_steps}], got {t.discriminator_warmup_steps}")
    _check(t.gan_decay_step >= 0, "train.gan_decay_step", "must be >= 0")
    _check(t.mixed_precision in ("none", "auto", "mixed_bfloat16", "mixed_float16"), "train.mixed_precision",
           f"must be 'none', 'auto', 'mixed_bfloat16' or 'mixed_float16', got {t.mixed_precision!r}")
    _check(t.strategy in STRATEGIES, "train.strategy",
           f"must be one of {', '.join(STRATEGIES)}, got {t.strategy!r}")
    return config


def _paper() -> Config:
    # Ledig et al. (2017): 96-px HR crops, batch 16, 10^6 MSE steps, then 10^5 + 10^5 GAN steps (1e-4, then 1e-5).
    config = Config(name="paper")
    config.data.hr_size = 96
    return config


def _seed() -> Config:
    # The seed project's 256 -> 64 crops, shorter schedule.
    config = Config(name="seed")
    config.train.pretrain_steps = 100_000
    config.train.gan_steps = 50_000
    config.train.gan_decay_step = 25_000
    config.train.validate_every = 1000
    config.train.images_every = 5000
    return config


def _srresnet() -> Config:
    # The recipe of the shipped saved_models/srresnet_x4 (its README has the measurements behind each choice): the
    # paper's SRResNet size (16 blocks, 64 channels, x4 sub-pixel) without BN and with a global bicubic residual, L1,
    # Adam 2e-4 (beta_2 0.99) with a cosine decay, about two hours on a 2-core CPU in mixed_bfloat16. Train it on a
    # plain folder (e.g. T91 + BSD200): 10 of its images are held apart for validation and best-checkpoint choice.
    config = _paper()
    config.name = "srresnet"
    config.data.valid_holdout = 10
    config.data.valid_hr_size = 128
    config.data.valid_crops_per_image = 2
    config.model.batch_norm = False
    config.model.global_residual = "bicubic"
    config.model.residual_init_scale = 0.1
    config.train.pretrain_loss = "l1"
    config.train.pretrain_schedule = "cosine"
    config.train.learning_rate = 2e-4
    config.train.decayed_learning_rate = 1e-6
    config.train.beta_2 = 0.99
    config.train.pretrain_steps = 9000
    config.train.validate_every = 500
    config.train.images_every = 4500
    config.train.mixed_precision = "auto"
    return config


def _demo() -> Config:
    # Minutes on a CPU: every loss variant fine-tuned from the shipped SRResNet (compare --pretrained
    # saved_models/srresnet_x4/srresnet_x4.keras, as `make demo` does) on the embedded photographs. The model keys match
    # that generator; the short GAN phase shows the workflow and each loss's first steps, not converged SRGANs.
    config = Config(name="demo")
    shipped = _srresnet().model
    config.model.batch_norm = shipped.batch_norm
    config.model.global_residual = shipped.global_residual
    config.model.residual_init_scale = shipped.residual_init_scale
    config.data.hr_size = 64
    config.data.batch_size = 4
    config.data.valid_hr_size = 128
    config.data.valid_crops_per_image = 2
    config.model.discriminator_channels = 32
    config.train.pretrain_steps = 0  # Only used without --pretrained; then phase 1 is skipped too (see README).
    config.train.gan_steps = 60
    config.train.gan_decay_step = 40  # The paper's 1e-4 -> 1e-5, compressed.
    config.train.validate_every = 20
    config.train.images_every = 60
    config.train.mixed_precision = "auto"
    config.loss.vgg_weights = "auto"
    return config


def _reference() -> Config:
    # The shipped results/loss_comparison_x4: every variant fine-tuned from the shipped SRResNet (compare --pretrained)
    # on a plain folder such as T91 + BSD200, its 10 held-out images for validation. Short probes (results/
    # loss_comparison_x4/README.md) chose the knobs: the paper's weight 1e-3 with the paper's 64-channel discriminator
    # moves NIQE within a few hundred steps (heavier weights buy less); the 100 warm-up steps, which did not change
    # NIQE there, let the first adversarial gradients come from a discriminator that has learned something.
    # Validation crops of 200 px are the smallest NIQE can score at x4.
    config = _demo()
    config.name = "reference"
    config.data.batch_size = 8
    config.data.valid_holdout = 10
    config.data.valid_hr_size = 200
    config.data.valid_crops_per_image = 1
    config.model.discriminator_channels = 64  # The paper's discriminator.
    config.train.gan_steps = 1500
    config.train.gan_decay_step = 1000
    config.train.discriminator_warmup_steps = 100
    config.train.validate_every = 100
    config.train.images_every = 1500
    return config


def _ci() -> Config:
    # Seconds: exercises every code path at toy size.
    config = Config(name="ci")
    config.data.hr_size = 32
    config.data.batch_size = 2
    config.data.valid_hr_size = 32
    config.model.num_blocks = 1
    config.model.channels = 8
    config.model.discriminator_channels = 4
    config.loss.vgg_weights = None
    config.train.pretrain_steps = 4
    config.train.gan_steps = 4
    config.train.gan_decay_step = 2
    config.train.validate_every = 2
    config.train.images_every = 4
    return config


PRESETS = {"paper": _paper, "seed": _seed, "srresnet": _srresnet, "demo": _demo, "reference": _reference, "ci": _ci}


def get_preset(name: str) -> Config:
    """A fresh copy of a named preset: 'paper', 'seed', 'srresnet', 'demo', 'reference' or 'ci'."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return validate(copy.deepcopy(PRESETS[name]()))
