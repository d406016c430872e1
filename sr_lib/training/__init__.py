"""Training: ``phases`` (pretraining through fit, SRGAN phase 2), ``callbacks``, ``checkpoint`` (atomic, resumable)
and ``experiment`` (the loss comparison and its report)."""
