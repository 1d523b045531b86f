"""The differences between the pandas lines (2.2+ and 3.x), and the pandas APIs the package leans on.

Everything here runs on whichever pandas is installed; CI runs the suite on both lines. The
pandas APIs of the one-row serving path are pinned: if a release changes what they give, these
tests say which one, and the general path (plain ``pd.DataFrame``) is the fallback.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fs_augment._serving as serving_module
from fs_augment import FeatureStoreAugmenter, _compat
from fs_augment.connections import close_all
from fs_augment.keys import entity_texts, entity_to_text
from fs_augment.writer import write_parquet_namespace

RECIPE = {"augmenter": {"features": [
    {"feature_namespace": "user_demographics", "features": ["age", "country_code", "score"]}]}}


@pytest.fixture
def local_store(tmp_path: Path) -> str:
    """An embedded local store with one namespace; returns the config folder."""
    folder = tmp_path / "features"
    write_parquet_namespace(pd.DataFrame({
        "user_id": ["u1", "u2", "u3"],
        "age": [34, 51, 19],
        "country_code": ["KR", None, "US"],
        "score": [0.5, 1.5, None],
    }), "user_demographics", folder)
    config = tmp_path / "config"
    config.mkdir()
    (config / "local.yaml").write_text(
        f"feature_store:\n  provider: local\n  connection_info:\n    offline_store_uri: 'file://{folder}'\n")
    close_all()
    yield str(config)
    close_all()


def fitted(config_dir: str) -> FeatureStoreAugmenter:
    return FeatureStoreAugmenter(RECIPE, env="local", config_dir=config_dir).fit(
        pd.DataFrame({"user_id": ["u1", "u2", "u3"]}))


def test_the_pandas_line_is_told_once():
    assert (int(pd.__version__.split(".")[0]) >= 3) == _compat.PANDAS_3
    if _compat.PANDAS_3:
        assert _compat.create_dataframe_from_blocks is not None


def test_text_features_take_the_text_dtype_of_this_pandas(local_store):
    aug = fitted(local_store)
    expected_name = "str" if _compat.PANDAS_3 else "object"
    assert _compat.TEXT_DTYPE_NAME == expected_name == str(_compat.TEXT_DTYPE)
    assert aug.feature_dtypes_["user_demographics__country_code"] == expected_name
    spine = pd.DataFrame({"user_id": ["u2", "u1", "nobody"]})
    outputs = {"batch": aug.transform(spine)}
    aug.set_params(mode="online")
    outputs["online"] = aug.transform(spine)
    outputs["one row"] = pd.concat([aug.transform(spine.iloc[[i]]) for i in range(len(spine))])
    for path, out in outputs.items():
        column = out["user_demographics__country_code"]
        assert column.dtype == _compat.TEXT_DTYPE, path
        values = column.tolist()
        assert values[1] == "KR", path
        # missing text is NaN on both lines (never None or pd.NA, which many estimators refuse)
        assert all(type(v) is float and math.isnan(v) for v in (values[0], values[2])), (path, values)
        assert out["user_demographics__age"].dtype == np.float64, path


@pytest.mark.parametrize("path", ["batch", "online", "one row"])
def test_writing_to_the_output_leaves_the_spine_alone(local_store, path):
    """An output that held the spine's arrays uncopied would write through to the caller's frame, on
    pandas 3 too (copy-on-write tracks Series, not the bare arrays a frame is built from)."""
    spine = pd.DataFrame({"user_id": ["u1", "u3"], "n": [1, 2], "w": [0.5, 0.25]})
    aug = FeatureStoreAugmenter(RECIPE, env="local", config_dir=local_store,
                                mode="batch" if path == "batch" else "online").fit(spine.copy(deep=True))
    if path == "one row":
        spine = spine.iloc[[1]].copy()
    kept = spine.copy(deep=True)
    out = aug.transform(spine)
    out.iloc[0, 0] = "changed"
    out.iloc[0, 1] = 99
    out.iloc[0, 2] = -1.0
    out.loc[out.index[0], "user_demographics__age"] = -1.0
    pd.testing.assert_frame_equal(spine, kept)


@given(st.lists(st.none() | st.text(max_size=5), max_size=6))
def test_one_text_is_text_array_of_one_value(values):
    """``one_text`` (the StringArray constructor on pandas 3, no value checks) gives what
    ``text_array`` (pd.array, every value checked) gives."""
    for value in values:
        fast = _compat.one_text(np.nan if value is None else value)
        general = _compat.text_array(np.array([value], dtype=object))
        assert type(fast) is type(general) and fast.dtype == general.dtype == _compat.TEXT_DTYPE
        assert pd.isna(fast[0]) == pd.isna(general[0]) == (value is None)
        if value is None:
            assert type(general[0]) is float
        else:
            assert fast[0] == general[0] == value


def test_one_text_arrays_are_independent_copies():
    """Pins what one_text's fast path relies on: each array owns its cell, written through to_numpy's view."""
    if _compat.PANDAS_3:
        assert _compat._ONE_TEXT is not None, "this pandas' StringArray.to_numpy(copy=False) is no longer a view"
    first, missing, second = _compat.one_text("KR"), _compat.one_text(np.nan), _compat.one_text("US")
    assert (first[0], second[0]) == ("KR", "US") and pd.isna(missing[0])
    assert list(pd.Series(missing).isna()) == [True] and list(pd.Series(first).isna()) == [False]
    if _compat._ONE_TEXT is not None:
        assert _compat._ONE_TEXT[0] == ""


def test_text_array_turns_every_missing_value_into_nan():
    source = np.array(["a", None, np.nan, pd.NA], dtype=object)
    out = _compat.text_array(source)
    assert out[0] == "a"
    assert all(type(v) is float and math.isnan(v) for v in list(out)[1:])
    assert source[1] is None  # the caller's array is not changed


def test_frame_from_blocks_equals_pd_dataframe(local_store):
    """The block layout the one-row path builds gives the frame pd.DataFrame gives from the same columns;
    where pandas has no ``create_dataframe_from_blocks`` the one-row path is off."""
    build = _compat.create_dataframe_from_blocks
    if build is None:
        assert fitted(local_store)._layout().row is None
        return
    user = pd.array(["u1"], dtype=_compat.TEXT_DTYPE)
    count = pd.array([3], dtype="Int64")
    floats = np.array([[1.5], [np.nan]])
    texts = [_compat.one_text("KR"), _compat.one_text(np.nan)]
    index = pd.Index([7])
    columns = pd.Index(["user_id", "count", "a", "b", "c", "d"])
    blocks: list[tuple[Any, np.ndarray]] = [
        (user, np.array([0], dtype=np.intp)), (count, np.array([1], dtype=np.intp)),
        (floats, np.array([2, 4], dtype=np.intp)),
        (texts[0], np.array([3], dtype=np.intp)), (texts[1], np.array([5], dtype=np.intp)),
    ]
    frame = build(blocks, index=index, columns=columns)
    expected = pd.DataFrame({"user_id": user, "count": count, "a": [1.5], "b": texts[0], "c": [np.nan],
                             "d": texts[1]}, index=index)
    pd.testing.assert_frame_equal(frame, expected)


def test_without_frames_from_blocks_the_one_row_path_gives_the_same_frame(local_store, monkeypatch):
    """The fallback: with no ``create_dataframe_from_blocks`` (pandas 2) a served row is built by the
    general path, with the same labels, dtypes, values and index."""
    aug = fitted(local_store).set_params(mode="online")
    spines = [pd.DataFrame({"user_id": [u]}, index=[5]) for u in ("u1", "u2", "u3", "nobody")]
    fast = [aug.transform(s) for s in spines]
    monkeypatch.setattr(serving_module, "_create_dataframe_from_blocks", None)
    general = fitted(local_store).set_params(mode="online")
    assert general._layout().row is None
    for s, expected in zip(spines, fast, strict=True):
        pd.testing.assert_frame_equal(general.transform(s), expected)


@pytest.mark.parametrize("values", [["u1"], [None], ["ü:1"]])
def test_arrow_text_read_through_its_arrow_data(values):
    """The one-row path reads an Arrow-backed entity through ``__arrow_array__`` (the Arrow protocol)."""
    array = pd.array(values, dtype="string[pyarrow]")
    assert type(array) is pd.arrays.ArrowStringArray
    first = array.__arrow_array__().to_pylist()[0]
    assert entity_to_text(first, "user_id") == entity_texts(array, "user_id")[0]
    assert first == values[0]
