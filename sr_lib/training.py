"""Training: phase 1 pretrains SRResNet with pixel MSE through ``fit``; phase 2 trains SRGAN, a ``keras.Model`` with
its own ``train_step`` (discriminator update, then generator update, from one SR forward pass).

Each phase writes a run directory::

    config.json  log.csv  tensorboard/  images/  checkpoints/  generator_best_psnr_y.keras  generator_final.keras

Calling a phase again on the same directory resumes from the latest checkpoint at the same step.
"""

from __future__ import annotations

import contextlib
import csv
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from sr_lib import data as data_lib
from sr_lib import losses as losses_lib
from sr_lib.callbacks import (CheckpointCallback, CSVLog, ImageGridCallback, LearningRateLogger, NonFiniteLossGuard, RunState,
                              TrainingDivergedError, ValidationCallback, save_model_atomic)
from sr_lib.checkpoint import Checkpointer
from sr_lib.config import Config, ConfigError
from sr_lib.evaluate import load_generator
from sr_lib.models import make_discriminator, make_generator

__all__ = ["SRGAN", "TrainData", "RunResult", "TrainingDivergedError", "build_generator", "prepare_data", "pretrain",
           "train_gan",
           "read_log", "resolve_precision"]


@dataclass
class TrainData:
    """Everything a phase needs from the data, prepared once and shared by all variants of a comparison."""

    images: list  # Decoded training images (uint8).
    valid_lr: np.ndarray
    valid_hr: np.ndarray


@dataclass
class RunResult:
    run_dir: Path
    step: int
    best_psnr_y: float
    best_step: int
    final_path: Path
    best_path: Path
    vgg_weights: str | None  # "imagenet", a file, "random" (labelled as such in reports), or None if no VGG loss.


def prepare_data(config: Config) -> TrainData:
    """Decodes the training and validation images once and cuts the fixed validation crops."""
    d = config.data
    valid_size = d.valid_hr_size or d.hr_size
    train_source, valid_source = d.source, d.valid_source
    plain_folder = isinstance(d.source, str) and not data_lib.is_div2k(d.source)
    if d.valid_holdout and d.valid_source is None and plain_folder:
        train_source, valid_source = data_lib.split_holdout(data_lib.find_images(d.source), d.valid_holdout)
    elif d.valid_source is None and plain_folder:
        # A plain folder has no validation split: validating on training images would flatter every number.
        warnings.warn(f"data.valid_source is not set, so validation crops come from the training folder {d.source}; "
                      "pass --valid-data (data.valid_source) or --set data.valid_holdout=N for an honest validation "
                      "set", stacklevel=2)
    if valid_source is None:
        valid_source = d.source
    train_images = data_lib.resolve_images(train_source, split="train", min_size=d.hr_size, strict=d.strict)
    valid_images = data_lib.resolve_images(valid_source, split="valid", min_size=valid_size, strict=d.strict)
    valid_lr, valid_hr = data_lib.make_validation_set(valid_images, hr_size=valid_size, scale=d.scale,
                                                      seed=config.train.seed, crops_per_image=d.valid_crops_per_image,
                                                      blur_sigma=d.blur_sigma)
    return TrainData(train_images, valid_lr, valid_hr)


def cpu_bf16_flags() -> list:
    """The CPU's bfloat16 instruction sets (``amx_bf16``, ``avx512_bf16``) found in /proc/cpuinfo, if any."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    return [flag for flag in ("amx_bf16", "avx512_bf16") if flag in info]


def resolve_precision(name: str) -> str:
    """'auto' -> mixed_float16 on a GPU, mixed_bfloat16 on a CPU with bfloat16 instructions, else float32."""
    if name == "none":
        return "float32"
    if name != "auto":
        return name
    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_bf16_flags() else "float32"


def make_strategy(name: str):
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


@contextlib.contextmanager
def _precision(policy: str):
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def build_generator(config: Config) -> keras.Model:
    """The generator that ``config.model`` and ``config.data.scale`` describe (untrained)."""
    m, d = config.model, config.data
    return make_generator(num_blocks=m.num_blocks, channels=m.channels, scale=d.scale, upsample=m.upsample,
                          interpolation=m.interpolation, icnr=m.icnr, batch_norm=m.batch_norm,
                          global_residual=m.global_residual, residual_init_scale=m.residual_init_scale)


def _adam(config: Config, learning_rate, policy: str):
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate, beta_1=config.train.beta_1,
                                      beta_2=config.train.beta_2)
    if policy == "mixed_float16":  # float16 gradients underflow without loss scaling.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def _prepare_run_dir(run_dir, config: Config) -> Path:
    """Creates the run directory, or checks that an existing one was made by the same configuration."""
    run_dir = Path(run_dir)
    saved = run_dir / "config.json"
    if saved.is_file():
        previous = Config.from_json(saved).to_dict()
        if previous != config.to_dict():
            changed = sorted(f"{section}.{key}" for section, values in config.to_dict().items()
                             if isinstance(values, dict) for key in values
                             if previous.get(section, {}).get(key) != values[key])
            raise ConfigError(f"{run_dir} holds a run with a different configuration ({', '.join(changed) or 'name'});"
                              " choose another run directory to start a new run")
    run_dir.mkdir(parents=True, exist_ok=True)
    config.to_json(saved)
    return run_dir


def _fit(model, generator, optimizer, checkpointer, config: Config, run_dir: Path, train_data: TrainData,
         steps: int, verbose) -> RunState:
    """The loop shared by both phases: resume, fit with all callbacks, raise on divergence."""
    per_epoch = config.train.validate_every
    state = RunState(steps_per_epoch=per_epoch)
    restored = checkpointer.restore()
    start = 0
    if restored is not None:
        start = int(restored["step"])
        state.best_psnr_y = float(restored.get("best_psnr_y", -math.inf))
        state.best_step = int(restored.get("best_step", -1))
    state.step = start
    if start < steps:
        d = config.data
        # Folding the start step into the seed makes a resumed run deterministic without replaying the stream.
        dataset = data_lib.make_train_dataset(train_data.images, hr_size=d.hr_size, scale=d.scale,
                                              batch_size=d.batch_size, seed=config.train.seed + start,
                                              blur_sigma=d.blur_sigma)
        callbacks = [
            NonFiniteLossGuard(state),
            ValidationCallback(generator, train_data.valid_lr, train_data.valid_hr, d.scale, state, run_dir,
                               batch_size=d.batch_size),
            LearningRateLogger(optimizer),
            CheckpointCallback(checkpointer, state),
            ImageGridCallback(generator, train_data.valid_lr, train_data.valid_hr, d.scale, run_dir / "images",
                              config.train.images_every // per_epoch, state),
            CSVLog(run_dir / "log.csv", state),
            keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False, update_freq="epoch"),
        ]
        model.fit(dataset, epochs=steps // per_epoch, initial_epoch=start // per_epoch, steps_per_epoch=per_epoch,
                  shuffle=False,
                  callbacks=callbacks, verbose=verbose)
        if state.diverged:
            latest = checkpointer.latest()
            raise TrainingDivergedError(f"{state.diverged}; training stopped. The last good checkpoint is kept: "
                                        f"{latest if latest else 'none was written yet'} (run: {run_dir})")
    save_model_atomic(generator, run_dir / "generator_final.keras")
    if not (run_dir / "generator_best_psnr_y.keras").is_file():  # Zero-step phase: the final one is the best.
        save_model_atomic(generator, run_dir / "generator_best_psnr_y.keras")
    return state


def _result(run_dir, state: RunState, vgg_weights) -> RunResult:
    return RunResult(run_dir, state.step, state.best_psnr_y, state.best_step, run_dir / "generator_final.keras",
                     run_dir / "generator_best_psnr_y.keras", vgg_weights)


def _pretrain_schedule(config: Config, steps: int):
    t = config.train
    if t.pretrain_schedule == "constant" or steps == 0:
        return t.learning_rate
    # Cosine from learning_rate to decayed_learning_rate; the step count lives in the checkpointed optimizer, so a
    # resumed run continues on the same curve.
    return keras.optimizers.schedules.CosineDecay(t.learning_rate, steps, alpha=t.decayed_learning_rate / t.learning_rate)


def _gan_schedule(config: Config):
    t = config.train
    return keras.optimizers.schedules.PiecewiseConstantDecay([t.gan_decay_step],
                                                             [t.learning_rate, t.decayed_learning_rate])


def pretrain(config: Config, run_dir, train_data: TrainData | None = None, initial_generator=None, steps=None,
             verbose="auto", learning_rate=None) -> RunResult:
    """Phase 1 (SRResNet): the generator trained with a pixel loss (``train.pretrain_loss``) through ``fit``.

    Args:
        config: the run's configuration; ``train.pretrain_steps`` steps unless ``steps`` is given.
        run_dir: this phase's run directory (resumed if it holds checkpoints).
        train_data: prepared data; built from ``config`` if None.
        initial_generator: optional path of a ``.keras`` generator to start from (MSE-only fine-tuning).
        steps: overrides ``train.pretrain_steps``.
        learning_rate: a rate or schedule; default ``train.learning_rate`` with ``train.pretrain_schedule``.
    """
    steps = config.train.pretrain_steps if steps is None else steps
    run_dir = _prepare_run_dir(run_dir, config)
    train_data = train_data or prepare_data(config)
    policy = resolve_precision(config.train.mixed_precision)
    with _precision(policy), make_strategy(config.train.strategy).scope():
        keras.utils.set_random_seed(config.train.seed)  # Same initial weights for the same config.
        generator = build_generator(config)
        if initial_generator is not None:
            generator.set_weights(load_generator(initial_generator).get_weights())
        optimizer = _adam(config, _pretrain_schedule(config, steps) if learning_rate is None else learning_rate, policy)
        # fit() drives a functional twin sharing the generator's layers, so the generator itself stays uncompiled and
        # its saved .keras files hold the network alone (no optimizer, no loss to resolve when loading).
        trainer = keras.Model(generator.inputs, generator.outputs, name="srresnet_trainer")
        trainer.compile(optimizer=optimizer, loss=losses_lib.PIXEL_LOSSES[config.train.pretrain_loss])
        optimizer.build(trainer.trainable_variables)
        checkpointer = Checkpointer(run_dir / "checkpoints", {"generator": generator}, {"optimizer": optimizer})
        state = _fit(trainer, generator, optimizer, checkpointer, config, run_dir, train_data, steps, verbose)
    return _result(run_dir, state, None)


class SRGAN(keras.Model):
    """Generator and discriminator trained together; ``fit`` drives ``train_step``.

    Each step runs the generator once on the LR batch and the discriminator once on HR and once on SR, records both
    losses on two tapes, then updates the discriminator and then the generator (the generator's gradient uses the
    discriminator before its update, as in the SRGAN seeds).
    """

    def __init__(self, generator, discriminator, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        # Seeds the gradient penalty's interpolation weights, so a WGAN-GP run is as reproducible as the others.
        self.penalty_seed = keras.random.SeedGenerator(seed)
        names = ["g_loss", "content_loss", "adversarial_loss", "pixel_loss", "d_loss", "d_loss_gp", "d_real_logit",
                 "d_fake_logit"]
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def compile(self, g_optimizer, d_optimizer, generator_loss, adversarial, gradient_penalty_weight=0.0):
        super().compile()
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.generator_loss = generator_loss
        self.adversarial = adversarial
        self.gradient_penalty_weight = float(gradient_penalty_weight)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def train_step(self, batch):
        lr, hr = batch
        # Per-replica losses are means over the local batch; gradients are summed across replicas, so scale them.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            sr = self.generator(lr, training=True)
            real_logits = self.discriminator(hr, training=True)
            fake_logits = self.discriminator(sr, training=True)
            d_loss = self.adversarial.discriminator_loss(real_logits, fake_logits)
            penalty = tf.constant(0.0)
            if self.gradient_penalty_weight > 0:
                penalty = losses_lib.gradient_penalty(self.discriminator, hr, tf.stop_gradient(sr),
                                                      seed=self.penalty_seed)
            d_total = d_loss + self.gradient_penalty_weight * penalty
            g_terms = self.generator_loss(hr, sr, real_logits, fake_logits)
            d_scaled = self.d_optimizer.scale_loss(d_total / replicas)
            g_scaled = self.g_optimizer.scale_loss(g_terms["total"] / replicas)
        d_vars = self.discriminator.trainable_variables
        g_vars = self.generator.trainable_variables
        self.d_optimizer.apply(d_tape.gradient(d_scaled, d_vars), d_vars)
        self.g_optimizer.apply(g_tape.gradient(g_scaled, g_vars), g_vars)
        values = {"g_loss": g_terms["total"], "content_loss": g_terms["content"],
                  "adversarial_loss": g_terms["adversarial"], "pixel_loss": g_terms["pixel"], "d_loss": d_total,
                  "d_loss_gp": penalty, "d_real_logit": tf.reduce_mean(tf.cast(real_logits, tf.float32)),
                  "d_fake_logit": tf.reduce_mean(tf.cast(fake_logits, tf.float32))}
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}


_AUTO_VGG = {}


def resolve_vgg_weights(weights):
    """``"auto"``: the ImageNet weights when Keras has them cached or can download them, else random weights with a
    warning (demo runs offline; their VGG-based results are then labelled "random VGG"). Decided once per process.
    """
    if weights != "auto":
        return weights
    if "auto" not in _AUTO_VGG:
        from sr_lib.models import make_vgg_features

        try:
            make_vgg_features("vgg22", weights="imagenet")
            _AUTO_VGG["auto"] = "imagenet"
        except RuntimeError as error:
            warnings.warn(f"VGG19 ImageNet weights unavailable ({str(error).splitlines()[0]}); using RANDOM VGG "
                          "weights. VGG-based results of this run are labelled 'random VGG' and are not perceptual "
                          "results.", stacklevel=2)
            _AUTO_VGG["auto"] = None
    return _AUTO_VGG["auto"]


def make_generator_loss(config: Config):
    """The generator objective and adversarial loss named by ``config.loss``."""
    l = config.loss
    layer = None if l.content != "perpix" else "vgg54"
    content = losses_lib.make_content_loss(l.content, vgg_weights=resolve_vgg_weights(l.vgg_weights), vgg_layer=layer,
                                           vgg_weight=l.perpix_vgg_weight, rescale=l.vgg_rescale)
    adversarial = losses_lib.get_adversarial_loss(l.adversarial, label_smoothing=l.label_smoothing)
    objective = losses_lib.GeneratorLoss(content, adversarial, adversarial_weight=l.adversarial_weight,
                                         pixel_weight=l.pixel_weight)
    return objective, adversarial, content


def train_gan(config: Config, run_dir, pretrained_generator, train_data: TrainData | None = None,
              verbose="auto") -> RunResult:
    """Phase 2 (SRGAN): ``train.gan_steps`` steps from a pretrained generator (a ``.keras`` path, or None to start
    from scratch, which risks collapse and is not recommended). ``loss.adversarial == "none"`` trains the generator
    with the content loss alone (the SRResNet row of a comparison), through phase 1's path.
    """
    if config.loss.adversarial == "none":
        if config.loss.content != "mse":
            raise ConfigError("config key loss.adversarial: 'none' is only supported with loss.content='mse'")
        # Same steps and learning-rate schedule as the GAN variants, so the comparison differs only in the loss.
        return pretrain(config, run_dir, train_data, initial_generator=pretrained_generator,
                        steps=config.train.gan_steps, verbose=verbose, learning_rate=_gan_schedule(config))
    run_dir = _prepare_run_dir(run_dir, config)
    train_data = train_data or prepare_data(config)
    policy = resolve_precision(config.train.mixed_precision)
    t, m, d = config.train, config.model, config.data
    with _precision(policy), make_strategy(t.strategy).scope():
        # Same initial weights for the same config: every variant of a comparison starts from the same discriminator.
        keras.utils.set_random_seed(t.seed)
        generator = build_generator(config)
        if pretrained_generator is not None:
            generator.set_weights(load_generator(pretrained_generator).get_weights())
        discriminator = make_discriminator(hr_size=d.hr_size if m.discriminator_fixed_size else None,
                                           channels=m.discriminator_channels)
        g_optimizer = _adam(config, _gan_schedule(config), policy)
        d_optimizer = _adam(config, _gan_schedule(config), policy)
        objective, adversarial, content = make_generator_loss(config)
        gan = SRGAN(generator, discriminator, seed=t.seed)
        weight = config.loss.gradient_penalty_weight if adversarial.gradient_penalty_weight > 0 else 0.0
        gan.compile(g_optimizer, d_optimizer, objective, adversarial, gradient_penalty_weight=weight)
        g_optimizer.build(generator.trainable_variables)
        d_optimizer.build(discriminator.trainable_variables)
        checkpointer = Checkpointer(run_dir / "checkpoints", {"generator": generator, "discriminator": discriminator},
                                    {"g_optimizer": g_optimizer, "d_optimizer": d_optimizer})
        state = _fit(gan, generator, g_optimizer, checkpointer, config, run_dir, train_data, t.gan_steps, verbose)
    return _result(run_dir, state, getattr(content, "vgg_weights", None))


def read_log(run_dir) -> list[dict]:
    """The rows of a run's ``log.csv`` as dicts of floats (empty if none yet)."""
    path = Path(run_dir) / "log.csv"
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            rows.append({key: _to_float(value) for key, value in row.items()})
    return rows


def _to_float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
