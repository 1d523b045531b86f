"""The one-row serving path (fs_augment._serving) gives exactly what the general path gives.

A served request takes the block-built path for one row; a batch transform of the same row takes
the general one (pd.DataFrame, dtypes.coerce). For any stored values — plain, missing, NaN,
infinite, beyond int64, of another kind — and with or without defaults, both must give the same
frame: labels, dtypes, values, index.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fs_augment import FeatureStoreAugmenter
from fs_augment._compat import create_dataframe_from_blocks
from fs_augment._serving import column_arrays
from fs_augment.connections import close_all
from fs_augment.keys import encode_value, feature_key

NAMESPACE = "kinds"
#: feature -> (a training value that pins its kind, the recipe default in the "defaults" variant)
FEATURES = {"x": (1.5, -1.0), "n": (3, 0), "flag": (True, False), "name": ("KR", "unknown")}
raw_values = st.one_of(
    st.none(),  # absent key
    st.sampled_from([b"1.5", b"-0.0", b"7", b"true", b"false", b'"KR"', b'""', b"KR", b"NaN", b"1e400", b"-1e400",
                     b"[1, 2]", b'{"a": 1}', b"null", b"18446744073709551616", b"9223372036854775807",
                     b"-9223372036854775808", b"2.5e18", b"\xff\xfe"]),
    st.integers(-(2**70), 2**70).map(lambda v: str(v).encode()),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda v: repr(v).encode()),
    st.text(max_size=4).map(lambda v: encode_value(v).encode()),
)


def recipe(defaults: bool) -> dict[str, Any]:
    group: dict[str, Any] = {"feature_namespace": NAMESPACE, "features": list(FEATURES), "entity_column": "id"}
    if defaults:
        group["defaults"] = {f: d for f, (_, d) in FEATURES.items()}
    return {"augmenter": {"features": [group]}}


@pytest.fixture
def fitted(redis_client, redis_config_dir) -> dict[bool, FeatureStoreAugmenter]:
    """An augmenter fitted on plain values, with and without defaults (the store is written per example)."""
    config_dir = redis_config_dir
    for feature, (value, _) in FEATURES.items():
        redis_client.set(feature_key(NAMESPACE, feature, "train"), encode_value(value))
    close_all()
    out = {}
    for defaults in (False, True):
        aug = FeatureStoreAugmenter(recipe(defaults), env="test", config_dir=str(config_dir), mode="online")
        out[defaults] = aug.fit(pd.DataFrame({"id": ["train"], "other": [1.0]}))
        assert out[defaults].feature_kinds_ == {"kinds__x": "float", "kinds__n": "int", "kinds__flag": "bool",
                                                "kinds__name": "str"}
        # the block path is on for these kinds, where pandas builds frames from blocks (pandas 3)
        assert (out[defaults]._layout().row is not None) == (create_dataframe_from_blocks is not None)
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raws=st.fixed_dictionaries({f: raw_values for f in FEATURES}), defaults=st.booleans(),
       label=st.sampled_from([0, 7, "r", -1]))
def test_the_one_row_path_equals_the_general_path(redis_client, fitted, raws, defaults, label):
    aug = fitted[defaults]
    for feature, raw in raws.items():
        key = feature_key(NAMESPACE, feature, "e")
        if raw is None:
            redis_client.delete(key)
        else:
            redis_client.set(key, raw)
    X = pd.DataFrame({"id": ["e"], "other": [2.5]}, index=[label])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        served = aug.transform(X)  # online, one row: the serving path
        aug.set_params(mode="batch")
        try:
            general = aug.transform(X)  # the same lookup, assembled by the general path
        finally:
            aug.set_params(mode="online")
    pd.testing.assert_frame_equal(served, general)
    assert served.index.tolist() == [label]


FRAMES = {
    "str": pd.DataFrame({"a": ["u1"], "b": ["p1"]}),
    "object": pd.DataFrame({"a": pd.Series(["u1"], dtype=object), "b": pd.Series([["x"]], dtype=object)}),
    "numbers": pd.DataFrame({"i": [1], "f": [2.5], "b": [True], "u": np.array([3], dtype="uint8")}),
    "nullable": pd.DataFrame({"I": pd.array([1], dtype="Int64"), "s": pd.array(["x"], dtype="string"),
                              "B": pd.array([None], dtype="boolean")}),
    "times": pd.DataFrame({"t": pd.to_datetime(["2024-01-01"]), "tz": pd.to_datetime(["2024-01-01"], utc=True),
                           "d": pd.to_timedelta([1], unit="s")}),
    "category": pd.DataFrame({"c": pd.Categorical(["a"]), "x": [1]}),
    "consolidated": pd.DataFrame(np.arange(6).reshape(2, 3), columns=["a", "b", "c"]),
    "duplicated labels": pd.DataFrame([[1, "x"]], columns=["a", "a"]),
    "non-string labels": pd.DataFrame({0: [1], 1.5: ["x"], ("t", 1): [None]}),
    "a missing Arrow text label": pd.DataFrame([[1, 2]],
                                               columns=pd.Index(pd.array(["a", None], dtype="string[pyarrow]"))),
    "Arrow text labels": pd.DataFrame([[1, 2]], columns=pd.Index(pd.array(["a", "b"], dtype="string[pyarrow]"))),
}


@pytest.mark.parametrize("name", list(FRAMES))
def test_column_arrays_are_what_items_gives(name):
    """Pins the behaviour of pandas' DataFrame._get_column_array that column_arrays relies on."""
    frame = FRAMES[name]
    got = column_arrays(frame)
    want = [(label, series.array) for label, series in frame.items()]
    assert [label for label, _ in got] == [label for label, _ in want]
    for (_, array), (_, expected) in zip(got, want, strict=True):
        assert type(array) is type(expected)
        assert array.dtype == expected.dtype
        pd.testing.assert_extension_array_equal(array, expected)


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan, 2.5])
def test_the_one_row_path_equals_the_general_path_for_parquet_floats(tmp_path, value):
    """Infinities reach the serving path only from a parquet float column (Redis text decodes them as invalid)."""
    from fs_augment.writer import write_parquet_namespace

    write_parquet_namespace(pd.DataFrame({"id": ["train", "e"], "x": [1.5, value],
                                          "event_timestamp": pd.Timestamp("2024-01-01", tz="UTC")}),
                            NAMESPACE, tmp_path / "f")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "local.yaml").write_text(
        f"feature_store:\n  provider: local\n  connection_info:\n    offline_store_uri: 'file://{tmp_path / 'f'}'\n")
    group = {"feature_namespace": NAMESPACE, "features": ["x"], "entity_column": "id"}
    aug = FeatureStoreAugmenter({"augmenter": {"features": [group]}}, env="local",
                                config_dir=str(tmp_path / "config"), mode="online")
    aug.fit(pd.DataFrame({"id": ["train"]}))
    X = pd.DataFrame({"id": ["e"]}, index=[3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        served = aug.transform(X)
        general = aug.set_params(mode="batch").transform(X)
    pd.testing.assert_frame_equal(served, general)
