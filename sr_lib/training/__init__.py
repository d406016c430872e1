"""Training: ``phases`` (pretraining through fit, SRGAN phase 2), ``trainers`` (the two keras.Model trainers),
``distribute`` (strategies, the chief), ``callbacks``, ``checkpoint`` (atomic, resumable) and ``experiment`` (the loss
comparison and its report)."""

from sr_lib.training import callbacks, checkpoint, distribute, experiment, phases, trainers
from sr_lib.training.experiment import run_comparison
from sr_lib.training.phases import RunResult, TrainData, prepare_data, pretrain, read_log, train_gan
from sr_lib.training.trainers import SRGAN, PixelTrainer

__all__ = ["callbacks", "checkpoint", "distribute", "experiment", "phases", "trainers", "PixelTrainer", "RunResult",
           "SRGAN", "TrainData", "prepare_data", "pretrain", "read_log", "run_comparison", "train_gan"]
