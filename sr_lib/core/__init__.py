"""What every other part stands on: ``storage`` (local paths and ``tf.io.gfile`` URLs, whole-file writes) and
``ranges`` (the value-range conversions)."""
