"""Training: phase 1 pretrains SRResNet with pixel MSE through ``fit``; phase 2 trains SRGAN, a ``keras.Model`` with
its own ``train_step`` (discriminator update, then generator update, from one SR forward pass).

Each phase writes a run directory::

    config.json  log.csv  tensorboard/  images/  checkpoints/  generator_best_psnr_y.keras  generator_final.keras

Calling a phase again on the same directory resumes from the latest checkpoint at the same step. Run directories may be
local or ``tf.io.gfile`` URLs (``gs://bucket/runs/...``).

Several devices or machines (``train.strategy``): "mirrored" trains one replica per GPU of this machine (or per logical
CPU device), "multi_worker" one per device of every machine listed in ``TF_CONFIG``. ``data.batch_size`` is the global
batch: each replica gets ``batch_size / replicas`` crops, computes its losses as means over its share and divides them
by the number of replicas, and the gradients are summed across replicas, so the update is the one a single device
makes on the whole batch. That holds exactly where no batch statistic enters; BatchNorm normalises with each replica's
own share unless ``model.sync_batch_norm`` is set, and the relativistic loss averages the logits of each replica's
share. Under "multi_worker" only the chief (``TF_CONFIG`` task "chief", else worker 0) writes the run directory; every
worker reads the chief's latest checkpoint when it starts, so the run directory must be on storage that every machine
sees (a ``gs://`` bucket or a shared file system).
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from sr_lib import data as data_lib
from sr_lib import losses as losses_lib
from sr_lib.core import storage
from sr_lib.config import Config, ConfigError
from sr_lib.core.device import resolve_precision
from sr_lib.nets.models import make_discriminator, make_generator
from sr_lib.nets.saving import load_generator, save_model_atomic
from sr_lib.nets.vgg import resolve_vgg_weights
from sr_lib.training.callbacks import (CheckpointCallback, CSVLog, ImageGridCallback, LearningRateLogger,
                                       NonFiniteLossGuard, RunState, TrainingDivergedError, ValidationCallback)
from sr_lib.training.checkpoint import Checkpointer
from sr_lib.training import distribute
from sr_lib.training.distribute import _barrier, _check_workers_agree, _worker_failures
from sr_lib.training.trainers import SRGAN, PixelTrainer

__all__ = ["TrainData", "RunResult", "build_generator", "make_generator_loss", "prepare_data", "pretrain", "train_gan",
           "read_log"]


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
                          global_residual=m.global_residual, residual_init_scale=m.residual_init_scale,
                          sync_batch_norm=m.sync_batch_norm)


def _initial_weights(path):
    """The weights of a ``.keras`` generator (local or remote), loaded outside any strategy scope."""
    if path is None:
        return None
    with storage.local_copy(path) as local:
        return load_generator(local).get_weights()


def _adam(config: Config, learning_rate, policy: str):
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate, beta_1=config.train.beta_1,
                                      beta_2=config.train.beta_2)
    if policy == "mixed_float16":  # float16 gradients underflow without loss scaling.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def _prepare_run_dir(run_dir, config: Config, chief: bool = True):
    """Creates the run directory, or checks that an existing one was made by the same configuration. Only the chief
    creates or writes it; other workers only check it."""
    run_dir = storage.as_path(run_dir)
    saved = run_dir / "config.json"
    with storage.gfile_errors(run_dir):  # An unknown URL scheme or an unreachable bucket: one line naming it.
        exists = saved.is_file()
    if exists:
        previous = Config.from_json(saved).to_dict()
        if previous != config.to_dict():
            changed = sorted(f"{section}.{key}" for section, values in config.to_dict().items()
                             if isinstance(values, dict) for key in values
                             if previous.get(section, {}).get(key) != values[key])
            raise ConfigError(f"{run_dir} holds a run with a different configuration ({', '.join(changed) or 'name'});"
                              " choose another run directory to start a new run")
    if chief:
        with storage.gfile_errors(run_dir):
            run_dir.mkdir(parents=True, exist_ok=True)
            config.to_json(saved)
    return run_dir


def _fit(model, generator, optimizer, checkpointer, config: Config, run_dir, train_data: TrainData,
         steps: int, verbose, strategy) -> RunState:
    """The loop shared by both phases: resume, fit with all callbacks, raise on divergence. Only the chief validates
    and writes; every worker trains."""
    chief = distribute.is_chief(strategy)
    per_epoch = config.train.validate_every
    state = RunState(steps_per_epoch=per_epoch)
    restored = checkpointer.restore()
    start = 0
    if restored is not None:
        start = int(restored["step"])
        state.best_psnr_y = float(restored.get("best_psnr_y", -math.inf))
        state.best_step = int(restored.get("best_step", -1))
    state.step = start
    with _worker_failures(strategy, checkpointer, run_dir):
        _check_workers_agree(strategy, start, "the step to resume from")
    if start < steps:
        d = config.data
        # Folding the start step into the seed makes a resumed run deterministic without replaying the stream.
        dataset = data_lib.make_train_dataset(train_data.images, hr_size=d.hr_size, scale=d.scale,
                                              batch_size=d.batch_size, seed=config.train.seed + start,
                                              blur_sigma=d.blur_sigma)
        # The stream is generated, not read from files: with several workers, each keeps its share of every batch.
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        dataset = dataset.with_options(options)
        callbacks = [NonFiniteLossGuard(state)]
        if chief:
            callbacks += [
                ValidationCallback(generator, train_data.valid_lr, train_data.valid_hr, d.scale, state, run_dir,
                                   batch_size=d.batch_size),
                LearningRateLogger(optimizer),
                CheckpointCallback(checkpointer, state),
                ImageGridCallback(generator, train_data.valid_lr, train_data.valid_hr, d.scale, run_dir / "images",
                                  config.train.images_every // per_epoch, state),
                CSVLog(run_dir / "log.csv", state),
                keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False, update_freq="epoch"),
            ]
        with _worker_failures(strategy, checkpointer, run_dir):
            history = model.fit(dataset, epochs=steps // per_epoch, initial_epoch=start // per_epoch,
                                steps_per_epoch=per_epoch, shuffle=False, callbacks=callbacks, verbose=verbose)
        if not chief and not state.diverged:  # The chief's step comes from its validation callback.
            state.step = start + len(history.epoch) * per_epoch
        if state.diverged:
            latest = checkpointer.latest()
            raise TrainingDivergedError(f"{state.diverged}; training stopped. The last good checkpoint is kept: "
                                        f"{latest if latest else 'none was written yet'} (run: {run_dir})")
    # A finished run that is run again has nothing new to save (and a remote one would re-upload every model).
    if chief and (start < steps or not (run_dir / "generator_final.keras").is_file()):
        save_model_atomic(generator, run_dir / "generator_final.keras")
        if not (run_dir / "generator_best_psnr_y.keras").is_file():  # Zero-step phase: the final one is the best.
            save_model_atomic(generator, run_dir / "generator_best_psnr_y.keras")
    with _worker_failures(strategy, checkpointer, run_dir):
        _barrier(strategy)  # The other workers go on (e.g. to load this phase's generator) once the chief has saved.
    if not chief:  # The best step is the chief's, found by its validation and stored in its last checkpoint.
        latest = checkpointer.latest()
        if latest is not None:
            saved = json.loads((latest / "state.json").read_text())
            state.best_psnr_y = float(saved.get("best_psnr_y", -math.inf))
            state.best_step = int(saved.get("best_step", -1))
    return state


def _check_batch(config: Config, strategy):
    replicas = strategy.num_replicas_in_sync
    if config.data.batch_size % replicas:
        raise ConfigError(f"config key data.batch_size: {config.data.batch_size} is the global batch, split evenly "
                          f"across the {replicas} replicas of train.strategy={config.train.strategy}; use a multiple "
                          f"of {replicas}")


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


def _gan_schedule(config: Config, rate=None):
    """Phase 2's rate: ``rate`` (default train.learning_rate), divided at train.gan_decay_step by the ratio
    learning_rate / decayed_learning_rate."""
    t = config.train
    rate = t.learning_rate if rate is None else rate
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        [t.gan_decay_step], [rate, rate * t.decayed_learning_rate / t.learning_rate])


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
    strategy = distribute.make_strategy(config.train.strategy)  # First: a multi-worker strategy must precede any TF work.
    _check_batch(config, strategy)
    run_dir = _prepare_run_dir(run_dir, config, distribute.is_chief(strategy))
    train_data = train_data or prepare_data(config)
    policy = resolve_precision(config.train.mixed_precision)
    initial_weights = _initial_weights(initial_generator)
    with _precision(policy), strategy.scope():
        keras.utils.set_random_seed(config.train.seed)  # Same initial weights for the same config.
        generator = build_generator(config)
        if initial_weights is not None:
            generator.set_weights(initial_weights)
        optimizer = _adam(config, _pretrain_schedule(config, steps) if learning_rate is None else learning_rate, policy)
        # fit() drives a trainer holding the generator, so the generator itself stays uncompiled and its saved .keras
        # files hold the network alone (no optimizer, no loss to resolve when loading).
        trainer = PixelTrainer(generator, losses_lib.PIXEL_LOSSES[config.train.pretrain_loss])
        trainer.compile(optimizer=optimizer)
        optimizer.build(generator.trainable_variables)
        checkpointer = Checkpointer(run_dir / "checkpoints", {"generator": generator}, {"optimizer": optimizer})
        state = _fit(trainer, generator, optimizer, checkpointer, config, run_dir, train_data, steps, verbose,
                     strategy)
    return _result(run_dir, state, None)


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
        if config.loss.content not in losses_lib.PIXEL_LOSSES:
            raise ConfigError("config key loss.adversarial: 'none' is only supported with a pixel content loss "
                              f"(loss.content: {', '.join(losses_lib.PIXEL_LOSSES)})")
        # Same steps and learning-rate schedule as the GAN variants, so the comparison differs only in the loss.
        config = config.replace(**{"train.pretrain_loss": config.loss.content})
        return pretrain(config, run_dir, train_data, initial_generator=pretrained_generator,
                        steps=config.train.gan_steps, verbose=verbose, learning_rate=_gan_schedule(config))
    strategy = distribute.make_strategy(config.train.strategy)  # First: a multi-worker strategy must precede any TF work.
    _check_batch(config, strategy)
    run_dir = _prepare_run_dir(run_dir, config, distribute.is_chief(strategy))
    train_data = train_data or prepare_data(config)
    policy = resolve_precision(config.train.mixed_precision)
    t, m, d = config.train, config.model, config.data
    initial_weights = _initial_weights(pretrained_generator)
    # Resolved before seeding: deciding "auto" may build (and fail to download) a VGG19, which draws random numbers;
    # after the seed, random VGG weights would then depend on whether an earlier call had already decided it.
    resolve_vgg_weights(config.loss.vgg_weights)
    with _precision(policy), strategy.scope():
        # Same initial weights for the same config: every variant of a comparison starts from the same discriminator.
        keras.utils.set_random_seed(t.seed)
        generator = build_generator(config)
        if initial_weights is not None:
            generator.set_weights(initial_weights)
        discriminator = make_discriminator(hr_size=d.hr_size if m.discriminator_fixed_size else None,
                                           channels=m.discriminator_channels, sync_batch_norm=m.sync_batch_norm)
        g_optimizer = _adam(config, _gan_schedule(config), policy)
        d_optimizer = _adam(config, _gan_schedule(config, t.discriminator_learning_rate), policy)
        objective, adversarial, content = make_generator_loss(config)
        gan = SRGAN(generator, discriminator, seed=t.seed)
        weight = config.loss.gradient_penalty_weight if adversarial.gradient_penalty_weight > 0 else 0.0
        gan.compile(g_optimizer, d_optimizer, objective, adversarial, gradient_penalty_weight=weight,
                    discriminator_warmup_steps=t.discriminator_warmup_steps)
        g_optimizer.build(generator.trainable_variables)
        d_optimizer.build(discriminator.trainable_variables)
        checkpointer = Checkpointer(run_dir / "checkpoints", {"generator": generator, "discriminator": discriminator},
                                    {"g_optimizer": g_optimizer, "d_optimizer": d_optimizer})
        state = _fit(gan, generator, g_optimizer, checkpointer, config, run_dir, train_data, t.gan_steps, verbose,
                     strategy)
    return _result(run_dir, state, getattr(content, "vgg_weights", None))


def read_log(run_dir) -> list[dict]:
    """The rows of a run's ``log.csv`` (local or remote) as dicts of floats (empty if none yet)."""
    return storage.read_log(storage.as_path(run_dir) / "log.csv")
