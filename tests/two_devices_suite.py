"""Multi-device training on two logical CPU devices, the way a user with two GPUs runs it (``train.strategy=mirrored``).

Not collected by the normal test run: TensorFlow's logical devices can only be configured before its runtime starts, so
tests/test_distributed.py runs this module in a fresh process (``python -m pytest tests/two_devices_suite.py``).
"""

import math

import tensorflow as tf

_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sr_lib.training import distribute
from sr_lib.training import phases as training  # noqa: E402
from sr_lib.training.checkpoint import Checkpointer  # noqa: E402
from sr_lib.config import ConfigError, get_preset  # noqa: E402
from sr_lib.nets.models import make_discriminator, make_generator  # noqa: E402

MIRRORED = {"train.strategy": "mirrored"}


@pytest.fixture(scope="module")
def train_data():
    return training.prepare_data(get_preset("ci"))


def test_mirrored_uses_both_devices():
    strategy = distribute.make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    assert distribute.make_strategy("mirrored") is strategy  # One strategy per process (see make_strategy).


def test_both_phases_and_adversarial_variants_train(tmp_path, train_data):
    # Phase 2 after phase 1 in one process is what used to fail at the first GAN step ("Shape mismatch in the
    # collective instance" at adam_2/CollectiveReduceV2): each phase made its own MirroredStrategy.
    config = get_preset("ci").replace(**MIRRORED)
    phase1 = training.pretrain(config, tmp_path / "pretrain", train_data, verbose=0)
    assert phase1.step == 4 and [row["step"] for row in training.read_log(tmp_path / "pretrain")] == [2, 4]
    for adversarial in ("modified", "wasserstein_gp", "relativistic"):
        variant = config.replace(**{"loss.content": "mse", "loss.adversarial": adversarial})
        result = training.train_gan(variant, tmp_path / adversarial, phase1.final_path, train_data, verbose=0)
        log = training.read_log(tmp_path / adversarial)
        assert result.step == 4 and [row["step"] for row in log] == [2, 4], adversarial
        assert all(math.isfinite(row[key]) for row in log for key in ("g_loss", "d_loss", "psnr_y")), adversarial
        if adversarial == "wasserstein_gp":
            assert all(row["d_loss_gp"] > 0 for row in log)
        assert Checkpointer(tmp_path / adversarial / "checkpoints", {}, {}).latest().name == "ckpt-000000004"
        assert (tmp_path / adversarial / "generator_final.keras").is_file()


def _checkpoint_arrays(folder):
    """Every weight (from the .weights.h5 files) and optimizer variable (from the .npz files) of a checkpoint."""
    arrays = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".h5":
            with h5py.File(path) as handle:
                handle.visititems(lambda name, item: arrays.__setitem__(f"{path.name}/{name}", item[()])
                                  if isinstance(item, h5py.Dataset) else None)
        elif path.suffix == ".npz":
            with np.load(path) as stored:
                arrays.update({f"{path.name}/{key}": stored[key] for key in stored.files})
    return arrays


def _assert_close(single, mirrored, prefix, rtol):
    """|mirrored - single| <= rtol * |single| + rtol * 1e-3 * max|single|, over every array of one file."""
    keys = [key for key in single if key.startswith(prefix)]
    assert keys, prefix
    scale = max(float(np.max(np.abs(single[key]))) for key in keys if single[key].size)
    for key in keys:
        np.testing.assert_allclose(mirrored[key], single[key], rtol=rtol, atol=rtol * 1e-3 * scale, err_msg=key)


def test_one_two_replica_step_equals_one_single_device_step(tmp_path, train_data):
    """Global batch 4: one device takes all 4 crops, two replicas 2 each. No batch statistic may differ, so the
    generator has no BatchNorm and the discriminator's BatchNorm is synchronized (statistics over all 4 crops).

    Tolerance: relative 1e-4 (float32 sums in another order) on the generator's weights, both optimizers' Adam moments
    and the logged losses. Adam's moments after one step are 0.1 g and 0.001 g^2, so they compare the all-reduced
    gradients themselves: a missing or doubled 1/replicas scaling would be off by a factor 2. The discriminator's
    weights are compared through those moments only: the convs that BatchNorm follows get a zero gradient up to
    rounding noise, and Adam's first step turns any noise into a full +-learning_rate step.
    """
    config = get_preset("ci").replace(**{"model.batch_norm": False, "model.sync_batch_norm": True,
                                         "loss.content": "mse", "loss.adversarial": "modified", "data.batch_size": 4,
                                         "train.pretrain_steps": 1, "train.gan_steps": 1, "train.validate_every": 1,
                                         "train.images_every": 1})
    for phase in ("pretrain", "gan"):
        results, logs = {}, {}
        for strategy in ("default", "mirrored"):
            run = tmp_path / f"{phase}_{strategy}"
            variant = config.replace(**{"train.strategy": strategy})
            if phase == "pretrain":
                training.pretrain(variant, run, train_data, verbose=0)
            else:
                training.train_gan(variant, run, None, train_data, verbose=0)
            results[strategy] = _checkpoint_arrays(run / "checkpoints" / "ckpt-000000001")
            logs[strategy] = training.read_log(run)[0]
        single, mirrored = results["default"], results["mirrored"]
        assert single.keys() == mirrored.keys()
        _assert_close(single, mirrored, "generator.weights.h5", rtol=1e-4)
        # The discriminator's moments get 1e-3: synchronized BatchNorm's variance, E[x^2] - E[x]^2 summed in another
        # order, is the least precise step (measured: 5e-4 at worst).
        for optimizer in ("g_optimizer", "d_optimizer") if phase == "gan" else ("optimizer",):
            _assert_close(single, mirrored, f"{optimizer}.npz", rtol=1e-3 if optimizer == "d_optimizer" else 1e-4)
        moved = max(float(np.max(np.abs(value))) for key, value in single.items()
                    if key.startswith(("optimizer.npz", "g_optimizer.npz")) and value.ndim)
        assert moved > 0  # The moments are not all zero: the comparison means something.
        for key in ("loss", "g_loss", "d_loss", "content_loss", "d_real_logit"):
            if key in logs["default"]:
                assert logs["mirrored"][key] == pytest.approx(logs["default"][key], rel=1e-4), (phase, key)


def test_resume_after_an_interruption_continues_at_the_same_step(tmp_path, train_data):
    config = get_preset("ci").replace(**{**MIRRORED, "loss.content": "mse", "loss.adversarial": "wasserstein_gp"})
    run = tmp_path / "gan"
    first = training.train_gan(config.replace(**{"train.gan_steps": 2}), run, None, train_data, verbose=0)
    assert first.step == 2
    interrupted = keras.saving.load_model(first.final_path)  # Before the resumed run writes its own final model.
    (run / "config.json").write_text(config.to_json())  # The 4-step run, interrupted after its step-2 checkpoint.
    second = training.train_gan(config, run, None, train_data, verbose=0)
    assert second.step == 4 and [row["step"] for row in training.read_log(run)] == [2, 4]
    with np.load(run / "checkpoints" / "ckpt-000000004" / "g_optimizer.npz") as stored:
        assert int(stored["v00000"]) == 4  # The optimizer's step counter continued from 2.
    # The resumed run started from the step-2 weights: restoring that checkpoint gives the interrupted run's generator.
    generator, discriminator = make_generator(num_blocks=1, channels=8, scale=4), make_discriminator(32, channels=4)
    Checkpointer(run / "checkpoints", {"generator": generator, "discriminator": discriminator}, {}).restore(
        run / "checkpoints" / "ckpt-000000002")
    for a, b in zip(generator.get_weights(), interrupted.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_global_batch_must_split_evenly_across_replicas(tmp_path, train_data):
    config = get_preset("ci").replace(**{**MIRRORED, "data.batch_size": 3})
    with pytest.raises(ConfigError, match=r"data\.batch_size.*2 replicas"):
        training.pretrain(config, tmp_path / "run", train_data, verbose=0)


@pytest.mark.parametrize("synchronized", [False, True])
def test_batch_norm_statistics_per_replica_unless_synchronized(synchronized):
    """What the README says about BatchNorm: without sync, each replica normalises with its own crops' statistics and
    keeps its own moving averages; with sync, every replica uses (and keeps) those of the global batch."""
    strategy = distribute.make_strategy("mirrored")
    with strategy.scope():
        generator = make_generator(num_blocks=1, channels=8, scale=4, sync_batch_norm=synchronized)
    images = tf.random.stateless_uniform([4, 8, 8, 3], seed=[1, 2])
    shares = strategy.experimental_distribute_values_from_function(
        lambda context: images[2 * context.replica_id_in_sync_group:2 * context.replica_id_in_sync_group + 2])
    strategy.run(tf.function(lambda batch: generator(batch, training=True)), args=(shares,))
    moving_mean = next(v for v in generator.non_trainable_variables if v.path.endswith("moving_mean"))
    first, second = (copy.numpy() for copy in moving_mean.value.values)
    assert np.allclose(first, second) == synchronized
