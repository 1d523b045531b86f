"""No leakage from backfills: ``created_timestamp`` and ``as_of`` in offline lookups (DuckDB and BigQuery).

A feature row is used for a spine row only if it happened (``event_timestamp``)
and was known (``created_timestamp``, null meaning known at its event time) at or
before the spine row's time and, with ``as_of``, was created at or before
``as_of``. Without spine times, ``latest_as_of`` gives each entity its latest row
created by ``as_of``. Both offline stores are checked against a brute-force
pure-Python reference of these rules, with the existing ones kept: ties to the
last row in file order, equal times inclusive, null event times ignored, naive
times UTC, ``max_age`` inclusive.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fs_augment.recipe import FeatureGroup
from fs_augment.stores.bigquery import BigQueryOfflineStore
from fs_augment.stores.offline import ParquetOfflineStore
from tests.support.bqemulator import BigQueryEmulator

SECOND = 10**9
PROJECT = "test-project"

# A row: (entity, event time in ns or None, created time in ns or None, n, s), in file order.
Row = tuple[Any, int | None, int | None, int | None, str | None]


def missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def plain(values: Any) -> list[Any]:
    return [None if missing(v) else (v.item() if hasattr(v, "item") else v) for v in values]


def created(row: Row) -> int:
    """When a row (with an event time) became known: its created time, else its event time."""
    assert row[1] is not None
    return row[2] if row[2] is not None else row[1]


def latest(candidates: list[tuple[int, Row]], now: int, max_age: int | None) -> tuple[Any, Any]:
    """The (n, s) of the latest candidate (ties: last in file order), missing if none or older than max_age."""
    if not candidates:
        return None, None
    _, best = max(candidates, key=lambda item: (item[1][1], item[0]))
    if max_age is not None and now - best[1] > max_age:
        return None, None
    return best[3], best[4]


def brute_force(rows: Sequence[Row], key: str | None, time: int | None, max_age: int | None,
                as_of: int | None = None) -> tuple[Any, Any]:
    """The (n, s) a spine row (key, time) must get: the latest row known by then (and by as_of), or missing."""
    if key is None or time is None:
        return None, None
    known = [(order, r) for order, r in enumerate(rows)
             if str(r[0]) == key and r[1] is not None and r[1] <= time and (r[2] is None or r[2] <= time)
             and (as_of is None or created(r) <= as_of)]
    return latest(known, time, max_age)


def brute_force_latest(rows: Sequence[Row], key: str | None, as_of: int, max_age: int | None) -> tuple[Any, Any]:
    """The (n, s) an entity must get from ``latest_as_of``: its latest row created by as_of, whatever its time."""
    if key is None:
        return None, None
    return latest([(order, r) for order, r in enumerate(rows)
                   if str(r[0]) == key and r[1] is not None and created(r) <= as_of], as_of, max_age)


def stamp(ns: int | None) -> pd.Timestamp | None:
    return None if ns is None else pd.Timestamp(ns, tz="UTC")


def frame_of(rows: Sequence[Row], tz: str | None) -> pd.DataFrame:
    """The rows in the offline layout; times naive (read as UTC) when ``tz`` is None."""
    frame = pd.DataFrame({"user_id": pd.Series([r[0] for r in rows], dtype=object)})
    for i, column in ((1, "event_timestamp"), (2, "created_timestamp")):
        times = pd.Series(pd.to_datetime(pd.array([r[i] for r in rows], dtype="Int64"), unit="ns", utc=True),
                          dtype="datetime64[ns, UTC]")
        frame[column] = times.dt.tz_localize(None) if tz is None else times.dt.tz_convert(tz)
    frame["n"] = pd.array([r[3] for r in rows], dtype="Int64")
    frame["s"] = pd.Series([r[4] for r in rows], dtype=object)
    return frame


def spine_of(rows: Sequence[tuple[str | None, int | None]]) -> pd.DataFrame:
    spine = pd.DataFrame({"user_id": pd.Series([r[0] for r in rows], dtype=object)})
    spine["ts"] = pd.to_datetime(pd.array([r[1] for r in rows], dtype="Int64"), unit="ns",
                                 utc=True).astype("datetime64[ns, UTC]")
    return spine


def check(store: Any, rows: Sequence[Row], spine_rows: Sequence[tuple[str | None, int | None]],
          max_age: int | None, as_of: int | None = None) -> dict[str, Any]:
    group = FeatureGroup("user_features", ("n", "s"), "user_id", max_age=max_age and max_age / 1e9)
    got = store.point_in_time(spine_of(spine_rows), [group], "ts", as_of=stamp(as_of))
    expected = [brute_force(rows, key, time, max_age, as_of) for key, time in spine_rows]
    assert plain(got["user_features:n"]) == [e[0] for e in expected]
    assert plain(got["user_features:s"]) == [e[1] for e in expected]
    return got


def check_latest(store: Any, rows: Sequence[Row], keys: Sequence[str | None], max_age: int | None,
                 as_of: int) -> dict[str, Any]:
    group = FeatureGroup("user_features", ("n", "s"), "user_id", max_age=max_age and max_age / 1e9)
    got = store.latest_as_of(pd.DataFrame({"user_id": pd.Series(list(keys), dtype=object)}), [group], stamp(as_of))
    expected = [brute_force_latest(rows, key, as_of, max_age) for key in keys]
    assert plain(got["user_features:n"]) == [e[0] for e in expected]
    assert plain(got["user_features:s"]) == [e[1] for e in expected]
    return got


# --- strategies ----------------------------------------------------------------------

EVENT = st.one_of(st.builds(lambda s, ns: s * SECOND + ns, st.integers(0, 6), st.sampled_from([0, 0, 1])), st.none())
SPINE_TIME = st.one_of(st.builds(lambda s, ns: s * SECOND + ns, st.integers(2, 12), st.sampled_from([0, 0, -1, 1])),
                       st.none(), st.just(-SECOND))


@st.composite
def rows_with_backfills(draw: st.DrawFn, unique_times: bool) -> list[Row]:
    """Rows whose created time is null, at the event time, later (a backfill) or, rarely, earlier."""
    out: list[Row] = []
    seen: set[tuple[str, int]] = set()
    for _ in range(draw(st.integers(3, 10))):
        entity = draw(st.sampled_from(["u1", "u2"]))
        event = draw(EVENT)
        if unique_times and event is not None and (entity, event) in seen:
            continue  # BigQuery has no file order to break ties by
        if event is not None:
            seen.add((entity, event))
        lag = draw(st.sampled_from([3 * SECOND, SECOND, None, 0, 1, 6 * SECOND, -SECOND]))
        base = event if event is not None else draw(st.integers(0, 6)) * SECOND
        created = None if lag is None else base + lag
        n = draw(st.one_of(st.integers(-5, 5), st.none()))
        s = draw(st.one_of(st.none(), st.sampled_from(["a", "b"])))
        out.append((entity, event, created, n, s))
    return out


SPINE = st.lists(st.tuples(st.one_of(st.sampled_from(["u1", "u2", "u9"]), st.none()), SPINE_TIME),
                 min_size=4, max_size=15)
MAX_AGE = st.sampled_from([None, 2 * SECOND, 2 * SECOND + 1])
#: Around the rows' event (0-6 s) and created (up to 12 s) times, to the nanosecond either side.
TIME = st.builds(lambda s, ns: s * SECOND + ns, st.integers(-1, 12), st.sampled_from([0, 0, -1, 1]))
AS_OF = st.one_of(st.none(), TIME)
KEYS = st.lists(st.one_of(st.sampled_from(["u1", "u2", "u9"]), st.none()), min_size=3, max_size=8)


# --- DuckDB ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def parquet_store() -> Iterator[ParquetOfflineStore]:
    with tempfile.TemporaryDirectory() as tmp:
        store = ParquetOfflineStore(tmp)
        yield store
        store.close()


@settings(max_examples=150, deadline=None)
@given(rows=rows_with_backfills(unique_times=False), spine=SPINE, max_age=MAX_AGE,
       tz=st.sampled_from([None, "UTC", "Asia/Seoul"]), split=st.integers(0, 10), as_of=AS_OF, latest_at=TIME,
       keys=KEYS)
def test_parquet_point_in_time_uses_only_rows_known_by_then(parquet_store: ParquetOfflineStore, rows: list[Row],
                                                            spine: list[Any], max_age: int | None,
                                                            tz: str | None, split: int, as_of: int | None,
                                                            latest_at: int, keys: list[str | None]) -> None:
    """Point in time (with and without ``as_of``) and ``latest_as_of`` against the brute-force reference."""
    root = parquet_store.root
    for old in root.iterdir():
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    frame = frame_of(rows, tz)
    if 0 < split < len(rows):  # a folder of two files: file order continues across them
        (root / "user_features").mkdir()
        frame.iloc[:split].to_parquet(root / "user_features" / "part-0.parquet", index=False)
        frame.iloc[split:].to_parquet(root / "user_features" / "part-1.parquet", index=False)
    else:
        frame.to_parquet(root / "user_features.parquet", index=False)
    check(parquet_store, rows, spine, max_age, as_of)
    check_latest(parquet_store, rows, keys, max_age, latest_at)
    assert parquet_store.list_features("user_features") == ["n", "s"]


def test_a_backfill_is_invisible_before_it_was_written(tmp_path: Path) -> None:
    day = 86400 * SECOND
    rows: list[Row] = [("u1", 0, None, 1, "old"), ("u1", 5 * day, 20 * day, 2, "backfilled")]
    frame_of(rows, None).to_parquet(tmp_path / "user_features.parquet", index=False)
    store = ParquetOfflineStore(tmp_path)
    try:
        got = check(store, rows, [("u1", 10 * day), ("u1", 20 * day - 1), ("u1", 20 * day)], None)
    finally:
        store.close()
    assert plain(got["user_features:s"]) == ["old", "old", "backfilled"]


# --- BigQuery (emulator) ----------------------------------------------------------------

@pytest.fixture(scope="module")
def bigquery_store() -> Iterator[BigQueryOfflineStore]:
    running = BigQueryEmulator.start(PROJECT)
    store = BigQueryOfflineStore(PROJECT, f"ds_{uuid.uuid4().hex[:12]}", api_endpoint=running.endpoint,
                                 timeout=30, retry_attempts=1)
    try:
        yield store
    finally:
        store.close()
        running.stop()


@pytest.mark.bigquery
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows_with_backfills(unique_times=True), spine=SPINE, max_age=MAX_AGE,
       tz=st.sampled_from([None, "Asia/Seoul"]), as_of=AS_OF, latest_at=TIME, keys=KEYS)
# a row without an event time, created before as_of, is still never the latest row
@example(rows=[("u1", SECOND, 4 * SECOND, 0, None), ("u1", None, 3 * SECOND, 0, None)], spine=[("u1", 2 * SECOND)] * 4,
         max_age=None, tz=None, as_of=None, latest_at=3 * SECOND, keys=["u1", "u1", "u1"])
def test_bigquery_point_in_time_uses_only_rows_known_by_then(bigquery_store: BigQueryOfflineStore, rows: list[Row],
                                                             spine: list[Any], max_age: int | None,
                                                             tz: str | None, as_of: int | None, latest_at: int,
                                                             keys: list[str | None]) -> None:
    """As the parquet test, in BigQuery: ``as_of`` with nanoseconds compares exactly with microsecond rows."""
    # BigQuery keeps microseconds: the rows' times are whole microseconds (the spine's need not be).
    rows = [(e, None if t is None else t - t % 1000, None if c is None else c - c % 1000, n, s)
            for e, t, c, n, s in rows]
    if len({(r[0], r[1]) for r in rows if r[1] is not None}) < len([r for r in rows if r[1] is not None]):
        rows = list({(r[0], r[1]) if r[1] is not None else object(): r for r in rows}.values())
    bigquery_store.write_table(frame_of(rows, tz), "user_features")
    check(bigquery_store, rows, spine, max_age, as_of)
    check_latest(bigquery_store, rows, keys, max_age, latest_at)
    assert bigquery_store.list_features("user_features") == ["n", "s"]
