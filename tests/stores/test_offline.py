"""The parquet offline store: point-in-time joins with DuckDB against a brute-force reference.

What every offline store must do is tested once for all of them in test_offline_contract.py;
this module keeps what is the parquet folder's own: file layouts, zones in files, ties in
file order, bad files, concurrency and the config URI.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fs_augment.config import load_config
from fs_augment.errors import FeatureNotFoundError, RecipeError, StoreError
from fs_augment.recipe import FeatureGroup
from fs_augment.stores.offline import ParquetOfflineStore, open_parquet_store
from tests.support.spines import T0, missing, spine_of


def minutes(m: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=m)


def write(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


# --- the brute-force reference ----------------------------------------------------

@dataclass
class History:
    """One namespace's rows as written, in file order, and how they were written."""

    namespace: str
    entity_column: str
    entity_kind: str  # "text", "int" or "float": the parquet type of the entity column
    has_time: bool
    tz: str | None  # None: naive UTC times in the file
    files: list[list[tuple[Any, pd.Timestamp | None, int | None, str | None]]]  # (entity, time, n, s)
    folder: bool

    def write(self, root: Path) -> None:
        for i, rows in enumerate(self.files):
            data: dict[str, Any] = {}
            entities = [r[0] for r in rows]
            if self.entity_kind == "text":
                data[self.entity_column] = pd.Series(entities, dtype=object)
            elif self.entity_kind == "int":
                data[self.entity_column] = pd.array(entities, dtype="Int64")
            else:
                data[self.entity_column] = pd.Series([np.nan if e is None else float(e) for e in entities],
                                                     dtype="float64")
            if self.has_time:
                times = pd.Series(pd.to_datetime([r[1] for r in rows], utc=True), dtype="datetime64[ns, UTC]")
                data["event_timestamp"] = times.dt.tz_localize(None) if self.tz is None else times.dt.tz_convert(
                    self.tz)
            data["n"] = pd.array([r[2] for r in rows], dtype="Int64")
            data["s"] = pd.Series([r[3] for r in rows], dtype=object)
            path = root / f"{self.namespace}.parquet"
            if self.folder:
                path = root / self.namespace / f"part-{i:02d}.parquet"
            write(path, pd.DataFrame(data))

    def rows(self) -> list[tuple[int, str | None, pd.Timestamp | None, int | None, str | None]]:
        """(file order, entity text, time, n, s) of every row."""
        out = []
        order = 0
        for rows in self.files:  # files are named part-00, part-01, ... : name order is list order
            for entity, time, n, s in rows:
                text = None if entity is None else str(entity)
                out.append((order, text, time if self.has_time else None, n, s))
                order += 1
        return out

    def as_of(self, entity: str | None, at: pd.Timestamp | None, max_age: float | None) -> tuple[Any, Any] | None:
        if entity is None or at is None or pd.isna(at):
            return None
        candidates = [r for r in self.rows() if r[1] == entity
                      and (not self.has_time or (r[2] is not None and r[2] <= at))]
        if not candidates:
            return None
        best = max(candidates, key=lambda r: ((r[2].value if self.has_time else 0), r[0]))
        if self.has_time and max_age is not None and (at - best[2]).value > round(max_age * 1e9):
            return None
        return best[3], best[4]

    def latest(self) -> dict[str, tuple[Any, Any]]:
        out = {}
        for entity in {r[1] for r in self.rows() if r[1] is not None}:
            candidates = [r for r in self.rows() if r[1] == entity and (not self.has_time or r[2] is not None)]
            if candidates:
                best = max(candidates, key=lambda r: ((r[2].value if self.has_time else 0), r[0]))
                out[entity] = (best[3], best[4])
        return out


SPECS = {  # namespace -> (entity column, entity pool)
    "user_demographics": ("user_id", ["u0", "u1", "u2"]),
    "product_details": ("product_id", [0, 1, 2]),
    "session_summary": ("sid", [10, 11]),
}
TIMES = st.one_of(st.none(), st.integers(0, 8).map(minutes))


@st.composite
def histories(draw: st.DrawFn, namespace: str) -> History:
    column, pool = SPECS[namespace]
    kind = "text" if isinstance(pool[0], str) else draw(st.sampled_from(["int", "float"]))
    row = st.tuples(st.one_of(st.sampled_from(pool), st.none()) if kind != "text" else st.sampled_from(pool),
                    TIMES, st.one_of(st.none(), st.integers(-5, 5)), st.one_of(st.none(), st.sampled_from("ab")))
    n_files = draw(st.integers(1, 2))
    files = [draw(st.lists(row, min_size=0 if n_files > 1 else 1, max_size=8)) for _ in range(n_files)]
    return History(
        namespace=namespace,
        entity_column=column,
        entity_kind=kind,
        has_time=draw(st.booleans()) if namespace == "session_summary" else True,
        tz=draw(st.sampled_from([None, "UTC", "Asia/Seoul", "America/New_York"])),
        files=files,
        folder=n_files > 1 or draw(st.booleans()),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[History], list[float | None], pd.DataFrame]:
    chosen = draw(st.lists(st.sampled_from(sorted(SPECS)), min_size=1, max_size=3, unique=True))
    hist = [draw(histories(ns)) for ns in chosen]
    ages = [draw(st.sampled_from([None, 60.0, 120.0, 0.5])) for _ in hist]
    columns = [SPECS[h.namespace][0] for h in hist]
    spine_row = st.tuples(
        *[st.one_of(st.none(), st.sampled_from([str(v) for v in SPECS[h.namespace][1]] + ["nobody"]))
          for h in hist],
        st.one_of(st.none(), st.integers(0, 10).map(minutes), st.integers(0, 600).map(lambda s: minutes(s / 60))),
    )
    rows = draw(st.lists(spine_row, min_size=0, max_size=12))
    if rows and draw(st.booleans()):
        rows.append(rows[0])  # a duplicate row keeps its own output row
    return hist, ages, spine_of(rows, (*columns, "ts"))


@pytest.fixture(scope="module")
def scratch_store():
    """One store for every example (starting DuckDB costs more than an example's join)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = ParquetOfflineStore(tmp)
        yield store
        store.close()


@settings(max_examples=40, deadline=None)
@given(scenario=scenarios())
def test_point_in_time_matches_brute_force_reference(scratch_store: ParquetOfflineStore, scenario) -> None:
    hist, ages, spine = scenario
    store = scratch_store
    root = store.root
    for old in root.iterdir():
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    for h in hist:
        h.write(root)
    groups = [FeatureGroup(h.namespace, ("n", "s"), h.entity_column, max_age=age)
              for h, age in zip(hist, ages, strict=True)]
    result = store.point_in_time(spine, groups, "ts")
    for h, age in zip(hist, ages, strict=True):
        n_values = result[f"{h.namespace}:n"]
        s_values = result[f"{h.namespace}:s"]
        assert len(n_values) == len(s_values) == len(spine)
        for i in range(len(spine)):
            entity = spine[h.entity_column].iloc[i]
            expected = h.as_of(entity, spine["ts"].iloc[i], age)
            got = (n_values[i], s_values[i])
            if expected is None:
                assert missing(got[0]) and missing(got[1]), (h.namespace, i, got)
            else:
                for want, have in zip(expected, got, strict=True):
                    assert (missing(want) and missing(have)) or want == have, (h.namespace, i, expected, got)

        latest = store.read_latest(FeatureGroup(h.namespace, ("n", "s"), h.entity_column))
        want_latest = h.latest()
        assert list(latest.columns) == [h.entity_column, "n", "s"]
        assert sorted(latest[h.entity_column]) == sorted(want_latest)
        for entity, n, s in latest.itertuples(index=False):
            want_n, want_s = want_latest[entity]
            assert (missing(want_n) and missing(n)) or want_n == n
            assert (missing(want_s) and missing(s)) or want_s == s


# --- plain tests ---------------------------------------------------------------------

@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "features"
    write(folder / "user_demographics.parquet", pd.DataFrame({
        "user_id": ["u1", "u1", "u2", "u1"],
        "event_timestamp": pd.to_datetime([minutes(10), minutes(0), minutes(5), minutes(20)]).tz_localize(None)
        .astype("datetime64[ns]"),
        "age": [31, 30, 40, 32],
        "country_code": ["KR", "KR", "US", None],
    }))
    return folder


@pytest.fixture
def store(root: Path):
    with_store = ParquetOfflineStore(root)
    yield with_store
    with_store.close()


DEMO = FeatureGroup("user_demographics", ("age", "country_code"), "user_id")


def test_naive_and_zoned_file_times_compare_in_utc(tmp_path: Path) -> None:
    at = [minutes(0), minutes(10)]
    write(tmp_path / "user_a.parquet", pd.DataFrame({
        "user_id": ["u1", "u1"], "event_timestamp": pd.to_datetime(at).tz_localize(None), "v": [1, 2]}))
    write(tmp_path / "user_b.parquet", pd.DataFrame({  # the same instants, written in Seoul time (UTC+9)
        "user_id": ["u1", "u1"], "event_timestamp": pd.to_datetime(at).tz_convert("Asia/Seoul"), "v": [1, 2]}))
    store = ParquetOfflineStore(tmp_path)
    spine = spine_of([("u1", minutes(9)), ("u1", minutes(10))])
    groups = [FeatureGroup(ns, ("v",), "user_id") for ns in ("user_a", "user_b")]
    out = store.point_in_time(spine, groups, "ts")
    assert out["user_a:v"].tolist() == out["user_b:v"].tolist() == [1, 2]


def test_ties_take_the_last_row_in_file_order_across_a_folder(tmp_path: Path) -> None:
    stamp = pd.to_datetime([minutes(0)]).tz_localize(None)
    write(tmp_path / "user_scores" / "b.parquet", pd.DataFrame({"user_id": ["u1"], "event_timestamp": stamp,
                                                                 "score": [2.0]}))
    write(tmp_path / "user_scores" / "a.parquet", pd.DataFrame({"user_id": ["u1", "u1"],
                                                                 "event_timestamp": stamp.repeat(2),
                                                                 "score": [0.0, 1.0]}))
    (tmp_path / "user_scores" / "notes.txt").write_text("not parquet")
    store = ParquetOfflineStore(tmp_path)
    group = FeatureGroup("user_scores", ("score",), "user_id")
    assert store.list_features("user_scores") == ["score"]
    assert store.point_in_time(spine_of([("u1", minutes(1))]), [group], "ts")["user_scores:score"].tolist() == [2.0]
    assert store.read_latest(group)["score"].tolist() == [2.0]
    assert store.namespaces() == ["user_scores"]


def test_namespace_names_that_could_leave_the_folder_are_refused(store: ParquetOfflineStore) -> None:
    with pytest.raises(RecipeError, match="invalid namespace"):
        store.list_features("..")


def test_entity_column_missing_from_file_names_the_file(store: ParquetOfflineStore) -> None:
    group = FeatureGroup("user_demographics", ("age",), "customer_id")
    spine = spine_of([("u1", minutes(1))], ("customer_id", "ts"))
    with pytest.raises(StoreError, match=r"user_demographics\.parquet has no entity column 'customer_id'"):
        store.point_in_time(spine, [group], "ts")


def test_bad_files_become_store_errors_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "user_broken.parquet").write_bytes(b"this is not parquet")
    write(tmp_path / "user_bool.parquet", pd.DataFrame({"user_id": [True], "v": [1]}))
    write(tmp_path / "user_text_time.parquet", pd.DataFrame({"user_id": ["u1"], "event_timestamp": ["yesterday"],
                                                             "v": [1]}))
    write(tmp_path / "user_both.parquet", pd.DataFrame({"user_id": ["u1"], "v": [1]}))
    write(tmp_path / "user_both" / "part.parquet", pd.DataFrame({"user_id": ["u1"], "v": [1]}))
    write(tmp_path / "user_reserved.parquet", pd.DataFrame({"user_id": ["u1"], "v": [1], "file_row_number": [1]}))
    store = ParquetOfflineStore(tmp_path)
    spine = spine_of([("u1", minutes(1))])
    expected = {"user_broken": "user_broken.parquet", "user_bool": "type BOOLEAN",
                "user_text_time": "must be a timestamp", "user_both": "keep one of them",
                "user_reserved": "file_row_number, names DuckDB keeps"}
    for namespace, text in expected.items():
        with pytest.raises(StoreError, match=text) as info:
            store.point_in_time(spine, [FeatureGroup(namespace, ("v",), "user_id")], "ts")
        assert not isinstance(info.value, FeatureNotFoundError) or namespace == "user_broken"


def test_concurrent_joins_share_one_store(store: ParquetOfflineStore) -> None:
    spine = spine_of([("u1", minutes(m)) for m in range(0, 30)] * 50)
    expected = store.point_in_time(spine, [DEMO], "ts")["user_demographics:age"]
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(store.point_in_time(spine, [DEMO], "ts")["user_demographics:age"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 6
    for result in results:
        np.testing.assert_array_equal(result, expected)


def test_open_parquet_store_resolves_relative_uri(make_config_dir, root: Path) -> None:
    config_dir = make_config_dir(local={"feature_store": {"provider": "local", "connection_info": {
        "offline_store_uri": "file://./features"}}})
    write(config_dir.parent / "features" / "user_x.parquet", pd.DataFrame({"user_id": ["u1"], "v": [1]}))
    store = open_parquet_store(load_config("local", config_dir))
    assert store.describe() == f"parquet folder {(config_dir.parent / 'features').resolve()}"
    assert store.list_features("user_x") == ["v"]
    store.close()
    store.close()  # closing twice is fine, and a closed store opens a new connection when used
    assert store.list_features("user_x") == ["v"]
