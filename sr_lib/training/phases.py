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
import csv
import io
import json
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from sr_lib import data as data_lib
from sr_lib import losses as losses_lib
from sr_lib.core import storage
from sr_lib.training.callbacks import (CheckpointCallback, CSVLog, ImageGridCallback, LearningRateLogger, NonFiniteLossGuard, RunState,
                              TrainingDivergedError, ValidationCallback, save_model_atomic)
from sr_lib.training.checkpoint import Checkpointer
from sr_lib.config import Config, ConfigError
from sr_lib.evaluation.evaluate import load_generator
from sr_lib.nets.models import make_discriminator, make_generator

__all__ = ["SRGAN", "TrainData", "RunResult", "TrainingDivergedError", "WorkerFailedError", "build_generator",
           "PixelTrainer", "make_strategy", "prepare_data", "pretrain", "train_gan", "read_log", "resolve_precision"]


class WorkerFailedError(RuntimeError):
    """A worker of a multi-worker job stopped answering; the job stopped and the latest checkpoint is kept."""


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


# ONEDNN_MAX_CPU_ISA values under which oneDNN still uses the CPU's bfloat16 instructions (oneDNN's names).
_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512",
              "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "ALL", "DEFAULT")


def cpu_bf16_flags() -> list:
    """The CPU's bfloat16 instruction sets (``amx_bf16``, ``avx512_bf16``) found in /proc/cpuinfo, if any, and none
    when ``ONEDNN_MAX_CPU_ISA`` keeps oneDNN below them (e.g. ``AVX2``, to compute as an AVX2-only CPU does)."""
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if limit and limit not in _BF16_ISAS:
        return []
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


_STRATEGIES = {}


def make_strategy(name: str):
    """The ``tf.distribute`` strategy named by ``train.strategy``, created once per process and then reused.

    "default": TensorFlow's default (one device). "mirrored": ``MirroredStrategy`` over every GPU of this machine, or,
    without GPUs, over its logical CPU devices (one, unless set up with ``tf.config.set_logical_device_configuration``).
    "multi_worker": ``MultiWorkerMirroredStrategy`` over the cluster in the ``TF_CONFIG`` environment variable; it must
    be created before TensorFlow runs anything in the process (``pretrain`` and ``train_gan`` create it first).

    Reuse matters: every new ``MirroredStrategy`` numbers its collective all-reduces from the same keys, so a second
    one in the same process (phase 2 after phase 1, or the next variant of a comparison) meets the first one's
    all-reduces in TensorFlow's collective runtime and fails at its first step ("Shape mismatch in the collective
    instance").
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name not in _STRATEGIES:
        if name == "mirrored":
            devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
            _STRATEGIES[name] = tf.distribute.MirroredStrategy([device.name for device in devices])
        elif name == "multi_worker":
            read_tf_config()  # A clear error for a missing or malformed TF_CONFIG, before TensorFlow reads it.
            try:
                _STRATEGIES[name] = tf.distribute.MultiWorkerMirroredStrategy()
            except RuntimeError as error:
                raise RuntimeError(f"train.strategy=multi_worker could not start: {error}. The strategy must be "
                                   "created before TensorFlow runs anything in the process (run it from the command "
                                   "line, or create it first with sr_lib.training.phases.make_strategy)") from error
        else:
            raise ConfigError(f"config key train.strategy: unknown strategy {name!r}")
    return _STRATEGIES[name]


def read_tf_config() -> dict:
    """The ``TF_CONFIG`` environment variable, checked: ``{"cluster": {"worker": ["host:port", ...]}, "task": {"type":
    "worker", "index": i}}`` (a "chief" job is optional). Raises ConfigError saying what is wrong."""
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", '
               '"index": 0}}\' on the first machine, "index": 1 on the second')
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        raise ConfigError(f"train.strategy=multi_worker needs the TF_CONFIG environment variable, e.g. {example}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({error}); expected e.g. {example}") from None
    cluster = value.get("cluster") if isinstance(value, dict) else None
    task = value.get("task") if isinstance(value, dict) else None
    if not isinstance(cluster, dict) or not cluster.get("worker") and not cluster.get("chief"):
        raise ConfigError(f"TF_CONFIG has no \"cluster\" with a \"worker\" list; expected e.g. {example}")
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) and ":" in a for a in addresses):
            raise ConfigError(f"TF_CONFIG cluster job {job!r} must be a list of \"host:port\" strings, "
                              f"got {addresses!r}")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise ConfigError(f"TF_CONFIG \"task\" must name a job of the cluster ({', '.join(cluster)}) as \"type\", "
                          f"got {task!r}")
    index = task.get("index", 0)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        raise ConfigError(f"TF_CONFIG task index {index!r} is not a position in cluster job {task['type']!r} "
                          f"({len(cluster[task['type']])} task(s))")
    return value


def is_chief(strategy) -> bool:
    """Whether this process writes the run directory: always, except on the non-chief workers of a multi-worker job."""
    return bool(strategy.extended.should_checkpoint)


def _multi_worker(strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _check_workers_agree(strategy, value: int, what: str):
    """Raises unless every worker of a multi-worker job holds the same ``value`` (e.g. the step it resumes from)."""
    if not _multi_worker(strategy):
        return
    local = tf.constant([float(value), float(value) ** 2], tf.float64)
    total = _all_reduce_sum(strategy, local).numpy()
    count = strategy.num_replicas_in_sync
    # Equal sums of the values and of their squares mean every worker holds the same value (Cauchy-Schwarz).
    if not np.allclose(total, [count * value, count * float(value) ** 2]):
        raise RuntimeError(f"the workers of this multi-worker job disagree about {what} (this worker: {value}, mean "
                           f"over workers: {total[0] / count:g}): every worker must read the chief's run directory, so "
                           "put it on storage all machines see (a gs:// bucket or a shared file system)")


def _barrier(strategy):
    """Waits until every worker of a multi-worker job gets here (e.g. until the chief has written the final model)."""
    if _multi_worker(strategy):
        _all_reduce_sum(strategy, tf.constant(1.0))


def _all_reduce_sum(strategy, value):
    """The sum over all replicas of ``value`` (each replica contributing it), in a ``tf.function`` as collectives
    should be."""
    return tf.function(lambda: strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(value)),
                                               axis=None))()


# What TensorFlow raises in the surviving workers' collectives when a peer dies (Unavailable: connection refused or
# the peer health check failed; FailedPrecondition: the peer restarted).
_WORKER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
                  tf.errors.AbortedError, tf.errors.FailedPreconditionError)


@contextlib.contextmanager
def _worker_failures(strategy, checkpointer, run_dir):
    """Turns a lost worker (a collective aborted by TensorFlow's peer health check, a broken connection) into a
    WorkerFailedError that says what happened and how to resume."""
    try:
        yield
    except _WORKER_ERRORS as error:
        if not _multi_worker(strategy):
            raise
        text = re.sub(r"\{\{[^}]*\}\}\s*", "", str(error.message))  # Drop "{{function_node ...}}" prefixes.
        first = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
        latest = checkpointer.latest()
        raise WorkerFailedError(
            f"a worker of the multi-worker job failed or became unreachable ({type(error).__name__}: {first[:300]}); "
            f"this worker stopped too. The latest checkpoint is kept ({latest if latest else 'none written yet'}, "
            f"run: {run_dir}): start the same command again on every machine to resume") from None


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
    chief = is_chief(strategy)
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
    strategy = make_strategy(config.train.strategy)  # First: a multi-worker strategy must precede any TF work.
    _check_batch(config, strategy)
    run_dir = _prepare_run_dir(run_dir, config, is_chief(strategy))
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


class _DistributedFit:
    """Base of the two trainers, for ``fit`` under any ``tf.distribute`` strategy. Under ``MultiWorkerMirroredStrategy``
    Keras 3.15's ``fit`` fails twice, and this works around both:

    - it begins by averaging a sample batch across the replicas for a symbolic build, even with nothing left to build,
      and that reduce fails ("Attempt to convert a value (PerReplica...)", keras-team/keras#20585). Here every layer
      and optimizer is built before ``fit`` and no loss or metric is compiled, so the build is skipped, as ``fit``
      does without a strategy;
    - it averages the logged values across workers with ``reduce("MEAN", axis=0)``, which fails on scalars, so there
      ``train_step`` returns each replica's mean with a leading axis of length 1; averaged over the replicas (equal
      shares), they give the mean over the global batch.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        return None

    def _logs(self, trackers) -> dict:
        logs = {tracker.name: tracker.result() for tracker in trackers}
        if _multi_worker(tf.distribute.get_strategy()):
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs


class PixelTrainer(_DistributedFit, keras.Model):
    """Phase 1: the generator trained with a pixel loss (a mean over the batch); ``fit`` drives ``train_step`` and logs
    ``loss``. Under a multi-replica strategy each replica's loss is divided by the number of replicas, so the summed
    gradients are those of the mean over the global batch."""

    def __init__(self, generator, pixel_loss, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.pixel_loss = pixel_loss
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def train_step(self, batch):
        lr, hr = batch
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            sr = self.generator(lr, training=True)
            loss = self.pixel_loss(hr, sr)
            scaled = self.optimizer.scale_loss(loss / replicas)
        variables = self.generator.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        self.loss_tracker.update_state(loss)
        return self._logs([self.loss_tracker])


class SRGAN(_DistributedFit, keras.Model):
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
        return self._logs(self.trackers.values())


_AUTO_VGG = {}


def resolve_vgg_weights(weights):
    """``"auto"``: the ImageNet weights when Keras has them cached or can download them, else random weights with a
    warning (demo runs offline; their VGG-based results are then labelled "random VGG"). Decided once per process.
    """
    if weights != "auto":
        return weights
    if "auto" not in _AUTO_VGG:
        from sr_lib.nets.models import make_vgg_features

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
    strategy = make_strategy(config.train.strategy)  # First: a multi-worker strategy must precede any TF work.
    _check_batch(config, strategy)
    run_dir = _prepare_run_dir(run_dir, config, is_chief(strategy))
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
        d_optimizer = _adam(config, _gan_schedule(config), policy)
        objective, adversarial, content = make_generator_loss(config)
        gan = SRGAN(generator, discriminator, seed=t.seed)
        weight = config.loss.gradient_penalty_weight if adversarial.gradient_penalty_weight > 0 else 0.0
        gan.compile(g_optimizer, d_optimizer, objective, adversarial, gradient_penalty_weight=weight)
        g_optimizer.build(generator.trainable_variables)
        d_optimizer.build(discriminator.trainable_variables)
        checkpointer = Checkpointer(run_dir / "checkpoints", {"generator": generator, "discriminator": discriminator},
                                    {"g_optimizer": g_optimizer, "d_optimizer": d_optimizer})
        state = _fit(gan, generator, g_optimizer, checkpointer, config, run_dir, train_data, t.gan_steps, verbose,
                     strategy)
    return _result(run_dir, state, getattr(content, "vgg_weights", None))


def read_log(run_dir) -> list[dict]:
    """The rows of a run's ``log.csv`` (local or remote) as dicts of floats (empty if none yet)."""
    path = storage.as_path(run_dir) / "log.csv"
    if not path.is_file():
        return []
    return [{key: _to_float(value) for key, value in row.items()}
            for row in csv.DictReader(io.StringIO(path.read_text(), newline=""))]


def _to_float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
