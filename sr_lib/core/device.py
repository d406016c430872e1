"""The machine a run executes on: the CPU's name and bfloat16 instructions (read once from /proc/cpuinfo), and the
mixed-precision policy that "auto" means there."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

# ONEDNN_MAX_CPU_ISA values under which oneDNN still uses the CPU's bfloat16 instructions (oneDNN's names).
_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512",
              "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "ALL", "DEFAULT")


@functools.cache
def cpuinfo() -> str:
    """The text of /proc/cpuinfo ("" where there is none)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_bf16_flags() -> list:
    """The CPU's bfloat16 instruction sets (``amx_bf16``, ``avx512_bf16``) found in /proc/cpuinfo, if any, and none
    when ``ONEDNN_MAX_CPU_ISA`` keeps oneDNN below them (e.g. ``AVX2``, to compute as an AVX2-only CPU does)."""
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if limit and limit not in _BF16_ISAS:
        return []
    flags = set(next((line.split(":", 1)[1].split() for line in cpuinfo().splitlines() if line.startswith("flags")),
                     []))
    return [flag for flag in ("amx_bf16", "avx512_bf16") if flag in flags]


def onednn_isa_below_avx512() -> bool:
    """Whether oneDNN would run code below AVX-512 here: the CPU lacks AVX-512F, or ``ONEDNN_MAX_CPU_ISA`` limits it
    (e.g. ``AVX2``, to compute as an AVX2-only CPU does). Reads no TensorFlow, so it can run before TF starts."""
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if limit and not limit.startswith(("AVX512", "AVX10", "ALL", "DEFAULT")):
        return True
    return " avx512f" not in cpuinfo()


def cpu_name() -> str:
    """The CPU model and its bfloat16 instruction sets (they decide the mixed-precision speed-up on a CPU)."""
    name = next((line.split(":", 1)[1].strip() for line in cpuinfo().splitlines() if line.startswith("model name")),
                platform.processor() or platform.machine())
    return f"{name} ({os.cpu_count()} cores, {', '.join(cpu_bf16_flags()) or 'no bf16 instructions'})"


def resolve_precision(name: str) -> str:
    """'auto' -> mixed_float16 on a GPU, mixed_bfloat16 on a CPU with bfloat16 instructions, else float32."""
    if name == "none":
        return "float32"
    if name != "auto":
        return name
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_bf16_flags() else "float32"
