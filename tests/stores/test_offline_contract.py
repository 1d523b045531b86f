"""The offline store contract (CONTRACT 4.2, 4.4), one test body run against every offline store.

Each test takes the ``offline`` fixture (tests/stores/conftest.py; the harness is in
tests/support/stores.py), parametrized over the parquet folder read with DuckDB and a
BigQuery dataset of the emulator. What only one store has (parquet file layouts, BigQuery
column types and SQL, tie-breaking) is tested in test_offline.py and test_bigquery.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fs_augment.errors import FeatureNotFoundError, SpineError, StoreError
from fs_augment.recipe import FeatureGroup
from tests.support.spines import NS, at, plain, spine_of
from tests.support.stores import OfflineHarness

USERS = FeatureGroup("user_demographics", ("age", "country"), "user_id")


def user_history() -> pd.DataFrame:
    """A small ``user_demographics`` history: u1 at 10 s and 20 s, u2 at 10 s, u3 at 30 s."""
    return pd.DataFrame({
        "user_id": ["u1", "u1", "u2", "u3"],
        "event_timestamp": [at(10), at(20), at(10), at(30)],
        "age": [30, 31, 40, 50],
        "country": ["KR", "US", "FR", "DE"],
    })


@pytest.fixture
def users(offline: OfflineHarness) -> OfflineHarness:
    """The store with :func:`user_history` as ``user_demographics``."""
    offline.write("user_demographics", user_history())
    return offline


# --- point-in-time semantics ------------------------------------------------------------------

def test_inclusive_at_equal_timestamps_to_the_nanosecond(users: OfflineHarness) -> None:
    spine = spine_of([("u1", at(20) - NS), ("u1", at(20)), ("u1", at(20) + NS), ("u1", at(10) - NS)])
    values = users.store.point_in_time(spine, [USERS], "ts")
    assert plain(values["user_demographics:age"]) == [30, 31, 31, None]
    assert plain(values["user_demographics:country"]) == ["KR", "US", "US", None]
    complete = users.store.point_in_time(spine_of([("u1", at(10)), ("u1", at(20) - NS)]), [USERS], "ts")
    assert complete["user_demographics:age"].dtype == np.int64  # ints without holes stay ints
    assert plain(complete["user_demographics:age"]) == [30, 30]


def test_missing_entity_unknown_entity_and_missing_time_are_missing(users: OfflineHarness) -> None:
    spine = spine_of([(None, at(99)), ("nobody", at(99)), ("u1", None), ("u3", at(29)), ("u3", at(30))])
    values = users.store.point_in_time(spine, [USERS], "ts")
    age = values["user_demographics:age"]
    assert age.dtype == np.float64  # ints with missing values come back as floats with NaN
    assert plain(age) == [None, None, None, None, 50]
    assert plain(values["user_demographics:country"]) == [None, None, None, None, "DE"]


def test_duplicate_spine_rows_keep_their_rows_in_spine_order(users: OfflineHarness) -> None:
    rows = [("u2", at(15)), ("u1", at(25)), ("u1", at(15)), ("u2", at(15)), ("u1", at(25)), ("u1", at(5))]
    values = users.store.point_in_time(spine_of(rows), [USERS], "ts")
    assert plain(values["user_demographics:age"]) == [40, 31, 30, 40, 31, None]
    assert plain(values["user_demographics:country"]) == ["FR", "US", "KR", "FR", "US", None]


def test_max_age_keeps_a_row_exactly_that_old_to_the_nanosecond(users: OfflineHarness) -> None:
    for max_age in (5.0, 5.0000005):  # whole microseconds, and 500 ns beyond
        group = FeatureGroup("user_demographics", ("age",), "user_id", max_age=max_age)
        limit = at(20) + pd.Timedelta(round(max_age * 1e9), "ns")
        spine = spine_of([("u1", limit - NS), ("u1", limit), ("u1", limit + NS), ("u2", at(14)), ("u2", at(16))])
        got = users.store.point_in_time(spine, [group], "ts")["user_demographics:age"]
        assert plain(got) == [31, 31, None, 40, None], max_age


def test_naive_zoned_and_text_spine_times_mean_utc(users: OfflineHarness) -> None:
    utc = spine_of([("u1", at(15)), ("u1", at(20)), ("u2", at(9))])
    naive = utc.assign(ts=utc["ts"].dt.tz_localize(None))
    seoul = utc.assign(ts=utc["ts"].dt.tz_convert("Asia/Seoul"))
    as_text = utc.assign(ts=utc["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S%z"))
    for spine in (utc, naive, seoul, as_text):
        assert plain(users.store.point_in_time(spine, [USERS], "ts")["user_demographics:age"]) == [30, 31, None]


def test_entity_columns_of_numbers_match_as_text(offline: OfflineHarness) -> None:
    offline.write("product_details", pd.DataFrame({"product_id": pd.array([456, 7, None], dtype="Int64"),
                                                   "event_timestamp": [at(0)] * 3, "price": [9.5, 1.0, 3.0]}))
    offline.write("shop_scores", pd.DataFrame({"shop_id": [12.0, 2.5, -0.0], "event_timestamp": [at(0)] * 3,
                                               "rating": [4, 5, 6]}))
    groups = [FeatureGroup("product_details", ("price",), "product_id"),
              FeatureGroup("shop_scores", ("rating",), "shop_id")]
    spine = spine_of([("456", "12", at(1)), ("0456", "2.5", at(1)), ("7", "0", at(1))], ("product_id", "shop_id", "ts"))
    values = offline.store.point_in_time(spine, groups, "ts")
    assert plain(values["product_details:price"]) == [9.5, None, 1.0]  # "0456" is not 456's text
    assert plain(values["shop_scores:rating"]) == [4, None, 6]  # 2.5 is no entity key; -0.0 is "0"
    # spine entity values that are not text yet are turned into text the contract's way
    numeric = pd.DataFrame({"product_id": [456, 8], "ts": pd.to_datetime([at(1)] * 2)})
    assert plain(offline.store.point_in_time(numeric, groups[:1], "ts")["product_details:price"]) == [9.5, None]


def test_several_namespaces_keyed_by_different_columns_in_one_lookup(users: OfflineHarness) -> None:
    users.write("user_tiers", pd.DataFrame({"user_id": ["u2"], "tier": ["gold"]}))
    users.write("product_details", pd.DataFrame({"product_id": [7, 7], "event_timestamp": [at(5), at(25)],
                                                 "price": [1.5, 2.5]}))
    groups = [USERS, FeatureGroup("user_tiers", ("tier",), "user_id"),
              FeatureGroup("product_details", ("price",), "product_id", max_age=10)]
    spine = spine_of([("u1", "7", at(26)), ("u2", "7", at(12)), ("u9", "8", at(30)), (None, "7", at(30))],
                     ("user_id", "product_id", "ts"))
    values = users.store.point_in_time(spine, groups, "ts")
    assert plain(values["user_demographics:age"]) == [31, 40, None, None]
    assert plain(values["user_tiers:tier"]) == [None, "gold", None, None]
    assert plain(values["product_details:price"]) == [2.5, 1.5, None, 2.5]
    assert list(values) == [n for g in groups for n in g.qualified_names]


def test_table_without_event_timestamp_is_valid_since_the_beginning_of_time(offline: OfflineHarness) -> None:
    offline.write("product_details", pd.DataFrame({"product_id": [7, 8], "price": [2.0, 3.0]}))
    group = FeatureGroup("product_details", ("price",), "product_id", max_age=1)  # no time: max_age ignored
    spine = spine_of([("7", pd.Timestamp("1970-01-01", tz="UTC")), ("8", at(1e6)), ("9", at(0)), ("7", None)],
                     ("product_id", "ts"))
    assert plain(offline.store.point_in_time(spine, [group], "ts")["product_details:price"]) == [2.0, 3.0, None, None]
    latest = offline.store.read_latest(group)
    assert latest["product_id"].tolist() == ["7", "8"] and latest["price"].tolist() == [2.0, 3.0]


def test_rows_with_a_null_time_are_never_used(offline: OfflineHarness) -> None:
    offline.write("user_demographics", pd.DataFrame({"user_id": ["u1", "u1"], "event_timestamp": [at(10), None],
                                                     "age": [30, 99]}))
    group = FeatureGroup("user_demographics", ("age",), "user_id")
    assert plain(offline.store.point_in_time(spine_of([("u1", at(50))]), [group], "ts")["user_demographics:age"]) \
        == [30]
    assert offline.store.read_latest(group)["age"].tolist() == [30]


def test_empty_and_unusable_spines(users: OfflineHarness) -> None:
    empty = users.store.point_in_time(spine_of([]), [USERS], "ts")
    assert empty["user_demographics:age"].dtype == np.int64 and len(empty["user_demographics:age"]) == 0
    assert len(empty["user_demographics:country"]) == 0
    unusable = users.store.point_in_time(spine_of([(None, at(10)), ("u1", None)]), [USERS], "ts")
    assert plain(unusable["user_demographics:age"]) == [None, None]
    assert unusable["user_demographics:age"].dtype == np.float64
    assert plain(unusable["user_demographics:country"]) == [None, None]


def test_value_dtypes(offline: OfflineHarness) -> None:
    offline.write("user_kinds", pd.DataFrame({
        "user_id": ["u1", "u2"],
        "event_timestamp": [at(0), at(0)],
        "age": [30, 40],
        "score": [0.5, None],
        "vip": [True, False],
        "country": ["KR", None],
        "seen": [at(-5), at(-6)],
        "huge": [2**62, 1],
    }))
    group = FeatureGroup("user_kinds", ("age", "score", "vip", "country", "seen", "huge"), "user_id")
    full = offline.store.point_in_time(spine_of([("u1", at(1)), ("u2", at(1))]), [group], "ts")
    assert [full[name].dtype.kind for name in group.qualified_names] == ["i", "f", "b", "O", "M", "i"]
    assert [full[f"user_kinds:{f}"].dtype for f in ("age", "score", "vip", "country", "huge")] == [
        np.int64, np.float64, np.bool_, object, np.int64]
    assert plain(full["user_kinds:huge"]) == [2**62, 1] and plain(full["user_kinds:country"]) == ["KR", None]
    assert plain(full["user_kinds:seen"]) == [np.datetime64(at(-5).tz_convert(None)),
                                              np.datetime64(at(-6).tz_convert(None))]
    holes = offline.store.point_in_time(spine_of([("u1", at(1)), ("u3", at(1))]), [group], "ts")
    assert holes["user_kinds:age"].dtype == np.float64 and plain(holes["user_kinds:age"]) == [30, None]
    assert holes["user_kinds:vip"].tolist() == [True, None]
    assert holes["user_kinds:huge"].tolist() == [2**62, None]  # beyond 2**53: exact Python ints, not floats
    assert holes["user_kinds:seen"].dtype.kind == "M" and pd.isna(holes["user_kinds:seen"][1])
    empty = offline.store.point_in_time(spine_of([]), [group], "ts")
    assert [empty[name].dtype.kind for name in group.qualified_names] == ["i", "f", "b", "O", "M", "i"]


def test_read_latest_takes_the_newest_row_per_entity(offline: OfflineHarness) -> None:
    offline.write("user_demographics", pd.DataFrame({
        "user_id": ["u2", "u1", "u1", "u3", None],
        "event_timestamp": [at(10), at(20), at(10), at(30), at(40)],
        "age": [40, 31, 30, None, 99],
        "country": ["FR", "US", "KR", "DE", "XX"],
    }))
    latest = offline.store.read_latest(USERS)
    assert list(latest.columns) == ["user_id", "age", "country"]
    assert latest["user_id"].tolist() == ["u1", "u2", "u3"]  # a row without an entity is no entity's
    assert latest["age"].dtype == np.float64 and plain(latest["age"]) == [31, 40, None]
    assert plain(latest["country"]) == ["US", "FR", "DE"]


# --- errors name what was wrong and what the store has ----------------------------------------------

def test_unknown_namespace_names_the_store_and_what_it_has(users: OfflineHarness) -> None:
    with pytest.raises(FeatureNotFoundError) as info:
        users.store.point_in_time(spine_of([("u1", at(10))]), [FeatureGroup("user_profile", ("age",), "user_id")],
                                  "ts")
    message = str(info.value)
    assert isinstance(info.value, KeyError)
    assert "'user_profile'" in message and "user_demographics" in message and users.location in message
    with pytest.raises(FeatureNotFoundError, match="user_demographics"):
        users.store.list_features("nope")


def test_unknown_feature_lists_what_the_namespace_has(users: OfflineHarness) -> None:
    group = FeatureGroup("user_demographics", ("age", "gender"), "user_id")
    with pytest.raises(FeatureNotFoundError, match=r"'gender'.*the namespace has: age, country"):
        users.store.point_in_time(spine_of([("u1", at(10))]), [group], "ts")
    with pytest.raises(FeatureNotFoundError, match="the namespace has: age, country"):
        users.store.read_latest(group)
    with pytest.raises(FeatureNotFoundError, match="'event_timestamp'"):
        users.store.read_latest(FeatureGroup("user_demographics", ("event_timestamp",), "user_id"))
    assert users.store.list_features("user_demographics") == ["age", "country"]


def test_entity_column_missing_from_the_table_names_its_columns(users: OfflineHarness) -> None:
    group = FeatureGroup("user_demographics", ("age",), "customer_id")
    spine = spine_of([("u1", at(10))], ("customer_id", "ts"))
    with pytest.raises(StoreError, match=r"user_demographics.*no entity column 'customer_id'.*user_id, "
                                         r"event_timestamp, age"):
        users.store.point_in_time(spine, [group], "ts")


def test_spine_errors_name_the_column(users: OfflineHarness) -> None:
    spine = spine_of([("u1", at(10))])
    with pytest.raises(SpineError, match=r"'when'.*user_id, ts"):
        users.store.point_in_time(spine, [USERS], "when")
    with pytest.raises(SpineError, match="'user_id'"):
        users.store.point_in_time(spine.drop(columns="user_id"), [USERS], "ts")
    with pytest.raises(SpineError, match="'ts' cannot be read as times"):
        users.store.point_in_time(spine.assign(ts=["not a time"]), [USERS], "ts")
