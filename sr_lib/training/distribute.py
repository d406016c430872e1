"""Several devices or machines: the ``tf.distribute`` strategy named by ``train.strategy``, ``TF_CONFIG`` checks,
the chief, barriers and what a lost worker becomes (see :mod:`sr_lib.training.phases` for how batches are shared)."""

from __future__ import annotations

import contextlib
import json
import os
import re

import numpy as np
import tensorflow as tf

from sr_lib.config import ConfigError


class WorkerFailedError(RuntimeError):
    """A worker of a multi-worker job stopped answering; the job stopped and the latest checkpoint is kept."""


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
