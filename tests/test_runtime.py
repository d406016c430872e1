"""runtime.describe: what the first output of every notebook states."""

from sr_lib import runtime


def test_describe_states_device_precision_and_random_vgg():
    described = runtime.describe(precision="none", vgg_weights=None)
    assert described.device.startswith("CPU: ")  # Tests hide the GPUs.
    assert described.precision == "float32"
    assert described.vgg_weights.startswith("random (weights=None)") and "NOT perceptual" in described.vgg_weights
    assert str(described).splitlines()[0] == f"device: {described.device}"


def test_describe_without_vgg_and_with_a_named_precision():
    described = runtime.describe(precision="mixed_bfloat16", vgg_weights="none")
    assert described.precision == "mixed_bfloat16" and described.vgg_weights == "not used"
    assert "cores" in runtime.cpu_name()
