"""What every other part stands on: ``storage`` (local paths and ``tf.io.gfile`` URLs, whole-file and whole-folder
writes, ``log.csv`` rows), ``ranges`` (the value-range conversions) and ``device`` (CPU features, precision).

Nothing is imported here: ``console`` reads ``device`` before TensorFlow may be imported (``ranges`` imports it)."""

__all__ = ["device", "ranges", "storage"]
