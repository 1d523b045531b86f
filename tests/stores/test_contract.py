"""The store contract (CONTRACT 4), one test body run against every store.

Each test takes the ``store`` fixture (tests/stores/conftest.py; the harness is in
tests/support/stores.py), parametrized over Redis, a private Redis Cluster and the
embedded parquet store. The offline stores have theirs in test_offline_contract.py.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fs_augment.errors import FeatureNotFoundError, SpineError
from fs_augment.keys import entity_to_text
from fs_augment.recipe import parse_feature_specs
from tests.support.stores import StoreHarness

SEED_SPECS = [
    {"namespace": "user_demographics", "features": ["age", "country_code"]},
    {"namespace": "user_purchase_summary", "features": ["ltv"]},
    {"namespace": "product_details", "features": ["price"]},
]


def _cells(column: pd.Series) -> list[Any]:
    """A frame column's cells, missing ones (None, NaN, NA: pandas' choice by dtype) as None."""
    return [None if _missing(v) else v for v in column.tolist()]


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def test_seed_examples_read_back_as_written(store: StoreHarness) -> None:
    store.write_seed()
    got = store.adapter.online_get_features(
        {"user_id": "user123", "session_id": "session789"},
        [{"namespace": "user_demographics", "features": ["country_code", "age"]},
         {"namespace": "user_purchase_summary", "features": ["ltv"]},
         {"namespace": "session_summary", "features": ["click_count"]}],
    )
    assert got == {"user_demographics:country_code": "KR", "user_demographics:age": 34,
                   "user_purchase_summary:ltv": 1250.5, "session_summary:click_count": 15}
    assert type(got["user_demographics:age"]) is int
    assert type(got["user_purchase_summary:ltv"]) is float


def test_batch_get_features_returns_the_seed_shape(store: StoreHarness) -> None:
    store.write_seed()
    got = store.adapter.batch_get_features([{"user_id": "user123", "product_id": "product456"}], SEED_SPECS)
    assert got == {
        "user123": {
            "user_demographics:age": 34,
            "user_demographics:country_code": "KR",
            "user_purchase_summary:ltv": 1250.5,
        },
        "product456": {"product_details:price": 99.99},
    }


def test_online_get_features_returns_the_seed_shape(store: StoreHarness) -> None:
    store.write_seed()
    got = store.adapter.online_get_features(
        {"user_id": "user123", "product_id": "product456"},
        [{"feature_namespace": "user_demographics", "features": ["age", "country_code"]},
         {"feature_namespace": "product_details", "features": ["price"]}],
    )
    assert got == {"user_demographics:age": 34, "user_demographics:country_code": "KR",
                   "product_details:price": 99.99}
    assert list(got) == ["user_demographics:age", "user_demographics:country_code", "product_details:price"]


def test_absent_keys_read_as_none(store: StoreHarness) -> None:
    store.write_seed()
    got = store.adapter.batch_get_features([{"user_id": "user123"}, {"user_id": "nobody"}],
                                           [{"namespace": "user_demographics", "features": ["age"]}])
    assert got == {"user123": {"user_demographics:age": 34}, "nobody": {"user_demographics:age": None}}
    online = store.adapter.online_get_features({"user_id": "nobody"}, SEED_SPECS[:2])
    assert online == {"user_demographics:age": None, "user_demographics:country_code": None,
                      "user_purchase_summary:ltv": None}


def test_null_entities_are_not_looked_up(store: StoreHarness) -> None:
    store.write_seed()
    specs = [{"namespace": "user_demographics", "features": ["age"]}]
    spine = [{"user_id": None}, {"user_id": float("nan")}, {"user_id": pd.NA}, {"user_id": "user123"}]
    assert store.adapter.batch_get_features(spine, specs) == {"user123": {"user_demographics:age": 34}}
    assert store.adapter.online_get_features({"user_id": None}, specs) == {"user_demographics:age": None}
    frame = store.adapter.get_feature_frame(pd.DataFrame({"user_id": [None, "user123", None]}), specs)
    assert _cells(frame["user_demographics:age"]) == [None, 34, None]


def test_get_feature_frame_keeps_the_spine_index_and_order(store: StoreHarness) -> None:
    store.write_seed()
    spine = pd.DataFrame(
        {"user_id": ["user123", "nobody", "user123", None], "product_id": ["product456"] * 4},
        index=pd.Index(["r9", "r1", "r9", "r0"], name="row"),
    )
    frame = store.adapter.get_feature_frame(spine, SEED_SPECS)
    assert frame.index.equals(spine.index)
    assert list(frame.columns) == ["user_demographics:age", "user_demographics:country_code",
                                   "user_purchase_summary:ltv", "product_details:price"]
    assert _cells(frame["user_demographics:age"]) == [34, None, 34, None]
    assert _cells(frame["user_demographics:country_code"]) == ["KR", None, "KR", None]
    assert _cells(frame["product_details:price"]) == [99.99] * 4


def test_missing_entity_column_names_the_spine_columns(store: StoreHarness) -> None:
    spine = pd.DataFrame({"customer": ["user123"], "when": [1]})
    with pytest.raises(SpineError) as info:
        store.adapter.get_feature_frame(spine, SEED_SPECS[:1])
    message = str(info.value)
    assert "'user_id'" in message and "customer" in message and "when" in message
    assert "entity_column" in message
    with pytest.raises(SpineError, match="product_id"):
        store.adapter.online_get_features({"user_id": "user123"}, SEED_SPECS)


def test_unknown_feature_lists_what_the_namespace_has(store: StoreHarness) -> None:
    store.write_seed()
    groups = parse_feature_specs([{"namespace": "user_demographics", "features": ["age", "favourite_colour"]}])
    spine = pd.DataFrame({"user_id": ["user123", "nobody"]})
    with pytest.raises(FeatureNotFoundError) as info:
        store.adapter.lookup_columns(spine, groups, verify=True)
    message = str(info.value)
    assert "favourite_colour" in message and "user_demographics" in message
    assert "age" in message and "country_code" in message


def test_known_but_absent_feature_passes_verification(store: StoreHarness) -> None:
    store.write_seed()
    groups = parse_feature_specs([{"namespace": "user_demographics", "features": ["age"]}])
    values = store.adapter.lookup_columns(pd.DataFrame({"user_id": ["nobody"]}), groups, verify=True)
    assert list(values["user_demographics:age"]) == [None]


# --- property: what the writer writes is what every lookup reads ---------------------------------

_NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,11}", fullmatch=True)
_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(":{}"), max_size=8)
_FLOAT_SAFE = 2**53

_VALUES = {
    "int": (st.integers(-_FLOAT_SAFE, _FLOAT_SAFE), "Int64"),
    "float": (st.floats(allow_nan=False, allow_infinity=False), "Float64"),
    "text": (_TEXT, "object"),
    "bool": (st.booleans(), "boolean"),
    "list": (st.lists(st.integers(-1000, 1000), max_size=3), "list"),
}


@st.composite
def namespaces(draw: st.DrawFn) -> list[dict[str, Any]]:
    """1-3 namespaces, each with an entity column, typed feature columns and rows."""
    names = draw(st.lists(_NAME, min_size=1, max_size=3, unique=True))
    out = []
    for i, name in enumerate(names):
        entity_kind = draw(st.sampled_from(["text", "int"]))
        entity_strategy = _TEXT if entity_kind == "text" else st.integers(-_FLOAT_SAFE, _FLOAT_SAFE)
        entities = draw(st.lists(entity_strategy, min_size=1, max_size=5, unique=True))
        features = draw(st.lists(_NAME.filter(lambda f: f != "event_timestamp"), min_size=1, max_size=3,
                                 unique=True))
        columns = {}
        for feature in features:
            strategy, dtype = _VALUES[draw(st.sampled_from(sorted(_VALUES)))]
            cells = draw(st.lists(st.none() | strategy, min_size=len(entities), max_size=len(entities)))
            columns[feature] = (cells, dtype)
        out.append({"namespace": name, "entity_column": f"entity{i}_id", "entity_kind": entity_kind,
                    "entities": entities, "columns": columns})
    return out


def _frame(space: dict[str, Any]) -> pd.DataFrame:
    data: dict[str, Any] = {space["entity_column"]: pd.Series(
        space["entities"], dtype="object" if space["entity_kind"] == "text" else "int64")}
    for feature, (cells, dtype) in space["columns"].items():
        data[feature] = pd.Series(cells, dtype="object" if dtype == "list" else dtype)
    return pd.DataFrame(data)


def _spine_value(entity: Any, style: int) -> Any:
    """The entity as a spine would carry it: as is, as an integral float, or as text."""
    if isinstance(entity, str) or style == 0:
        return entity
    return float(entity) if style == 1 else str(entity)


def _same(got: Any, expected: Any) -> bool:
    if isinstance(expected, float) and isinstance(got, float):
        return got == expected or (math.isnan(got) and math.isnan(expected))
    return type(got) is type(expected) and got == expected


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spaces=namespaces(), data=st.data())
def test_lookups_return_exactly_what_was_written(store: StoreHarness, spaces: list[dict[str, Any]],
                                                 data: st.DataObject) -> None:
    store.reset()
    for space in spaces:
        store.write(space["namespace"], _frame(space), entity_column=space["entity_column"])
    specs = [{"namespace": s["namespace"], "features": list(s["columns"]), "entity_column": s["entity_column"]}
             for s in spaces]

    rows = []
    for _ in range(data.draw(st.integers(1, 4), label="rows")):
        row = {}
        for space in spaces:
            known = st.tuples(st.sampled_from(space["entities"]), st.integers(0, 2)).map(lambda t: _spine_value(*t))
            row[space["entity_column"]] = data.draw(known | st.none() | st.just("absent-entity"), label="entity")
        rows.append(row)

    def expected(space: dict[str, Any], entity: Any, feature: str) -> Any:
        text = entity_to_text(entity)
        for written, cell in zip(space["entities"], space["columns"][feature][0], strict=True):
            if entity_to_text(written) == text:
                return cell
        return None

    # online: one row at a time
    for row in rows:
        got = store.adapter.online_get_features(row, specs)
        want = {f"{s['namespace']}:{f}": expected(s, row[s["entity_column"]], f) for s in spaces for f in s["columns"]}
        assert list(got) == list(want)
        assert all(_same(got[k], want[k]) for k in want), (got, want)

    # batch: a feature absent for every entity of the call that the store does not know at all is an error
    # (Redis knows a feature by its keys, the embedded store by its parquet columns)
    def unknown(space: dict[str, Any], feature: str) -> bool:
        keyed = [row[space["entity_column"]] for row in rows if row[space["entity_column"]] is not None]
        known = store.kind == "local" or any(cell is not None for cell in space["columns"][feature][0])
        return bool(keyed) and not known and all(expected(space, e, feature) is None for e in keyed)

    spine = pd.DataFrame(rows, index=pd.Index([f"row{len(rows) - i}" for i in range(len(rows))]))
    if any(unknown(space, feature) for space in spaces for feature in space["columns"]):
        with pytest.raises(FeatureNotFoundError):
            store.adapter.batch_get_features(rows, specs)
        with pytest.raises(FeatureNotFoundError):
            store.adapter.get_feature_frame(spine, specs)
        return

    # batch: the contract's {entity: {name: value}} shape
    got_batch = store.adapter.batch_get_features(rows, specs)
    want_batch: dict[str, dict[str, Any]] = {}
    for space in spaces:
        for row in rows:
            entity = row[space["entity_column"]]
            if entity is None:
                continue
            for feature in space["columns"]:
                want_batch.setdefault(entity_to_text(entity), {})[f"{space['namespace']}:{feature}"] = \
                    expected(space, entity, feature)
    assert got_batch.keys() == want_batch.keys()
    for entity, values in want_batch.items():
        assert got_batch[entity].keys() == values.keys()
        assert all(_same(got_batch[entity][k], v) for k, v in values.items()), (entity, got_batch[entity], values)

    # DataFrame: aligned with the spine's rows and index
    frame = store.adapter.get_feature_frame(spine, specs)
    assert frame.index.equals(spine.index)
    for space in spaces:
        for feature in space["columns"]:
            column = _cells(frame[f"{space['namespace']}:{feature}"])
            want_column = [expected(space, row[space["entity_column"]], feature) for row in rows]
            assert all(_same(g, w) for g, w in zip(column, want_column, strict=True)), (column, want_column)


def test_get_feature_frame_keeps_list_values(store: StoreHarness) -> None:
    store.write("user_scores", pd.DataFrame({"user_id": ["u1", "u2"], "recent": [[1, 2], [3, 4]]}))
    specs = [{"namespace": "user_scores", "features": ["recent"]}]
    one = store.adapter.get_feature_frame(pd.DataFrame({"user_id": ["u1"]}), specs)
    assert one["user_scores:recent"].tolist() == [[1, 2]]
    many = store.adapter.get_feature_frame(pd.DataFrame({"user_id": ["u2", "u1", "u9"]}), specs)
    assert _cells(many["user_scores:recent"]) == [[3, 4], [1, 2], None]


# --- event times and max_age (CONTRACT 4.5) ---------------------------------------------------------

NOW = pd.Timestamp("2026-03-01T12:00:00", tz="UTC")


def _timed_frame() -> pd.DataFrame:
    """Users whose latest rows are 2 days, exactly 1 day and 1 hour old at NOW (older rows first)."""
    return pd.DataFrame({
        "user_id": ["old", "exact", "fresh", "fresh"],
        "event_timestamp": [NOW - pd.Timedelta(days=2), NOW - pd.Timedelta(days=1),
                            NOW - pd.Timedelta(days=3), NOW - pd.Timedelta(hours=1)],
        "age": [70, 50, 19, 20],
        "country_code": ["KR", "DE", "JP", "US"],
    })


def test_max_age_answers_values_older_than_it_as_missing(store: StoreHarness) -> None:
    store.write("user_demographics", _timed_frame())
    store.write("product_details", pd.DataFrame({"product_id": ["p1"], "price": [9.5]}))  # no times: no age
    store.adapter.clock = lambda: NOW.value
    specs = [{"namespace": "user_demographics", "features": ["age", "country_code"], "max_age": "1d"},
             {"namespace": "product_details", "features": ["price"], "max_age": 60}]
    online = {user: store.adapter.online_get_features({"user_id": user, "product_id": "p1"}, specs)
              for user in ("old", "exact", "fresh", "nobody")}
    assert online["old"] == {"user_demographics:age": None, "user_demographics:country_code": None,
                             "product_details:price": 9.5}
    assert online["exact"] == {"user_demographics:age": 50, "user_demographics:country_code": "DE",
                               "product_details:price": 9.5}  # exactly max_age old still counts
    assert online["fresh"]["user_demographics:age"] == 20
    assert online["nobody"]["user_demographics:age"] is None

    rows = [{"user_id": u, "product_id": "p1"} for u in ("old", "exact", "fresh", "nobody")]
    batch = store.adapter.batch_get_features(rows, specs)
    assert {u: batch[u]["user_demographics:age"] for u in ("old", "exact", "fresh", "nobody")} == {
        "old": None, "exact": 50, "fresh": 20, "nobody": None}
    assert batch["p1"] == {"product_details:price": 9.5}
    frame = store.adapter.get_feature_frame(pd.DataFrame(rows), specs)
    assert _cells(frame["user_demographics:country_code"]) == [None, "DE", "US", None]

    stale = store.adapter.metrics.snapshot()
    assert stale["stale"] == {"online": 1, "batch": 2}  # one online lookup of "old", two batch calls
    assert stale["stale_by_namespace"] == {"user_demographics": 3}

    store.adapter.clock = lambda: (NOW - pd.Timedelta(days=3)).value  # before every write: nothing is old
    assert store.adapter.online_get_features({"user_id": "old", "product_id": "p1"}, specs)[
        "user_demographics:age"] == 70


def test_without_max_age_old_values_are_served(store: StoreHarness) -> None:
    store.write("user_demographics", _timed_frame())
    store.adapter.clock = lambda: (NOW + pd.Timedelta(days=365)).value
    got = store.adapter.online_get_features({"user_id": "old"}, [{"namespace": "user_demographics",
                                                                  "features": ["age"]}])
    assert got == {"user_demographics:age": 70}
    assert store.adapter.metrics.snapshot()["stale"] == {}


def test_the_event_time_is_no_feature(store: StoreHarness) -> None:
    store.write("user_demographics", _timed_frame())
    with pytest.raises(FeatureNotFoundError) as info:
        store.adapter.batch_get_features([{"user_id": "old"}], [{"namespace": "user_demographics",
                                                                 "features": ["agee"]}])
    assert "age, country_code" in str(info.value) and "event_timestamp" not in str(info.value)


def test_the_row_reader_reads_what_fetch_reads(store: StoreHarness) -> None:
    """The served request's one-row reader (OnlineStore.row_reader) answers as fetch does, flat."""
    from fs_augment.stores.base import FeatureRequest

    store.write_seed()
    shape = [("user_demographics", ("age", "country_code"), "user_id", 0),
             ("product_details", ("price",), "product_id", 1),
             ("user_purchase_summary", ("ltv",), "user_id", 0)]
    reader = store.adapter.online.row_reader(shape)
    for texts in (["user123", "product456"], ["nobody", "product456"], ["user123", "none"]):
        fetched = store.adapter.online.fetch(
            [FeatureRequest(namespace, features, [texts[slot]], column) for namespace, features, column, slot in shape],
            online=True)
        assert reader(texts) == [values[0] for request in fetched for values in request]
    assert reader(["user123", "product456"]) == [34, "KR", 99.99, 1250.5]
