"""What a ``python -m sr_lib ...`` command prints: its own output, not TensorFlow's.

TensorFlow's C++ start-up notices (oneDNN, CUDA drivers, CPU instructions) are written to file descriptor 2 before
absl logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` does not silence them (TensorFlow 2.21). :func:`start`
therefore points descriptor 2, *before TensorFlow is imported*, at a small filter process that drops those notices
(absl's info/warning lines, the CPU-instructions line, CUDA start-up errors) and passes every other line through, so a
real C++ error still shows, even when the process dies from it. Python's ``sys.stderr`` (errors, warnings, progress
bars) keeps a direct copy of the original descriptor. ``--verbose`` keeps everything. Python warnings print as
``warning: <message>``, without the source line.

It runs from ``sr_lib/__init__.py`` only when the package is started with ``python -m`` (``sys.argv[0] == "-m"``
while Python locates the module), so importing sr_lib from a notebook, a test or a script changes nothing.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings

_started = False
# Reads the C++ log lines on stdin, writes the ones that are not start-up chatter to stdout (the terminal). A separate
# process, so that it outlives a crash of the command and still passes on the reason.
# TensorFlow's start-up chatter: absl's pre-initialisation notice, info/warning lines, the CPU-instructions line and
# CUDA start-up errors on a machine without a GPU (also stripped from executed notebooks by notebook_runner).
CHATTER = (r"WARNING: All log messages before absl::InitializeLog|[IW][0-9]{4} [0-9:. ]+ +[0-9]+ [^ ]+:[0-9]+\]"
           r"|To enable the following instructions|E[0-9]{4} [0-9:. ]+ +[0-9]+ [^ ]*cuda[^ ]*:[0-9]+\]")
_FILTER = rf"""
import re, sys
chatter = re.compile({CHATTER!r}.encode())
for line in sys.stdin.buffer:
    if not chatter.match(line):
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
"""


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    stream = file if file is not None else sys.stderr
    try:
        stream.write(f"warning: {message}\n")
    except (OSError, ValueError):  # A closed stream: nowhere to warn.
        pass


def upscale_engine(argv, environ) -> dict:
    """The environment `upscale` adds before TensorFlow starts (oneDNN can only be switched then): Eigen's kernels
    (``TF_ENABLE_ONEDNN_OPTS=0``) where oneDNN would run below AVX-512, since there oneDNN's convolutions run this
    network at half Eigen's speed (``benchmarks/inference.py``: 0.127 against 0.262 HR MP/s under
    ``ONEDNN_MAX_CPU_ISA=AVX2``; 0.109 against 0.246 on an AVX2-only CPU). Nothing for other commands, on AVX-512 CPUs
    (oneDNN is faster there, and has bf16), or when the user set ``TF_ENABLE_ONEDNN_OPTS``."""
    from sr_lib.core.device import onednn_isa_below_avx512  # No TensorFlow: it must not start yet.

    if argv[:1] != ["upscale"] or "TF_ENABLE_ONEDNN_OPTS" in environ or not onednn_isa_below_avx512():
        return {}
    return {"TF_ENABLE_ONEDNN_OPTS": "0"}


def start(argv) -> None:
    """Set up the command line's output for ``argv`` (the arguments after ``-m sr_lib``)."""
    global _started
    if _started:
        return
    _started = True
    verbose = "--verbose" in argv
    os.environ.update(upscale_engine(argv, os.environ))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")
    warnings.showwarning = _one_line_warning
    if verbose:
        return
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    try:
        sys.stderr.flush()
        terminal = os.dup(2)
        log_filter = subprocess.Popen([sys.executable, "-S", "-E", "-c", _FILTER], stdin=subprocess.PIPE,
                                      stdout=terminal, stderr=subprocess.DEVNULL)
        os.dup2(log_filter.stdin.fileno(), 2)
        log_filter.stdin.close()  # Descriptor 2 is now the pipe's only write end: the filter ends when we do.
        sys.stderr = os.fdopen(terminal, "w", buffering=1, encoding=sys.stderr.encoding or "utf-8",
                               errors="backslashreplace")
    except OSError:  # No descriptor 2 to redirect (e.g. a detached process): nothing to hide.
        pass
