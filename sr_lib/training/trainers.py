"""The two ``keras.Model`` trainers that ``fit`` runs: ``PixelTrainer`` (phase 1, a pixel or content loss) and
``SRGAN`` (phase 2: discriminator update, then generator update, from one SR forward pass)."""

from __future__ import annotations

import keras
import tensorflow as tf

from sr_lib import losses as losses_lib
from sr_lib.training.distribute import _multi_worker


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

    def compile(self, g_optimizer, d_optimizer, generator_loss, adversarial, gradient_penalty_weight=0.0,
                discriminator_warmup_steps=0):
        super().compile()
        self.discriminator_warmup_steps = int(discriminator_warmup_steps)
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
            # The discriminator's step count is checkpointed with its optimizer, so a resumed warm-up goes on.
            adversarial_on = tf.cast(self.d_optimizer.iterations >= self.discriminator_warmup_steps, tf.float32)
            g_terms = self.generator_loss(hr, sr, real_logits, fake_logits, adversarial_on=adversarial_on)
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
