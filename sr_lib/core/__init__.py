"""What every other part stands on: ``storage`` (local paths and ``tf.io.gfile`` URLs, whole-file and whole-folder
writes, ``log.csv`` rows), ``ranges`` (the value-range conversions) and ``device`` (CPU features, precision)."""

from sr_lib.core import device, ranges, storage

__all__ = ["device", "ranges", "storage"]
