"""Tolerances for comparing results of different kernels, tilings, precisions or execution modes.

TensorFlow picks its kernels for the CPU it runs on (AVX2, AVX-512, AMX; oneDNN or Eigen, whose matrix products also
go through oneDNN's sgemm), and a tile is a different problem size from the whole image, so float sums are reordered
and the last bits differ. Bit-identity is therefore not promised; these bounds are what that arithmetic allows.
"""

import os
from pathlib import Path

import numpy as np

# A float32 difference from reordered sums is a few units in the last place of the largest partial sums: a few
# 1e-7 relative for these short chains of small convolutions. 1e-4 of the [0, 1] range is 1/40 of a grey level, so
# it still fails on any real error (a wrong pixel of context changes outputs by far more: see the seam tests).
FLOAT_ATOL = 1e-4
# Rounding to uint8: a value within FLOAT_ATOL of a .5 boundary may round either way, so at most one grey level, and
# only on a small fraction of pixels (the chance of landing that close is about 2 * 255 * FLOAT_ATOL per value).
MAX_GREY_LEVELS = 1
MAX_PIXEL_FRACTION = 1e-4
# bfloat16 keeps 8 significant bits: one rounding is at most 2^-8 of the value (half an ulp at the low end).
BF16_EPS = 2.0**-8


def uint8_difference(a, b) -> dict:
    """How two uint8 images ``(..., H, W, C)`` differ: the largest grey-level difference, and the number and fraction
    of pixels (any channel) that differ at all."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    pixels_differ = int(np.count_nonzero(diff.max(axis=-1)))
    pixels = int(np.prod(a.shape[:-1]))
    return {"max_grey_levels": int(diff.max(initial=0)), "pixels_differ": pixels_differ, "pixels": pixels,
            "fraction": pixels_differ / max(pixels, 1)}


def within_one_grey_level(difference: dict) -> bool:
    """At most one grey level, at no more than 1 pixel in 10^4 (a single pixel is allowed in any image)."""
    return (difference["max_grey_levels"] <= MAX_GREY_LEVELS
            and difference["pixels_differ"] <= max(1, int(MAX_PIXEL_FRACTION * difference["pixels"])))


def assert_uint8_close(actual, expected):
    difference = uint8_difference(actual, expected)
    assert within_one_grey_level(difference), difference


def skip_if_onednn_bf16_hidden():
    """Skips a test that computes in bfloat16 where ``ONEDNN_MAX_CPU_ISA`` hides a bf16 CPU's bf16 instructions from
    oneDNN while oneDNN's ops are on: TensorFlow reads the CPU's own flags and still hands bf16 ops to oneDNN, which then
    refuses them ("could not create a primitive descriptor"). An artifact of the simulation: a real AVX2-only CPU runs
    them in Eigen, as this machine does with TF_ENABLE_ONEDNN_OPTS=0."""
    import pytest

    from sr_lib.core.device import cpu_bf16_flags

    limited = os.environ.get("ONEDNN_MAX_CPU_ISA") and not cpu_bf16_flags()
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").lower() not in ("0", "false")
    if limited and onednn and "avx512_bf16" in Path("/proc/cpuinfo").read_text():
        pytest.skip("ONEDNN_MAX_CPU_ISA hides this CPU's bf16 from oneDNN but not from TensorFlow, whose bf16 oneDNN "
                    "ops then abort; run with TF_ENABLE_ONEDNN_OPTS=0 to test bf16 as an AVX2 CPU computes it")
