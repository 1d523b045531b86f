"""Small statistics helpers: percentiles of latency samples, medians of runs, peak memory."""

from __future__ import annotations

import resource
import statistics
from collections.abc import Sequence
from typing import Any


def latency_summary(samples_ns: Sequence[int]) -> dict[str, Any]:
    """p50/p90/p99/mean (microseconds) of per-call samples in nanoseconds."""
    ordered = sorted(samples_ns)
    n = len(ordered)

    def pct(q: float) -> float:
        if n == 1:
            return ordered[0] / 1e3
        position = q * (n - 1)
        low = int(position)
        high = min(low + 1, n - 1)
        return (ordered[low] + (ordered[high] - ordered[low]) * (position - low)) / 1e3

    return {"n": n, "p50_us": pct(0.50), "p90_us": pct(0.90), "p99_us": pct(0.99),
            "mean_us": sum(ordered) / n / 1e3, "max_us": ordered[-1] / 1e3}


def runs_summary(seconds: Sequence[float]) -> dict[str, Any]:
    """Median, min and max (seconds) of repeated runs."""
    return {"n": len(seconds), "median_s": statistics.median(seconds), "min_s": min(seconds),
            "max_s": max(seconds), "runs_s": list(seconds)}


def peak_rss_mib() -> float:
    """This process's peak resident set size so far.

    Linux's ``VmHWM`` (the high-water mark of this process image). ``getrusage``'s ``ru_maxrss``
    is the fallback elsewhere: on Linux a process started by fork + exec inherits its parent's
    peak there (the benchmark driver's, hundreds of MiB), so it cannot measure a fresh worker.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    """This process's resident set size now."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return peak_rss_mib()
