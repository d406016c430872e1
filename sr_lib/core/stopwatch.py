"""Where a long command's time goes: named stages, summed, for the line `compare` prints at its end."""

from __future__ import annotations

import contextlib
import time


class Stopwatch:
    """Sums wall-clock seconds per named stage; a stage may be entered many times (e.g. once per variant)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._started = time.perf_counter()

    @contextlib.contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def total(self) -> float:
        return time.perf_counter() - self._started

    def summary(self) -> str:
        """One line: each stage's seconds and share of the total, in the order they first ran."""
        total = self.total()
        parts = [f"{name} {seconds:.0f} s ({100 * seconds / total:.0f}%)" for name, seconds in self.seconds.items()]
        return f"time: {', '.join(parts)}; total {total:.0f} s"
