"""In-process lookup metrics: counts, latencies, missing values, errors."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from typing import Any

import numpy as np

__all__ = ["LookupMetrics"]


class LookupMetrics:
    """Counters of one adapter's lookups, readable from Python with :meth:`snapshot`.

    Examples
    --------
    >>> m = LookupMetrics()
    >>> m.record("online", 0.001, values=8, missing=1)
    >>> m.snapshot()["lookups"]["online"]
    1
    """

    def __init__(self, window: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._window = window
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._lookups: dict[str, int] = defaultdict(int)
            self._latency: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=self._window))
            self._values: dict[str, int] = defaultdict(int)
            self._missing: dict[str, int] = defaultdict(int)
            self._missing_by_feature: dict[str, int] = defaultdict(int)
            self._values_by_feature: dict[str, int] = defaultdict(int)
            self._errors: dict[str, int] = defaultdict(int)
            self._degraded = 0

    def record(self, kind: str, seconds: float, *, values: int, missing: int,
               by_feature: dict[str, tuple[int, int]] | None = None) -> None:
        """Count one lookup of ``kind`` (``online``, ``batch``, ``point_in_time``)."""
        with self._lock:
            self._lookups[kind] += 1
            self._latency[kind].append(seconds)
            self._values[kind] += values
            self._missing[kind] += missing
            if by_feature:
                for name, (n_values, n_missing) in by_feature.items():
                    self._values_by_feature[name] += n_values
                    self._missing_by_feature[name] += n_missing

    def record_error(self, kind: str, error: BaseException, *, degraded: bool = False) -> None:
        """Count a failed lookup; ``degraded`` when it was answered with defaults."""
        with self._lock:
            self._errors[f"{kind}:{type(error).__name__}"] += 1
            if degraded:
                self._degraded += 1

    def snapshot(self) -> dict[str, Any]:
        """Counts, latency percentiles (seconds) and missing rates so far."""
        with self._lock:
            latency = {}
            for kind, samples in self._latency.items():
                if samples:
                    p50, p95, p99 = np.percentile(np.fromiter(samples, float), [50, 95, 99])
                    latency[kind] = {"p50": p50, "p95": p95, "p99": p99, "count": len(samples)}
            return {
                "lookups": dict(self._lookups),
                "latency_seconds": latency,
                "values": dict(self._values),
                "missing": dict(self._missing),
                "missing_rate_by_feature": {
                    name: self._missing_by_feature[name] / n
                    for name, n in self._values_by_feature.items() if n
                },
                "errors": dict(self._errors),
                "degraded_lookups": self._degraded,
            }
