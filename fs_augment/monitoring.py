"""Lookup metrics, kept in process and optionally pushed to a monitoring endpoint.

Two small pieces:

* :class:`LookupMetrics` counts one adapter's lookups: how many of each kind
  (``online``, ``batch``, ``point_in_time``), their latency (p50/p95/p99 over
  a rolling window), values read and missing, errors by kind, lookups answered
  with defaults because the store was down (``on_store_error: default``), the
  in-process cache's hits and misses, missing and invalid values per
  feature, and stale answers: entities whose values a namespace's ``max_age``
  turned missing because their event time was too old (and, among them, event
  times that could not be read). Read it from Python with ``adapter.metrics.snapshot()``.
* :class:`MetricsPusher` (``enable_monitoring: true`` with a
  ``monitoring_endpoint``) POSTs JSON snapshots from a background daemon
  thread: every ``interval`` seconds, or sooner once ``every_lookups``
  lookups were recorded. Snapshots wait in a bounded queue (the oldest is
  dropped, and counted, when the endpoint cannot keep up); a slow or failing
  endpoint never slows or fails a lookup, because lookups only bump counters.
  ``close()`` flushes once more, within a bound.

Nothing here ever sees a password: a payload carries the environment's name,
the store's :meth:`~fs_augment.stores.base.OnlineStore.describe` text (host
and database), counts and timings, never feature values.

The payload (``schema`` ``fs_augment.metrics/1``)::

    {"schema": "fs_augment.metrics/1",
     "source": {"env": "prod", "store": "redis 10.0.0.5:6379/0", "host": "web-1",
                "pid": 4242, "version": "0.1.0"},
     "sent_at": "2024-05-01T12:00:10.120Z",
     "dropped_snapshots": 0,
     "snapshots": [{"sequence": 3, "time": "2024-05-01T12:00:10.118Z",
                    "lookups": {"online": 1200}, "latency_seconds": {"online": {
                        "p50": 0.0004, "p95": 0.0009, "p99": 0.002, "count": 1200}},
                    ...}]}
"""

from __future__ import annotations

import atexit
import base64
import json
import logging
import os
import socket
import threading
import time
import weakref
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import numpy as np

from fs_augment.config import mask_url

__all__ = ["PAYLOAD_SCHEMA", "LookupMetrics", "MetricsPusher"]

logger = logging.getLogger(__name__)

#: The ``schema`` field of every pushed payload.
PAYLOAD_SCHEMA = "fs_augment.metrics/1"
#: Defaults of :class:`MetricsPusher` (read when a pusher is built).
PUSH_INTERVAL = 10.0
PUSH_EVERY_LOOKUPS = 1000
MAX_QUEUE = 100
POST_TIMEOUT = 2.0
FLUSH_TIMEOUT = 2.0
#: A failing endpoint is reported at WARNING at most this often (seconds); DEBUG otherwise.
WARN_EVERY = 60.0
#: Served one-row lookups queued (without the lock) before they are counted together.
QUEUED = 1024


class LookupMetrics:
    """Counters of one adapter's lookups, readable from Python with :meth:`snapshot`.

    Thread safe; recording a lookup takes a lock and bumps a few counters.

    Parameters
    ----------
    window : int
        Latency samples kept per lookup kind for the percentiles.
    per_feature : bool
        Keep missing and invalid counts per feature (:meth:`record_features`);
        ``fs_augment.connect`` turns it on with ``enable_monitoring``.

    Examples
    --------
    >>> m = LookupMetrics()
    >>> m.record("online", 0.001, values=8, missing=1)
    >>> m.record_features(4, ["user_demographics:age"], {"user_demographics__age": 0.25})
    >>> snap = m.snapshot()
    >>> snap["lookups"]["online"], snap["missing_rate"]["online"]
    (1, 0.125)
    >>> snap["missing_rate_by_feature"]
    {'user_demographics:age': 0.25}
    """

    def __init__(self, window: int = 10_000, *, per_feature: bool = True) -> None:
        self._lock = threading.Lock()
        self._window = window
        self.per_feature = per_feature
        self._cache: Any = None
        self._wake: threading.Event | None = None
        self._wake_every = 0
        self._drift: weakref.WeakSet[Any] = weakref.WeakSet()
        #: one-row lookups recorded but not yet counted: (kind, seconds, values, missing)
        self._queued: deque[tuple[str, float, int, int]] = deque()
        self.reset()

    def reset(self) -> None:
        """Forget every count (the cache's counters too, from now on)."""
        with self._lock:
            self._queued.clear()
            self._lookups: dict[str, int] = defaultdict(int)
            self._latency: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=self._window))
            self._values: dict[str, int] = defaultdict(int)
            self._missing: dict[str, int] = defaultdict(int)
            self._missing_by_feature: dict[str, int] = defaultdict(int)
            self._values_by_feature: dict[str, int] = defaultdict(int)
            self._invalid_by_feature: dict[str, int] = defaultdict(int)
            self._errors: dict[str, int] = defaultdict(int)
            self._stale: dict[str, int] = defaultdict(int)
            self._stale_by_namespace: dict[str, int] = defaultdict(int)
            self._unreadable_times: dict[str, int] = defaultdict(int)
            self._degraded = 0
            self._pending = 0
            self._cache_base = self._cache_counts()

    # --- recording ---------------------------------------------------------------
    def record(self, kind: str, seconds: float, *, values: int, missing: int,
               by_feature: dict[str, tuple[int, int]] | None = None,
               stale: Mapping[str, int] | None = None,
               unreadable_event_times: Mapping[str, int] | None = None) -> None:
        """Count one lookup of ``kind`` (``online``, ``batch``, ``point_in_time``).

        Parameters
        ----------
        kind : str
        seconds : float
            How long the lookup took.
        values, missing : int
            Values read, and how many of them were absent.
        by_feature : dict, optional
            ``"namespace:feature"`` → ``(values, missing)``.
        stale : mapping, optional
            Namespace → entities whose values were older than the namespace's
            ``max_age`` (answered as missing; their values count in ``missing``).
        unreadable_event_times : mapping, optional
            Namespace → entities whose event time could not be read (also stale).
        """
        with self._lock:
            self._queued.append((kind, seconds, values, missing))
            self._count_queued()  # what every lookup counts, counted in one place
            if by_feature:
                for name, (n_values, n_missing) in by_feature.items():
                    self._values_by_feature[name] += n_values
                    self._missing_by_feature[name] += n_missing
            if stale:
                for namespace, count in stale.items():
                    self._stale[kind] += count
                    self._stale_by_namespace[namespace] += count
            if unreadable_event_times:
                for namespace, count in unreadable_event_times.items():
                    self._unreadable_times[namespace] += count
            self._tick()

    def record_lookup(self, kind: str, seconds: float, values: int, missing: int) -> None:
        """:meth:`record` of a lookup with nothing stale (the served one-row path), without taking the lock.

        The lookup is queued (a deque's append is thread safe) and counted with the next
        :data:`QUEUED` lookups, or when a snapshot is taken.
        """
        queued = self._queued
        queued.append((kind, seconds, values, missing))
        if len(queued) >= QUEUED or self._wake is not None:
            with self._lock:
                self._count_queued()
                self._tick()

    def _count_queued(self) -> None:  # under the lock
        queued = self._queued
        while queued:  # popleft: a lookup queued meanwhile is counted now or by the next call
            kind, seconds, values, missing = queued.popleft()
            self._lookups[kind] += 1
            self._latency[kind].append(seconds)
            self._values[kind] += values
            self._missing[kind] += missing

    def record_features(self, rows: int, names: Sequence[str], missing_rate: Mapping[str, float],
                        invalid: Mapping[str, int] | None = None) -> None:
        """Count one transform's missing (and invalid) values per feature.

        Parameters
        ----------
        rows : int
            Rows of the transformed frame.
        names : sequence of str
            ``"namespace:feature"`` of each feature, in the order of
            ``missing_rate`` (the augmenter's output names may differ).
        missing_rate : mapping
            Fraction of ``rows`` missing per feature (before defaults), in
            ``names`` order.
        invalid : mapping, optional
            Values that did not fit the feature's pinned dtype, in ``names`` order.
        """
        if not self.per_feature or not rows:
            return
        invalid_counts = list(invalid.values()) if invalid is not None else [0] * len(names)
        with self._lock:
            for name, rate, bad in zip(names, missing_rate.values(), invalid_counts, strict=True):
                self._values_by_feature[name] += rows
                self._missing_by_feature[name] += round(rate * rows)
                self._invalid_by_feature[name] += bad

    def record_error(self, kind: str, error: BaseException, *, degraded: bool = False) -> None:
        """Count a failed lookup; ``degraded`` when it was answered with defaults."""
        with self._lock:
            self._errors[f"{kind}:{type(error).__name__}"] += 1
            if degraded:
                self._degraded += 1
            self._tick()

    def _tick(self) -> None:  # under the lock
        self._pending += 1
        if self._wake is not None and self._pending >= self._wake_every:
            self._pending = 0
            self._wake.set()

    # --- wiring ------------------------------------------------------------------
    def attach_cache(self, cache: Any) -> None:
        """Report the hits and misses of a cache with ``hits`` and ``misses`` counters."""
        with self._lock:
            self._cache = cache
            self._cache_base = self._cache_counts()

    def attach_drift(self, monitor: Any) -> None:
        """Report ``monitor`` (a :class:`~fs_augment.drift.DriftMonitor`) under ``drift``; held weakly."""
        with self._lock:
            self._drift.add(monitor)

    def notify(self, every: int, event: threading.Event) -> None:
        """Set ``event`` each time ``every`` more lookups (or errors) were recorded."""
        with self._lock:
            self._wake_every = max(1, every)
            self._wake = event
            self._pending = 0

    def _cache_counts(self) -> tuple[int, int]:
        cache = self._cache
        return (cache.hits, cache.misses) if cache is not None else (0, 0)

    # --- reading -------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Counts, latency percentiles (seconds), missing rates and cache hits so far.

        Returns
        -------
        dict
            Plain JSON-ready data: ``lookups``, ``latency_seconds`` (per kind:
            ``p50``, ``p95``, ``p99``, ``count``), ``values``, ``missing``,
            ``missing_rate`` (per kind), ``missing_rate_by_feature``,
            ``invalid_by_feature``, ``stale`` (per kind) and
            ``stale_by_namespace`` (entities answered as missing because older
            than ``max_age``), ``unreadable_event_times`` (per namespace),
            ``errors`` (``"kind:ErrorClass"`` → count),
            ``degraded_lookups``, ``cache`` (``hits``, ``misses``,
            ``hit_rate`` or None before any cache read) and ``drift`` (output column →
            ``rows``, ``missing_rate``, ``training_missing_rate``, ``psi``,
            ``category_shift``: see :mod:`fs_augment.drift`; empty unless a served model watches drift).
        """
        with self._lock:
            self._count_queued()
            monitors = list(self._drift)
            latency = {}
            for kind, samples in self._latency.items():
                if samples:
                    p50, p95, p99 = np.percentile(np.fromiter(samples, float), [50, 95, 99])
                    latency[kind] = {"p50": float(p50), "p95": float(p95), "p99": float(p99),
                                     "count": len(samples)}
            hits, misses = (now - base for now, base in zip(self._cache_counts(), self._cache_base, strict=True))
            snapshot = {
                "lookups": dict(self._lookups),
                "latency_seconds": latency,
                "values": dict(self._values),
                "missing": dict(self._missing),
                "missing_rate": {kind: self._missing[kind] / n for kind, n in self._values.items() if n},
                "missing_rate_by_feature": {
                    name: self._missing_by_feature[name] / n
                    for name, n in self._values_by_feature.items() if n
                },
                "invalid_by_feature": {name: n for name, n in self._invalid_by_feature.items() if n},
                "stale": dict(self._stale),
                "stale_by_namespace": dict(self._stale_by_namespace),
                "unreadable_event_times": dict(self._unreadable_times),
                "errors": dict(self._errors),
                "degraded_lookups": self._degraded,
                "cache": {"hits": hits, "misses": misses,
                          "hit_rate": hits / (hits + misses) if hits + misses else None},
            }
        drift: dict[str, Any] = {}
        for monitor in monitors:  # outside the lock: a monitor takes its own
            drift.update(monitor.report())
        snapshot["drift"] = drift
        return snapshot


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class MetricsPusher:
    """POST snapshots of a :class:`LookupMetrics` as JSON from a background daemon thread.

    The thread wakes every ``interval`` seconds, or once ``every_lookups``
    lookups were recorded, takes a snapshot, queues it and POSTs everything
    queued in one request. A snapshot that could not be sent stays queued;
    the queue keeps at most ``max_queue`` snapshots (the oldest are dropped and
    counted in ``dropped_snapshots``). Lookups never wait for the thread.

    Parameters
    ----------
    metrics : LookupMetrics
    endpoint : str
        ``http://`` or ``https://`` URL. User info (``https://user:token@host/...``)
        is sent as HTTP Basic authentication, never logged.
    source : mapping, optional
        Labels sent with every payload (``env``, ``store``); never secrets.
    interval : float
        Seconds between pushes.
    every_lookups : int
        Push sooner once this many lookups were recorded.
    max_queue : int
        Snapshots kept while the endpoint cannot be reached.
    timeout : float
        Timeout of one POST, seconds.
    flush_timeout : float
        Bound of :meth:`close`, seconds.

    Raises
    ------
    ValueError
        ``endpoint`` is not an http(s) URL.

    Examples
    --------
    >>> pusher = MetricsPusher(LookupMetrics(), "http://svc:token@127.0.0.1:9/push?key=k", interval=60)
    >>> pusher
    MetricsPusher('http://svc:***@127.0.0.1:9/push?***', interval=60)
    >>> pusher.close()  # pushes once more (here: fails quietly), waiting at most about flush_timeout
    """

    def __init__(
        self,
        metrics: LookupMetrics,
        endpoint: str,
        *,
        source: Mapping[str, Any] | None = None,
        interval: float | None = None,
        every_lookups: int | None = None,
        max_queue: int | None = None,
        timeout: float | None = None,
        flush_timeout: float | None = None,
    ) -> None:
        parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http:// or https:// URL, got {mask_url(str(endpoint))!r}")
        self.metrics = metrics
        self.endpoint = endpoint
        self.interval = PUSH_INTERVAL if interval is None else interval
        self.timeout = POST_TIMEOUT if timeout is None else timeout
        self.flush_timeout = FLUSH_TIMEOUT if flush_timeout is None else flush_timeout
        self.max_queue = MAX_QUEUE if max_queue is None else max(1, max_queue)
        self.source = {"host": socket.gethostname(), "pid": os.getpid(), "version": _version(), **(source or {})}
        self.sent_snapshots = 0
        self.failed_posts = 0
        self.dropped_snapshots = 0
        self._queue: deque[dict[str, Any]] = deque()
        self._sequence = 0
        self._last_warning = -float("inf")
        self._wake = threading.Event()
        self._stop = threading.Event()
        metrics.notify(PUSH_EVERY_LOOKUPS if every_lookups is None else every_lookups, self._wake)
        from urllib.request import Request, build_opener  # here: http.client is loaded only to push

        self._opener = build_opener()
        self._request = Request
        self._headers = {"Content-Type": "application/json"}
        self._url = endpoint
        self._secrets = [text for text in (parts.password, parts.query) if text]
        if parts.username is not None:  # urllib does not read credentials from a URL: send them as a header
            netloc = parts.netloc.rpartition("@")[2]
            self._url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode("ascii")
        self._thread = threading.Thread(target=self._run, name=f"fs_augment-metrics-{mask_url(endpoint)}",
                                        daemon=True)
        self._thread.start()
        atexit.register(self.close)  # a job that ends without close() still pushes its last counts

    def __repr__(self) -> str:
        return f"MetricsPusher({mask_url(self.endpoint)!r}, interval={self.interval:g})"

    # --- the thread ------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            self._push(self.timeout)
        self._push(min(self.timeout, self.flush_timeout))  # the final flush of close()

    def _push(self, timeout: float) -> None:
        try:
            self._enqueue(self.metrics.snapshot())
            batch = list(self._queue)
            body = json.dumps({
                "schema": PAYLOAD_SCHEMA,
                "source": self.source,
                "sent_at": _utc_now(),
                "dropped_snapshots": self.dropped_snapshots,
                "snapshots": batch,
            }, default=str).encode("utf-8")
            request = self._request(self._url, data=body, method="POST", headers=self._headers)
            with self._opener.open(request, timeout=timeout) as response:
                response.read(1024)
        except Exception as exc:  # never let the thread die: a failing endpoint is only reported
            self.failed_posts += 1
            self._report(exc)
            return
        for _ in batch:  # sent: only this thread takes items off the queue
            self._queue.popleft()
        self.sent_snapshots += len(batch)
        logger.debug("pushed %d metrics snapshot(s) to %s", len(batch), mask_url(self.endpoint))

    def _enqueue(self, snapshot: dict[str, Any]) -> None:
        self._sequence += 1
        snapshot = {"sequence": self._sequence, "time": _utc_now(), **snapshot}
        while len(self._queue) >= self.max_queue:
            self._queue.popleft()
            self.dropped_snapshots += 1
        self._queue.append(snapshot)

    def _report(self, exc: BaseException) -> None:
        code = getattr(exc, "code", None)  # urllib.error.HTTPError
        if isinstance(code, int):
            reason = f"HTTP {code}"
        else:
            reason = f"{type(exc).__name__}: {getattr(exc, 'reason', None) or exc}"
            for secret in (self.endpoint, *self._secrets):
                reason = reason.replace(secret, "***")
        now = time.monotonic()
        level = logging.WARNING if now - self._last_warning >= WARN_EVERY else logging.DEBUG
        if level == logging.WARNING:
            self._last_warning = now
        logger.log(level, "monitoring endpoint %s did not take %d snapshot(s) (%s); lookups are not affected, "
                   "snapshots stay queued (at most %d)", mask_url(self.endpoint), len(self._queue), reason,
                   self.max_queue)

    # --- lifecycle ---------------------------------------------------------------------
    def flush(self) -> None:
        """Ask the thread to push now (returns at once)."""
        self._wake.set()

    def close(self) -> None:
        """Stop the thread after one last push; waits at most about ``flush_timeout`` seconds."""
        if self._stop.is_set():
            return
        self._stop.set()
        atexit.unregister(self.close)
        self._wake.set()
        self._thread.join(self.flush_timeout + 0.5)
        if self._thread.is_alive():
            logger.debug("monitoring flush to %s did not finish in %.1f s; dropped",
                         mask_url(self.endpoint), self.flush_timeout)

    @property
    def queued(self) -> int:
        """Snapshots waiting to be sent."""
        return len(self._queue)


def _version() -> str:
    from fs_augment import __version__

    return __version__
