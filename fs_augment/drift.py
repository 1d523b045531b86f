"""Serving drift: rolling statistics of what a served augmenter looks up, against its training values.

A fitted :class:`~fs_augment.FeatureStoreAugmenter` records, with each feature's summary
(``feature_stats_``), the reference :func:`reference` computes from the values its training lookup
read (before the recipe's defaults):

* numbers (``int``, ``float``, ``bool``): ``bins``, the edges of up to :data:`BINS` bins at the
  training deciles (duplicates merged) and the share of training values in each bin
  (bin ``i`` holds the values ``x`` with ``edges[i-1] < x <= edges[i]``);
* text (``str``): ``categories``, the shares of the :data:`TOP` most frequent training values;
  the rest is one category, *other*.

A :class:`DriftMonitor` (``augmenter.monitor_drift()``; a model logged by
:func:`fs_augment.mlflow.log_model` turns it on when it loads) counts, per output column, in
bounded memory — a few integers per bin and category, however much traffic there is — the rows
it served, the missing values and the bin or category of every present value. From those it
reports, for the rolling window:

* ``missing_rate`` beside the training ``training_missing_rate``;
* ``psi``, the population stability index of a number's bins,
  ``sum((a - e) * ln(a / e))`` over the bins, with ``a`` the served and ``e`` the training share,
  each at least :data:`EPSILON` (an empty bin would make the logarithm infinite);
* ``category_shift``, the total variation distance of a text's category shares,
  ``sum(|a - e|) / 2`` over the categories and *other* (0: the same shares, 1: disjoint).

``psi`` is None for text, ``object`` features, a model fitted before the bins were recorded and
before any present value was served; ``category_shift`` likewise for everything but text.

**The window.** Counts are kept in a ring of ``sub_windows`` sub-windows of
``window / sub_windows`` seconds each; a value is counted in the current one, and a sub-window is
cleared when the ring comes round to it again. So a report covers between
``window - window / sub_windows`` and ``window`` seconds of traffic (by default the last 55 to
60 minutes), and traffic older than ``window`` is forgotten.

**The warning.** A monitor looks at its report at most every :data:`CHECK_EVERY` seconds while
it serves and logs a warning (logger ``fs_augment.drift``) when, over at least ``min_rows``
rows, a feature's PSI exceeds ``psi_threshold`` (0.2) or its missing rate moved from the
training one by more than ``missing_threshold`` (0.1); at most once every ``warn_every`` (60)
seconds. The clock is a parameter, so tests can move time.

A monitor is thread safe: one lock guards its counts, one vector of integers a sub-window. A
one-row update (a served request) only appends its row to a buffer; every :data:`ROW_BUFFER`
rows, and before a report or a move of the window, the buffered rows are counted as one batch.
A batch update is ``np.searchsorted`` and ``np.bincount`` a column.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["BINS", "EPSILON", "TOP", "DriftMonitor", "category_shift", "psi", "reference"]

logger = logging.getLogger(__name__)

#: Bins of a number: at the training deciles.
BINS = 10
#: Categories of a text kept by name; the rest is "other".
TOP = 20
#: The smallest share a bin counts with in the PSI (an empty bin would give an infinite logarithm).
EPSILON = 1e-4
#: Seconds between two looks at the report while serving (for the warning).
CHECK_EVERY = 5.0
#: One-row updates buffered before they are counted together.
ROW_BUFFER = 4096
_NUMBER_KINDS = ("int", "float", "bool")


def _floats(values: Any) -> np.ndarray:
    """``values`` as float64, missing values (None, NaN, NA) as NaN."""
    if isinstance(values, pd.api.extensions.ExtensionArray):
        return values.to_numpy(dtype="float64", na_value=np.nan)
    return np.asarray(values, dtype="float64")


def reference(values: Any, kind: str, *, bins: int = BINS, top: int = TOP) -> dict[str, Any]:
    """What drift is measured against: the bins of a number or the categories of a text, JSON-ready.

    Parameters
    ----------
    values : array-like
        A feature's training values as looked up (missing: None, NaN or NA).
    kind : str
        The feature's kind (``int``, ``float``, ``bool``, ``str``, ``object``).
    bins, top : int
        Bins of a number (at its quantiles), categories of a text kept by name.

    Returns
    -------
    dict
        ``{"bins": {"edges": [...], "shares": [...]}}``, ``{"categories": {value: share}}``,
        or ``{}`` (an ``object`` feature, or no value present).

    Examples
    --------
    >>> reference([1.0, 2.0, 3.0, 4.0, None], "float", bins=2)
    {'bins': {'edges': [2.5], 'shares': [0.5, 0.5]}}
    >>> reference(["KR", "KR", "US", None], "str")
    {'categories': {'KR': 0.6666666666666666, 'US': 0.3333333333333333}}
    """
    if kind in _NUMBER_KINDS:
        numbers = _floats(values)
        present = numbers[~np.isnan(numbers)]
        if not len(present):
            return {}
        edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
        return {"bins": {"edges": edges.tolist(), "shares": (counts / len(present)).tolist()}}
    if kind == "str":
        present = pd.Series(values, dtype=object).dropna()
        if not len(present):
            return {}
        shares = present.value_counts(normalize=True).head(top)
        return {"categories": {str(k): float(v) for k, v in shares.items()}}
    return {}


def psi(served: np.ndarray, expected: np.ndarray, epsilon: float = EPSILON) -> float:
    """Population stability index of served bin counts against expected shares.

    Examples
    --------
    >>> round(psi(np.array([50, 50]), np.array([0.5, 0.5])), 6)
    0.0
    >>> round(psi(np.array([90, 10]), np.array([0.5, 0.5])), 3)
    0.879
    """
    a = np.maximum(served / served.sum(), epsilon)
    e = np.maximum(expected, epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def category_shift(served: np.ndarray, expected: np.ndarray) -> float:
    """Total variation distance of served category counts from expected shares (the last: *other*).

    Examples
    --------
    >>> category_shift(np.array([1, 1, 0]), np.array([0.5, 0.5, 0.0]))
    0.0
    >>> category_shift(np.array([0, 0, 4]), np.array([0.5, 0.5, 0.0]))
    1.0
    """
    return float(np.abs(served / served.sum() - expected).sum() / 2)


class _Numbers:
    """The numeric columns' bins: padded edges and training shares (rows: columns)."""

    def __init__(self, refs: list[dict[str, Any] | None]) -> None:
        self.edges = [list(r["edges"]) if r else [] for r in refs]
        self.width = max((len(e) for e in self.edges), default=0) + 1
        self.expected = [np.asarray(r["shares"], dtype="float64") if r else None for r in refs]


class _Texts:
    """The text columns' categories: value → index (the last index of a column: other)."""

    def __init__(self, refs: list[dict[str, float] | None]) -> None:
        self.index = [{value: i for i, value in enumerate(r)} if r else {} for r in refs]
        self.lookup = [pd.Index(list(r) if r else [], dtype=object) for r in refs]
        self.width = max((len(i) for i in self.index), default=0) + 1
        self.expected: list[np.ndarray | None] = []
        for r in refs:
            if r:
                shares = list(r.values())
                self.expected.append(np.asarray([*shares, max(0.0, 1.0 - sum(shares))], dtype="float64"))
            else:
                self.expected.append(None)


class DriftMonitor:
    """Rolling served statistics of an augmenter's output columns, compared with its training values.

    Parameters
    ----------
    columns : sequence of str
        Output column names, in the order values are observed.
    kinds : mapping
        Column → kind (``int``, ``float``, ``bool``, ``str``, ``object``).
    stats : mapping
        Column → training summary (``feature_stats_``): ``missing_rate`` and, where recorded,
        ``bins`` (numbers) or ``categories`` (text; else its ``top_values``).
    window : float
        Seconds of traffic a report covers (at most).
    sub_windows : int
        Sub-windows of the ring (the window moves on by ``window / sub_windows``).
    clock : callable
        Seconds, monotonic (``time.monotonic``).
    psi_threshold, missing_threshold : float
        A warning is logged when a PSI exceeds the first or a missing rate moved by more than the second.
    min_rows : int
        Rows a window needs before it can warn.
    warn_every : float
        Seconds between two warnings, at least.

    Examples
    --------
    >>> stats = {"age": {"missing_rate": 0.0, "bins": {"edges": [30.0], "shares": [0.5, 0.5]}}}
    >>> monitor = DriftMonitor(["age"], {"age": "float"}, stats)
    >>> monitor.observe({"age": np.array([20.0, 25.0, 40.0, np.nan])}, 4)
    >>> report = monitor.report()["age"]
    >>> report["rows"], report["missing_rate"], round(report["psi"], 3)
    (4, 0.25, 0.116)
    """

    def __init__(self, columns: Sequence[str], kinds: Mapping[str, str], stats: Mapping[str, Mapping[str, Any]], *,
                 window: float = 3600.0, sub_windows: int = 12, clock: Callable[[], float] = time.monotonic,
                 psi_threshold: float = 0.2, missing_threshold: float = 0.1, min_rows: int = 100,
                 warn_every: float = 60.0) -> None:
        if not window > 0 or sub_windows < 1:
            raise ValueError(f"window must be > 0 and sub_windows >= 1, got window={window!r}, "
                             f"sub_windows={sub_windows!r}")
        self.columns = list(columns)
        self.window = float(window)
        self.sub_windows = int(sub_windows)
        self.clock = clock
        self.psi_threshold = psi_threshold
        self.missing_threshold = missing_threshold
        self.min_rows = min_rows
        self.warn_every = warn_every
        self._training_missing = [stats.get(c, {}).get("missing_rate") for c in self.columns]
        # every column is observed for missing values; numbers and texts also by bin or category
        self._number_at = [i for i, c in enumerate(self.columns) if kinds[c] in _NUMBER_KINDS]
        self._text_at = [i for i, c in enumerate(self.columns) if kinds[c] == "str"]
        kept = {*self._number_at, *self._text_at}
        self._other_at = [i for i in range(len(self.columns)) if i not in kept]
        self._numbers = _Numbers([stats.get(self.columns[i], {}).get("bins") for i in self._number_at])
        self._texts = _Texts([_categories(stats.get(self.columns[i], {})) for i in self._text_at])
        self._lock = threading.Lock()
        self._slot_seconds = self.window / self.sub_windows
        self._epoch = math.floor(clock() / self._slot_seconds)
        # one count vector a sub-window: [rows, missing of each column, bins of each number, categories of each text]
        k, wn, wt = len(self.columns), self._numbers.width, self._texts.width
        self._bins_at = 1 + k
        self._cats_at = self._bins_at + len(self._number_at) * wn
        self._size = self._cats_at + len(self._text_at) * wt
        self._counts = np.zeros((self.sub_windows, self._size), dtype=np.int64)
        self._epoch_ends = (self._epoch + 1) * self._slot_seconds
        #: one-row updates not yet counted in the current sub-window (counted together, as a batch)
        self._rows: list[Sequence[Any]] = []
        self._next_check = clock() + CHECK_EVERY
        self._last_warning = -math.inf
        self._metrics: Any = None

    def __repr__(self) -> str:
        return f"DriftMonitor({len(self.columns)} columns, window={self.window:g}s)"

    # --- recording ---------------------------------------------------------------------
    def attach(self, metrics: Any) -> None:
        """Publish the report under ``drift`` in the snapshots of ``metrics`` (a ``LookupMetrics``)."""
        if metrics is not self._metrics:
            metrics.attach_drift(self)
            self._metrics = metrics

    def _flush(self) -> None:  # under the lock
        if self._rows:
            rows, self._rows = self._rows, []
            columns = dict(zip(self.columns, zip(*rows, strict=True), strict=True))
            self._counts[self._epoch % self.sub_windows] += self._delta(columns, len(rows))

    def _slot(self, now: float) -> int:  # under the lock: the current sub-window, the ring moved on to it
        epoch = math.floor(now / self._slot_seconds)
        if epoch > self._epoch:
            self._flush()  # the buffer belongs to the sub-window it was counted in
            for step in range(self._epoch + 1, min(epoch, self._epoch + self.sub_windows) + 1):
                self._counts[step % self.sub_windows] = 0
            self._epoch = epoch
            self._epoch_ends = (epoch + 1) * self._slot_seconds
        return self._epoch % self.sub_windows

    def observe_row(self, values: Sequence[Any]) -> None:
        """Count one served row: its looked-up values (None or NaN: missing), in ``columns`` order.

        The row is kept as it is (not copied) until the next :data:`ROW_BUFFER` rows are
        counted together, or a report is made: do not change ``values`` afterwards.
        """
        now = self.clock()
        with self._lock:
            if now >= self._epoch_ends:
                self._slot(now)
            rows = self._rows
            rows.append(values)
            if len(rows) >= ROW_BUFFER:
                self._flush()
        if now >= self._next_check:
            self._maybe_check(now)

    def observe(self, columns: Mapping[str, Any], rows: int) -> None:
        """Count ``rows`` served rows: ``columns`` maps each output column to its looked-up values."""
        if not rows:
            return
        delta = self._delta(columns, rows)
        now = self.clock()
        with self._lock:
            self._counts[self._slot(now)] += delta
        if now >= self._next_check:
            self._maybe_check(now)

    def _delta(self, columns: Mapping[str, Any], rows: int) -> np.ndarray:
        """The counts of ``rows`` rows (``columns``: each output column's values), one vector."""
        numbers, texts = self._numbers, self._texts
        delta = np.zeros(self._size, dtype=np.int64)
        delta[0] = rows
        for j, at in enumerate(self._number_at):
            values = _floats(columns[self.columns[at]])
            present = values[~np.isnan(values)]
            delta[1 + at] = rows - len(present)
            start = self._bins_at + j * numbers.width
            delta[start:start + numbers.width] = np.bincount(np.searchsorted(numbers.edges[j], present, side="left"),
                                                             minlength=numbers.width)
        for j, at in enumerate(self._text_at):
            text = pd.Series(columns[self.columns[at]], dtype=object)
            absent = text.isna().to_numpy()
            delta[1 + at] = int(absent.sum())
            codes = texts.lookup[j].get_indexer(pd.Index(text[~absent], dtype=object))
            codes[codes < 0] = len(texts.index[j])
            start = self._cats_at + j * texts.width
            delta[start:start + texts.width] = np.bincount(codes, minlength=texts.width)
        for at in self._other_at:
            delta[1 + at] = int(pd.Series(columns[self.columns[at]], dtype=object).isna().sum())
        return delta

    # --- reading ---------------------------------------------------------------------------
    def report(self) -> dict[str, dict[str, Any]]:
        """The window's statistics per column, JSON-ready.

        Returns
        -------
        dict
            Column → ``{"rows", "missing_rate", "training_missing_rate", "psi", "category_shift"}``.
        """
        with self._lock:
            self._slot(self.clock())  # forget what the window left behind
            self._flush()
            total = self._counts.sum(axis=0)
        rows = int(total[0])
        missing = total[1:self._bins_at]
        bins = total[self._bins_at:self._cats_at].reshape(len(self._number_at), self._numbers.width)
        cats = total[self._cats_at:].reshape(len(self._text_at), self._texts.width)
        out: dict[str, dict[str, Any]] = {}
        for at, column in enumerate(self.columns):
            out[column] = {"rows": rows, "missing_rate": float(missing[at] / rows) if rows else 0.0,
                           "training_missing_rate": self._training_missing[at], "psi": None,
                           "category_shift": None}
        for j, at in enumerate(self._number_at):
            expected = self._numbers.expected[j]
            if expected is not None and bins[j, : len(expected)].sum():
                out[self.columns[at]]["psi"] = psi(bins[j, : len(expected)], expected)
        for j, at in enumerate(self._text_at):
            expected = self._texts.expected[j]
            if expected is not None and cats[j].sum():
                named = len(expected) - 1
                counts = np.append(cats[j, :named], cats[j, named:].sum())
                out[self.columns[at]]["category_shift"] = category_shift(counts, expected)
        return out

    def _maybe_check(self, now: float) -> None:
        with self._lock:
            if now < self._next_check:  # another thread looked meanwhile
                return
            if now - self._last_warning < self.warn_every:
                self._next_check = self._last_warning + self.warn_every
                return
            self._next_check = now + CHECK_EVERY
        shifted = self._shifted(self.report())
        if not shifted:
            return
        with self._lock:
            if now - self._last_warning < self.warn_every:  # another thread warned meanwhile
                return
            self._last_warning = now
        logger.warning("serving drift against the training values (this warning repeats at most every %gs): %s",
                       self.warn_every, "; ".join(shifted))

    def _shifted(self, report: Mapping[str, Mapping[str, Any]]) -> list[str]:
        shifted = []
        for column, stats in report.items():
            if stats["rows"] < self.min_rows:
                continue
            parts = []
            if stats["psi"] is not None and stats["psi"] > self.psi_threshold:
                parts.append(f"PSI {stats['psi']:.2f} > {self.psi_threshold:g}")
            training = stats["training_missing_rate"]
            if training is not None and abs(stats["missing_rate"] - training) > self.missing_threshold:
                parts.append(f"missing rate {stats['missing_rate']:.1%} (training {training:.1%})")
            if parts:
                shifted.append(f"{column}: {', '.join(parts)}")
        return shifted


def _categories(stats: Mapping[str, Any]) -> dict[str, float] | None:
    """The categories recorded at fit, else (an older fit) the summary's top values."""
    found = stats.get("categories", stats.get("top_values"))
    return dict(found) if found else None
