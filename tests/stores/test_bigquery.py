"""The BigQuery offline store, run with the real google-cloud-bigquery client against ``bqemulator``.

The emulator (the ``emulator`` fixture of tests/stores/conftest.py) is started once
for the session from its own virtual environment (``.ci/bqemulator-setup.sh``); if
that venv is missing the tests fail, they never skip. Each test works in a dataset of
its own. What every offline store must do is tested in test_offline_contract.py; this
module keeps what is BigQuery's own: SQL, URIs, error translation, column types,
ties, how the spine travels, ``connect``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fs_augment
from fs_augment.config import load_config
from fs_augment.errors import ConfigError, FeatureNotFoundError, StoreError, StoreUnavailableError
from fs_augment.recipe import FeatureGroup
from fs_augment.stores.bigquery import (
    SCRATCH_PREFIX,
    BigQueryOfflineStore,
    open_bigquery_store,
    parse_bigquery_uri,
)
from fs_augment.stores.bigquery_sql import TableSQL, latest_sql, point_in_time_sql, quote_identifier
from fs_augment.stores.offline import ParquetOfflineStore
from tests.support.bqemulator import BigQueryEmulator
from tests.support.spines import at, missing, plain, spine_of
from tests.support.stores import BIGQUERY_PROJECT, new_bigquery_store, redis_host_and_db, write_parquet

pytestmark = pytest.mark.bigquery

PROJECT = BIGQUERY_PROJECT
USERS = FeatureGroup("user_demographics", ("age", "country"), "user_id")


def raw_tables(store: BigQueryOfflineStore) -> list[str]:
    """Every table of the store's dataset, scratch tables included."""
    return sorted(t.table_id for t in store.client.list_tables(f"{store.project}.{store.dataset}"))


def load_raw(store: BigQueryOfflineStore, namespace: str, table: pa.Table, schema: list[tuple[str, str]]) -> None:
    """Load an Arrow table with an explicit BigQuery schema, as a data engineer would."""
    from google.cloud import bigquery

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    buffer.seek(0)
    config = bigquery.LoadJobConfig(source_format="PARQUET", write_disposition="WRITE_TRUNCATE",
                                    schema=[bigquery.SchemaField(n, t) for n, t in schema])
    store.client.create_dataset(f"{store.project}.{store.dataset}", exists_ok=True)
    store.client.load_table_from_file(buffer, f"{store.project}.{store.dataset}.{namespace}",
                                      job_config=config).result()


# --- fixtures -----------------------------------------------------------------------

def new_store(emulator: BigQueryEmulator, cls: type[BigQueryOfflineStore] = BigQueryOfflineStore,
              **options: Any) -> BigQueryOfflineStore:
    return new_bigquery_store(emulator, cls, **options)


@pytest.fixture
def store(emulator: BigQueryEmulator) -> Iterator[BigQueryOfflineStore]:
    """A store over a fresh dataset of its own."""
    opened = new_store(emulator)
    yield opened
    opened.close()


def user_history() -> pd.DataFrame:
    """A small ``user_demographics`` history: u1 at 10 s and 20 s, u2 at 10 s, u3 at 30 s."""
    return pd.DataFrame({
        "user_id": ["u1", "u1", "u2", "u3"],
        "event_timestamp": [at(10), at(20), at(10), at(30)],
        "age": [30, 31, 40, 50],
        "country": ["KR", "US", "FR", "DE"],
    })


@pytest.fixture
def users(store: BigQueryOfflineStore) -> BigQueryOfflineStore:
    """The store with :func:`user_history` as ``user_demographics``."""
    store.write_table(user_history(), "user_demographics")
    return store


# --- SQL, without BigQuery ------------------------------------------------------------

def table_sql(**changes: Any) -> TableSQL:
    fields: dict[str, Any] = {"table": "`p.d.user_demographics`", "entity": "t.`user_id`",
                              "time": "t.`event_timestamp`", "features": ("age", "country"),
                              "tiebreak": ("age", "country")}
    fields.update(changes)
    return TableSQL(**fields)


def test_point_in_time_sql_is_inclusive_parameterised_and_generated_once() -> None:
    groups = (table_sql(), table_sql(table="`p.d.product_details`", entity="CAST(t.`product_id` AS STRING)",
                                     features=("price",), tiebreak=("price",), spine_entity="e1", max_age=True))
    sql = point_in_time_sql(groups, "UNNEST(@spine)")
    in_table = point_in_time_sql(groups, "`p.d._fs_augment_spine_1`")
    assert in_table == sql.replace("UNNEST(@spine)", "`p.d._fs_augment_spine_1`")  # only the spine differs
    assert "FROM UNNEST(@spine) AS s" in sql
    assert sql.count("t.`event_timestamp` <= s.ts") == 2
    assert "@max_age_us_1 - IF(s.ts_rem > @max_age_rem_1, 1, 0)" in sql
    assert "@max_age_us_0" not in sql
    assert "s.row_id, s.e0, s.e1, s.ts, s.ts_rem" in sql
    assert "FROM g0 FULL OUTER JOIN g1 USING (row_id)" in sql
    assert "QUALIFY" not in sql and "WHERE rn = 1" in sql
    assert "ORDER BY t.`event_timestamp` DESC, t.`age` DESC NULLS LAST, t.`country` DESC NULLS LAST" in sql


def test_point_in_time_sql_without_event_timestamp_needs_only_a_spine_time() -> None:
    sql = point_in_time_sql((table_sql(time=None, max_age=False, tiebreak=()),), "`p.d._fs_augment_spine_x`")
    assert "ON t.`user_id` = s.e0 AND s.ts IS NOT NULL" in sql
    assert "OVER (PARTITION BY s.row_id)" in sql
    assert "ts_rem" not in sql


def test_latest_sql_orders_like_point_in_time() -> None:
    sql = latest_sql(table_sql())
    assert "PARTITION BY t.`user_id` ORDER BY t.`event_timestamp` DESC, t.`age` DESC NULLS LAST" in sql
    assert "t.`user_id` IS NOT NULL AND t.`event_timestamp` IS NOT NULL" in sql


def test_identifiers_cannot_escape_their_quotes() -> None:
    assert quote_identifier("user-demographics") == "`user-demographics`"
    with pytest.raises(StoreError):
        quote_identifier("age` OR 1=1 --")


@pytest.mark.parametrize(("uri", "expected"), [
    ("bq://my-project.features", ("my-project", "features")),
    ("bq://example.com:my-project.features_v2", ("example.com:my-project", "features_v2")),
])
def test_parse_bigquery_uri(uri: str, expected: tuple[str, str]) -> None:
    assert parse_bigquery_uri(uri) == expected


@pytest.mark.parametrize("uri", ["bq://features", "bq://p.", "bq://p.data-set", "file://p.d", "bq://p`x.d"])
def test_parse_bigquery_uri_rejects_malformed(uri: str) -> None:
    with pytest.raises(ConfigError, match=r"bq://PROJECT\.DATASET"):
        parse_bigquery_uri(uri)


def test_open_bigquery_store_takes_the_environment_settings(make_config_dir: Callable[..., Path]) -> None:
    folder = make_config_dir(dev={"feature_store": {
        "provider": "redis", "connection_timeout": 1500, "retry_attempts": 2,
        "connection_info": {"offline_store_uri": "bq://proj-1.features", "bigquery_location": "EU",
                            "bigquery_api_endpoint": "http://127.0.0.1:9"}}})
    store = open_bigquery_store(load_config("dev", folder))
    assert (store.project, store.dataset, store.location, store.env) == ("proj-1", "features", "EU", "dev")
    assert (store.timeout, store.retry_attempts, store.api_endpoint) == (1.5, 2, "http://127.0.0.1:9")
    assert store.describe() == "BigQuery dataset proj-1.features at http://127.0.0.1:9"
    assert not store.uses_storage_api  # an emulator endpoint is always read through REST
    store.close()  # no client was created: nothing is contacted before the first lookup


def google_errors() -> list[tuple[BaseException, type[StoreError]]]:
    import requests
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    return [
        (auth.DefaultCredentialsError("no credentials found"), StoreUnavailableError),
        (auth.RefreshError("token expired"), StoreUnavailableError),
        (api.Unauthorized("bad token"), StoreUnavailableError),
        (api.ServiceUnavailable("try later"), StoreUnavailableError),
        (api.InternalServerError("oops"), StoreUnavailableError),
        (api.TooManyRequests("slow down"), StoreUnavailableError),
        (api.RetryError("gave up", None), StoreUnavailableError),
        (requests.ConnectionError("refused"), StoreUnavailableError),
        (requests.Timeout("timed out"), StoreUnavailableError),
        (api.Forbidden("access denied"), StoreError),
        (api.BadRequest("syntax error"), StoreError),
        (api.NotFound("gone"), StoreError),
    ]


@pytest.mark.parametrize(("error", "expected"), google_errors(), ids=lambda v: type(v).__name__)
def test_each_google_error_is_translated_at_the_boundary(error: BaseException, expected: type[StoreError]) -> None:
    store = BigQueryOfflineStore("proj", "features", env="prod")
    with pytest.raises(StoreError) as info, store._translating("reading things"):
        raise error
    assert type(info.value) is expected and info.value.__cause__ is error
    assert "reading things" in str(info.value) and "proj.features" in str(info.value) and "'prod'" in str(info.value)


def test_transient_failures_are_retried_retry_attempts_times() -> None:
    from google.api_core import exceptions as api

    store = BigQueryOfflineStore("proj", "features", retry_attempts=2)
    for error, calls_expected in ((api.ServiceUnavailable("down"), 3), (api.BadRequest("bad"), 1)):
        calls = []

        def call(error: BaseException = error, calls: list[int] = calls) -> None:
            calls.append(1)
            raise error

        with pytest.raises(type(error)):
            store._retry()(call)()
        assert len(calls) == calls_expected


# --- schema discovery ------------------------------------------------------------------

def test_schema_is_discovered_at_run_time(users: BigQueryOfflineStore) -> None:
    assert users.list_features("user_demographics") == ["age", "country"]
    users.write_table(pd.DataFrame({"user_id": ["u1"], "age": [1], "country": ["KR"], "vip": [True]}),
                      "user_demographics")
    assert users.list_features("user_demographics") == ["age", "country", "vip"]
    assert users.namespaces() == ["user_demographics"]


def test_unknown_namespace_lists_the_dataset_tables_and_the_endpoint(users: BigQueryOfflineStore) -> None:
    with pytest.raises(FeatureNotFoundError) as info:
        users.point_in_time(spine_of([("u1", at(10))]), [FeatureGroup("user_profile", ("age",), "user_id")], "ts")
    message = str(info.value)
    assert "tables present: user_demographics" in message and users.api_endpoint in message


def test_unknown_dataset_says_so(emulator: BigQueryEmulator) -> None:
    store = new_store(emulator)
    with pytest.raises(FeatureNotFoundError, match="tables present: none"):
        store.list_features("user_demographics")


def test_unusable_time_column_is_a_store_error(store: BigQueryOfflineStore) -> None:
    load_raw(store, "user_demographics", pa.table({"user_id": ["u1"], "event_timestamp": ["yesterday"], "age": [1]}),
             [("user_id", "STRING"), ("event_timestamp", "STRING"), ("age", "INT64")])
    with pytest.raises(StoreError, match="must be TIMESTAMP, DATETIME or DATE"):
        store.point_in_time(spine_of([("u1", at(10))]), [FeatureGroup("user_demographics", ("age",), "user_id")],
                            "ts")


# --- point-in-time semantics ------------------------------------------------------------------

def test_time_columns_of_every_kind_compare_in_utc(store: BigQueryOfflineStore) -> None:
    load_raw(store, "session_summary", pa.table({
        "session_id": ["s1", "s1"],
        "event_timestamp": pa.array([pd.Timestamp("2024-01-01 10:00"), pd.Timestamp("2024-01-02 10:00")],
                                    pa.timestamp("us")),
        "clicks": [1, 2],
    }), [("session_id", "STRING"), ("event_timestamp", "DATETIME"), ("clicks", "INT64")])
    load_raw(store, "day_summary", pa.table({
        "day_id": ["d1", "d1"], "event_timestamp": pa.array([19723, 19724], pa.date32()), "visits": [5, 6],
    }), [("day_id", "STRING"), ("event_timestamp", "DATE"), ("visits", "INT64")])
    spine = spine_of([("s1", "d1", "2024-01-02T09:59:59+00:00"), ("s1", "d1", "2024-01-02T19:00:00+09:00")],
                     ("session_id", "day_id", "ts"))
    values = store.point_in_time(spine, [FeatureGroup("session_summary", ("clicks",), "session_id"),
                                         FeatureGroup("day_summary", ("visits",), "day_id")], "ts")
    assert plain(values["session_summary:clicks"]) == [1, 2]
    assert plain(values["day_summary:visits"]) == [6, 6]  # 2024-01-02 is midnight UTC


def test_ties_take_one_row_by_greatest_values_in_both_lookups(store: BigQueryOfflineStore) -> None:
    store.write_table(pd.DataFrame({
        "user_id": ["u1", "u1", "u1", "u2", "u2"],
        "event_timestamp": [at(10), at(10), at(10), at(10), at(10)],
        "age": [31, 33, 33, None, 20],
        "country": ["KR", "FR", "US", "ZZ", "AA"],
    }), "user_demographics")
    values = store.point_in_time(spine_of([("u1", at(10)), ("u2", at(11))]), [USERS], "ts")
    assert plain(values["user_demographics:age"]) == [33, 20]
    assert plain(values["user_demographics:country"]) == ["US", "AA"]  # both features from one row
    latest = store.read_latest(USERS)
    assert latest.to_dict("list") == {"user_id": ["u1", "u2"], "age": [33, 20], "country": ["US", "AA"]}


# --- how the spine travels -----------------------------------------------------------------------

class RecordingStore(BigQueryOfflineStore):
    """A store that notes the SQL it runs and the scratch tables alive while it runs."""

    fail = False

    def _query(self, sql: str, parameters: Sequence[Any], action: str) -> pa.Table:
        self.seen = (sql, [t for t in raw_tables(self) if t.startswith(SCRATCH_PREFIX)])
        if self.fail:
            raise RuntimeError("the query failed")
        return super()._query(sql, parameters, action)


def test_array_parameter_and_scratch_table_agree_and_scratch_is_deleted(emulator: BigQueryEmulator) -> None:
    store = new_store(emulator, RecordingStore, array_max_rows=1000)
    history = pd.DataFrame({"user_id": [f"u{i % 50}" for i in range(200)],
                            "event_timestamp": [at(i) for i in range(200)], "age": list(range(200)),
                            "country": [f"c{i}" for i in range(200)]})
    store.write_table(history, "user_demographics")
    rng = np.random.default_rng(7)
    spine = spine_of([(f"u{rng.integers(0, 60)}", at(float(rng.integers(-10, 220)))) for _ in range(1200)])

    in_table = store.point_in_time(spine, [USERS], "ts")  # more rows than array_max_rows
    sql, scratch = store.seen
    assert len(scratch) == 1 and f"{store.dataset}.{scratch[0]}`" in sql and "UNNEST" not in sql
    assert raw_tables(store) == ["user_demographics"]  # deleted afterwards

    store.array_max_rows = 2000
    in_array = store.point_in_time(spine, [USERS], "ts")
    assert "FROM UNNEST(@spine)" in store.seen[0] and store.seen[1] == []
    for name in USERS.qualified_names:
        assert plain(in_array[name]) == plain(in_table[name])
    ages = history.set_index(["user_id", "event_timestamp"])["age"]
    expected = [max((a for (u, t), a in ages.items() if u == user and t <= ts), default=None)
                for user, ts in zip(spine["user_id"], spine["ts"], strict=True)]
    assert plain(in_table["user_demographics:age"]) == expected

    store.array_max_rows, store.fail = 0, True
    with pytest.raises(RuntimeError, match="the query failed"):
        store.point_in_time(spine, [USERS], "ts")
    assert len(store.seen[1]) == 1
    assert raw_tables(store) == ["user_demographics"]  # deleted even when the query fails
    store.close()


# --- read_latest, errors, connect ------------------------------------------------------------------

def test_unreachable_bigquery_is_store_unavailable() -> None:
    store = BigQueryOfflineStore(PROJECT, "features", api_endpoint="http://127.0.0.1:9", timeout=1,
                                 retry_attempts=1, env="staging")
    with pytest.raises(StoreUnavailableError) as info:
        store.point_in_time(spine_of([("u1", at(10))]), [USERS], "ts")
    message = str(info.value)
    assert f"{PROJECT}.features" in message and "http://127.0.0.1:9" in message and "'staging'" in message
    assert "after 1 retries" in message and info.value.__cause__ is not None


def test_google_errors_become_store_errors(users: BigQueryOfflineStore) -> None:
    from google.api_core.exceptions import BadRequest

    with pytest.raises(StoreError, match="failed on BigQuery dataset") as info:
        users._query(f"SELECT no_such_column FROM `{PROJECT}.{users.dataset}.user_demographics`", [], "a bad query")
    assert isinstance(info.value.__cause__, BadRequest)


def test_connect_with_a_bq_uri_runs_point_in_time_lookups_in_bigquery(
    emulator: BigQueryEmulator, users: BigQueryOfflineStore, make_config_dir: Callable[..., Path],
    redis_client: redis.Redis,
) -> None:
    host, db = redis_host_and_db(redis_client)
    folder = make_config_dir(test={"feature_store": {
        "provider": "redis", "connection_timeout": 5000, "retry_attempts": 1,
        "connection_info": {"redis_host": host, "redis_db": db, "redis_mode": "standalone",
                            "offline_store_uri": f"bq://{PROJECT}.{users.dataset}",
                            "bigquery_api_endpoint": emulator.endpoint}}})
    spine = pd.DataFrame({"user_id": ["u1", "u2", "u1", None], "ts": [at(15), at(5), at(25), at(25)]},
                         index=[10, 11, 12, 13])
    spine["ts"] = spine["ts"].dt.tz_localize(None)  # naive: read as UTC by the adapter
    with fs_augment.connect("test", folder) as adapter:
        assert isinstance(adapter.offline, BigQueryOfflineStore)
        assert users.dataset in repr(adapter)
        values = adapter.lookup_columns(spine, [USERS], timestamp_column="ts")
        frame = adapter.get_feature_frame(spine, [{"namespace": "user_demographics", "features": ["country"]}],
                                          timestamp_column="ts")
    assert plain(values["user_demographics:age"]) == [30, None, 31, None]
    assert plain(values["user_demographics:country"]) == ["KR", None, "US", None]
    assert frame.index.tolist() == [10, 11, 12, 13]
    assert plain(frame["user_demographics:country"]) == ["KR", None, "US", None]


# --- property: BigQuery = brute force = DuckDB -------------------------------------------------------

SECOND = 10**9
USER_FEATURES = ("age", "score")
PRODUCT_FEATURES = ("label",)


def feature_rows(entities: st.SearchStrategy[Any], values: st.SearchStrategy[tuple[Any, ...]]):
    """Rows (entity, time in ns or None, *values), out of order, one row per (entity, time)."""
    time = st.one_of(st.none(), st.builds(lambda s, us: s * SECOND + us * 1000,
                                          st.integers(0, 6), st.sampled_from([0, 0, 1])))
    rows = st.lists(st.tuples(entities, time, values), max_size=10)
    return rows.map(lambda found: list({(r[0], r[1] if r[1] is not None else object()): (r[0], r[1], *r[2])
                                        for r in reversed(found)}.values()))


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    users = draw(feature_rows(st.sampled_from(["u1", "u2", "u3"]),
                              st.tuples(st.integers(-5, 5), st.one_of(st.none(), st.floats(-9, 9, width=32)))))
    products = draw(feature_rows(st.integers(1, 3), st.tuples(st.one_of(st.none(), st.text("abc", max_size=3)))))
    max_ages = (draw(st.sampled_from([None, 2 * SECOND, 2 * SECOND + 500])), draw(st.sampled_from([None, SECOND])))
    spine_time = st.one_of(st.none(), st.builds(lambda s, extra: s * SECOND + extra, st.integers(-1, 9),
                                                st.sampled_from([0, 0, -1, 1, 499, 500, 501, 1000])))
    spine = draw(st.lists(st.tuples(st.one_of(st.none(), st.sampled_from(["u1", "u2", "u3", "u9"])),
                                    st.one_of(st.none(), st.sampled_from(["1", "2", "3", "01"])),
                                    spine_time), min_size=1, max_size=25))
    return {"users": users, "products": products, "max_ages": max_ages, "spine": spine,
            "array_max_rows": draw(st.sampled_from([0, 1000]))}


def frame_of(rows: list[tuple[Any, ...]], entity: str, features: Sequence[str], dtypes: dict[str, str]) -> pd.DataFrame:
    columns = [entity, "event_timestamp", *features]
    frame = pd.DataFrame(rows, columns=columns).astype({entity: dtypes[entity]})
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"].astype("Int64"), unit="ns", utc=True)
    for feature in features:
        frame[feature] = frame[feature].astype(dtypes[feature])
    return frame


def brute_force(rows: list[tuple[Any, ...]], keys: list[Any], times: list[int | None], max_age: int | None,
                width: int) -> list[tuple[Any, ...]]:
    """For each spine row, the values of its entity's newest row at or before its time (None if none)."""
    out = []
    for key, time in zip(keys, times, strict=True):
        found = [r for r in rows if key is not None and time is not None and str(r[0]) == key
                 and r[1] is not None and r[1] <= time]
        best = max(found, key=lambda r: r[1], default=None)
        if best is None or (max_age is not None and time - best[1] > max_age):
            out.append((None,) * width)
        else:
            out.append(tuple(best[2:]))
    return out


@pytest.fixture(scope="module")
def property_store(emulator: BigQueryEmulator) -> Iterator[BigQueryOfflineStore]:
    opened = new_store(emulator)
    yield opened
    opened.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_point_in_time_equals_brute_force_and_duckdb(property_store: BigQueryOfflineStore,
                                                     tmp_path_factory: pytest.TempPathFactory,
                                                     scenario: dict[str, Any]) -> None:
    store = property_store
    store.array_max_rows = scenario["array_max_rows"]
    user_ages, product_ages = scenario["max_ages"]
    users = frame_of(scenario["users"], "user_id", USER_FEATURES, {"user_id": "object", "age": "int64",
                                                                    "score": "float64"})
    products = frame_of(scenario["products"], "product_id", PRODUCT_FEATURES, {"product_id": "int64",
                                                                               "label": "object"})
    folder = tmp_path_factory.mktemp("parquet")
    for namespace, frame in (("user_features", users), ("product_features", products)):
        store.write_table(frame, namespace)
        write_parquet(frame, folder / f"{namespace}.parquet")
    groups = [
        FeatureGroup("user_features", USER_FEATURES, "user_id", max_age=user_ages and user_ages / 1e9),
        FeatureGroup("product_features", PRODUCT_FEATURES, "product_id", max_age=product_ages and product_ages / 1e9),
    ]
    rows = scenario["spine"]
    times = [r[2] for r in rows]
    spine = pd.DataFrame({"user_id": [r[0] for r in rows], "product_id": [r[1] for r in rows]}, dtype=object)
    spine["ts"] = pd.to_datetime(pd.array(times, dtype="Int64"), unit="ns", utc=True).astype("datetime64[ns, UTC]")

    got = store.point_in_time(spine, groups, "ts")
    duck = ParquetOfflineStore(folder)
    try:
        want = duck.point_in_time(spine, groups, "ts")
    finally:
        duck.close()
    expected = {
        "user_features": brute_force(scenario["users"], [r[0] for r in rows], times, user_ages, 2),
        "product_features": brute_force(scenario["products"], [r[1] for r in rows], times, product_ages, 1),
    }
    for group in groups:
        for j, name in enumerate(group.qualified_names):
            reference = [None if missing(v[j]) else v[j] for v in expected[group.namespace]]
            assert plain(got[name]) == reference, name
            assert plain(want[name]) == reference, name
            assert got[name].dtype == want[name].dtype, name


def test_newest_timestamp_and_latest_table_match_the_parquet_store(store: BigQueryOfflineStore, tmp_path: Path) -> None:
    frame = pd.DataFrame({"user_id": ["u2", "u1", "u1"], "event_timestamp": [at(10), at(25.5), None],
                          "age": [40, 31, 99]})
    untimed = pd.DataFrame({"user_id": ["u1"], "tier": ["gold"]})
    unset = pd.DataFrame({"user_id": ["u1"], "event_timestamp": pd.Series([None], dtype="datetime64[us, UTC]"),
                          "age": [1]})
    duck = ParquetOfflineStore(tmp_path)
    for name, table in [("user_demographics", frame), ("user_tiers", untimed), ("user_unset", unset)]:
        store.write_table(table, name)
        write_parquet(table, tmp_path / f"{name}.parquet")
    try:
        for offline in (store, duck):
            assert offline.newest_timestamp("user_demographics") == at(25.5)
            assert offline.newest_timestamp("user_tiers") is None
            assert offline.newest_timestamp("user_unset") is pd.NaT
            with pytest.raises(FeatureNotFoundError, match="user_nothing"):
                offline.newest_timestamp("user_nothing")
            entity, table = offline.latest_table("user_demographics", ["age"])
            assert entity == "user_id"
            assert table.column_names == ["user_id", "age"]
            assert table.to_pydict() == {"user_id": ["u1", "u2"], "age": [31, 40]}
    finally:
        duck.close()
