"""Every feature lands on its own row, whatever the spine's index, for every pinned kind.

A transform's output keeps the spine's index and row order; each feature value must be the one
of the row's own entity. This is checked cell by cell against the data that was written, for
float, int (float64 and nullable), bool, str and object features (lists, and mixed JSON values),
over shuffled, string, duplicated and non-contiguous indexes, through the batch, point-in-time,
online and one-row online paths.
"""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fs_augment import FeatureStoreAugmenter
from fs_augment.connections import close_all
from fs_augment.errors import FeatureQualityWarning
from fs_augment.keys import encode_value, feature_key
from fs_augment.writer import write_parquet_namespace

NAMESPACE = "user_demographics"
#: feature -> the kind the training lookup should pin it to
KINDS = {"score": "float", "age": "int", "active": "bool", "country": "str", "tags": "object"}
MIXED = "anything"  # Redis only: JSON values of several types in one feature (pinned object)
LATE = pd.Timestamp("2030-01-01", tz="UTC")

entity_ids = st.text(alphabet="abcdefghijk0123456789:", min_size=1, max_size=6)
value_of = {
    "score": st.one_of(st.none(), st.floats(-1e9, 1e9, allow_nan=False)),
    "age": st.one_of(st.none(), st.integers(-(2**40), 2**40)),
    "active": st.one_of(st.none(), st.booleans()),
    "country": st.one_of(st.none(), st.sampled_from(["KR", "US", "ü:ñ", "x y"])),
    "tags": st.one_of(st.none(), st.lists(st.sampled_from(["a", "b", "c"]), max_size=3)),
    MIXED: st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=3), st.lists(st.integers(0, 3), max_size=2)),
}
rows_of = st.fixed_dictionaries(value_of)


def indexes(n: int) -> st.SearchStrategy[pd.Index]:
    """An index of ``n`` labels that is not 0..n-1 in order."""
    return st.one_of(
        st.permutations(list(range(n))).map(pd.Index),
        st.just(pd.Index([f"row{i}" for i in range(n)])),
        st.just(pd.Index([i % 2 for i in range(n)])),  # duplicated labels
        st.just(pd.Index([7 * i + 3 for i in range(n)])),  # non-contiguous
        st.just(pd.RangeIndex(10, 10 + n)),
    )


@st.composite
def cases(draw: Any) -> tuple[dict[str, dict[str, Any]], list[str], pd.Index, bool]:
    data = draw(st.dictionaries(entity_ids, rows_of, min_size=1, max_size=5))
    # every feature has at least one value, so the fit can pin its kind
    first = next(iter(data))
    for feature, strategy in value_of.items():
        if all(row[feature] is None for row in data.values()):
            data[first][feature] = draw(strategy.filter(lambda v: v is not None))
    picks = draw(st.lists(st.sampled_from([*data, "absent"]), min_size=1, max_size=8))
    return data, picks, draw(indexes(len(picks))), draw(st.booleans())


def expected(value: Any, kind: str, nullable: bool) -> Any:
    """The cell the augmenter should produce for a stored ``value`` of ``kind`` (None = missing)."""
    if value is None:
        return None
    if kind in ("int", "bool") and not nullable:
        return float(value)
    if kind == "float":
        return float(value)
    return value


def check_cells(out: pd.DataFrame, spine: pd.DataFrame, data: dict[str, dict[str, Any]],
                features: dict[str, str], nullable: bool) -> None:
    assert out.index.equals(spine.index)
    for feature, kind in features.items():
        column = out[f"{NAMESPACE}__{feature}"]
        for position, entity in enumerate(spine["user_id"]):
            cell = column.iloc[position]
            want = expected(data.get(entity, {}).get(feature), kind, nullable)
            where = f"row {position} (label {spine.index[position]!r}, entity {entity!r}), feature {feature}"
            if want is None:
                assert not isinstance(cell, list) and pd.isna(cell), f"{where}: {cell!r}, want a missing value"
            elif kind == "object":
                assert type(cell) is type(want) and cell == want, f"{where}: {cell!r}, want {want!r}"
            else:
                assert not pd.isna(cell) and cell == want, f"{where}: {cell!r}, want {want!r}"


def transforms(aug: FeatureStoreAugmenter, spine: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The spine through every path: batch (point in time where the spine has times), online, one row at a time."""
    out = {"batch": aug.transform(spine)}
    aug.set_params(mode="online")
    try:
        out["online"] = aug.transform(spine)
        out["online rows"] = pd.concat([aug.transform(spine.iloc[[i]]) for i in range(len(spine))])
    finally:
        aug.set_params(mode="batch")
    return out


def run_case(config_dir: Any, env: str, data: dict[str, dict[str, Any]], picks: list[str], index: pd.Index,
             nullable: bool, features: dict[str, str], timestamp: bool) -> None:
    recipe: dict[str, Any] = {"augmenter": {"features": [{"feature_namespace": NAMESPACE, "features": [*features]}]}}
    if timestamp:
        recipe["augmenter"]["timestamp_column"] = "ts"
    fit_spine = pd.DataFrame({"user_id": list(data)})
    spine = pd.DataFrame({"user_id": picks}, index=index)
    if timestamp:
        fit_spine["ts"] = LATE
        spine["ts"] = LATE
    close_all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FeatureQualityWarning)
        aug = FeatureStoreAugmenter(recipe, env=env, config_dir=str(config_dir), mode="batch",
                                    nullable_dtypes=nullable).fit(fit_spine)
        pinned = {name.split("__", 1)[1]: kind for name, kind in aug.feature_kinds_.items()}
        # the point-in-time join reads ints with gaps as floats; every other kind is pinned as written
        assert pinned == {**features, **{f: "float" for f in features if timestamp and pinned[f] == "float"}}
        results = transforms(aug, spine)
    for path, out in results.items():
        try:
            check_cells(out, spine, data, pinned, nullable)
        except AssertionError as exc:
            raise AssertionError(f"{path} path: {exc}") from None
        pd.testing.assert_series_equal(out.dtypes, results["batch"].dtypes, obj=f"{path} dtypes")
    close_all()


def parquet_frame(data: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The namespace's offline table: one row per entity, columns of the kinds' natural dtypes."""
    entities = list(data)
    column = {feature: [data[e][feature] for e in entities] for feature in KINDS}
    return pd.DataFrame({
        "user_id": entities,
        "event_timestamp": pd.Timestamp("2024-01-01", tz="UTC"),
        "score": pd.array(column["score"], dtype="Float64"),
        "age": pd.array(column["age"], dtype="Int64"),
        "active": pd.array(column["active"], dtype="boolean"),
        "country": pd.array(column["country"], dtype="string"),
        "tags": pd.Series(column["tags"], dtype=object),
    })


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases(), timestamp=st.booleans())
def test_local_store_puts_every_kind_on_its_own_row(tmp_path_factory, case, timestamp):
    data, picks, index, nullable = case
    folder = tmp_path_factory.mktemp("features")
    write_parquet_namespace(parquet_frame(data), NAMESPACE, folder)
    config_dir = tmp_path_factory.mktemp("project") / "config"
    config_dir.mkdir()
    (config_dir / "local.yaml").write_text(
        f"feature_store:\n  provider: local\n  connection_info:\n    offline_store_uri: 'file://{folder}'\n")
    run_case(config_dir, "local", data, picks, index, nullable, KINDS, timestamp)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_redis_puts_every_kind_on_its_own_row(redis_client, redis_config_dir, case):
    data, picks, index, nullable = case
    redis_client.flushdb()
    pipe = redis_client.pipeline(transaction=False)
    for entity, row in data.items():
        for feature, value in row.items():
            if value is not None:
                pipe.set(feature_key(NAMESPACE, feature, entity), encode_value(value))
    pipe.execute()
    features = dict(KINDS)
    kinds = {type(row[MIXED]) for row in data.values() if row[MIXED] is not None}
    if len(kinds) > 1 or kinds == {list}:
        features[MIXED] = "object"
    else:
        for row in data.values():
            row[MIXED] = None
    run_case(redis_config_dir, "test", data, picks, index, nullable, features, timestamp=False)


def test_the_reported_reproducer(tmp_path):
    folder = tmp_path / "local_features"
    pd.DataFrame({"user_id": ["u1", "u2", "u3"], "tags": [["a"], ["b", "c"], []], "age": [10, 20, 30]}
                 ).to_parquet(folder.mkdir() or folder / "user_demographics.parquet", index=False)
    config = tmp_path / "config"
    config.mkdir()
    (config / "local.yaml").write_text(
        f"feature_store:\n  provider: local\n  connection_info:\n    offline_store_uri: 'file://{folder}'\n")
    aug = FeatureStoreAugmenter({"augmenter": {"type": "feature_store", "features": [
        {"feature_namespace": "user_demographics", "features": ["tags", "age"]}]}}, env="local", config_dir=str(config))
    X = pd.DataFrame({"user_id": ["u1", "u2", "u3"]})
    aug.fit(X)
    out = aug.transform(X.iloc[[2, 0, 1]])
    assert out["user_demographics__tags"].tolist() == [[], ["a"], ["b", "c"]]
    assert out["user_demographics__age"].tolist() == [30.0, 10.0, 20.0]
    assert aug.transform(X.iloc[[1]])["user_demographics__tags"].tolist() == [["b", "c"]]
