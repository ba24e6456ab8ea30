"""Timing helper shared by the benchmarks (not part of the package)."""
from __future__ import annotations

import statistics
import time


def interleaved_medians(fns: dict, runs: int) -> dict[str, float]:
    """Median wall time of each function, running them in turn so that load affects all alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}
