"""The key contract: entity values to text, key building, value codecs."""

from __future__ import annotations

import datetime as dt
import json
import math
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fs_augment._compat import PANDAS_3
from fs_augment.errors import RecipeError, SpineError
from fs_augment.keys import (
    NOT_FINITE,
    NOT_UTF8,
    InvalidValue,
    decode_value,
    decode_values,
    encode_value,
    entity_column_for,
    entity_texts,
    entity_to_text,
    feature_key,
    validate_name,
)
from tests.support.strategies import INT64_MAX, INT64_MIN, entity_values, integral_floats, json_values, names


def assert_same(got: Any, expected: Any) -> None:
    """Equal with the same types all the way down (5 is not 5.0, True is not 1, -0.0 is not 0.0)."""
    assert type(got) is type(expected), (got, expected)
    if isinstance(expected, list):
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert_same(g, e)
    elif isinstance(expected, float):
        assert repr(got) == repr(expected)
    else:
        assert got == expected


def _outcome(function, *args) -> tuple[str, Any]:
    try:
        return "ok", function(*args)
    except SpineError:
        return "error", None


# --- values -----------------------------------------------------------------------------


@given(json_values())
def test_encode_then_decode_is_identity(value):
    text = encode_value(value)
    assert_same(decode_value(text.encode("utf-8")), value)
    assert_same(decode_value(text), value)


@given(st.lists(json_values(), max_size=10))
def test_decode_values_matches_decode_value(values):
    raws = [None if v is None else encode_value(v).encode("utf-8") for v in values]
    decoded = decode_values(raws)
    assert len(decoded) == len(values)
    for got, raw, value in zip(decoded, raws, values, strict=True):
        assert_same(got, decode_value(raw))
        assert_same(got, value)


@given(st.lists(st.one_of(st.none(), st.binary(max_size=30), st.text(max_size=30)), max_size=10))
def test_any_raw_value_decodes_without_error(raws):
    decoded = decode_values(raws)
    for got, raw in zip(decoded, raws, strict=True):
        assert_same(got, decode_value(raw))


@pytest.mark.parametrize("value", ["34", "-7", "1250.50", "true", "null", "[1]", '"quoted"', "NaN", ""])
def test_text_that_looks_like_json_comes_back_as_text(value):
    assert_same(decode_value(encode_value(value).encode()), value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"KR", "KR"),
        (b'"KR"', "KR"),
        (b"34", 34),
        (b"1250.50", 1250.5),
        (b"NaN", "NaN"),
        (b"Infinity", "Infinity"),
        (b"-Infinity", "-Infinity"),
        (b"true", True),
        (b"false", False),
        (b"null", None),
        (b"[1, 2.5, \"a\"]", [1, 2.5, "a"]),
        (b"18446744073709551616", 18446744073709551616),
        (b"-9223372036854775809", -9223372036854775809),
        (b"[18446744073709551616]", [18446744073709551616]),
        (b"", ""),
        (b"KR ", "KR "),
        ("caf\u00e9".encode(), "caf\u00e9"),
        ('"caf\u00e9"'.encode(), "caf\u00e9"),
        ("34", 34),
        ("KR", "KR"),
        (None, None),
    ],
)
def test_raw_values_decode_per_contract(raw, expected):
    assert_same(decode_value(raw), expected)
    assert_same(decode_values([raw])[0], expected)


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"K\xffR", b'"\xff"', b"\x80abc", b"\xc3", b"[1, \"\xff\"]"])
def test_invalid_utf8_is_an_invalid_value_not_a_replacement(raw):
    value = decode_value(raw)
    assert value == InvalidValue(raw, NOT_UTF8)
    assert decode_values([raw]) == [value]


@pytest.mark.parametrize("raw", [b"1e400", b"-1e400", b"1E+400", b"[1, 1e400]", b'{"a": -1e999}', "1e400"])
def test_numbers_beyond_float64_are_invalid_values_not_infinities(raw):
    value = decode_value(raw)
    assert value == InvalidValue(raw, NOT_FINITE)
    assert decode_values([raw]) == [value]


_number_literals = st.from_regex(rb"-?[1-9]\d{0,2}(\.\d{1,3})?[eE][+-]?\d{1,4}", fullmatch=True)
_dirty_raws = st.one_of(st.binary(max_size=30), _number_literals,
                        st.lists(_number_literals, max_size=3).map(lambda items: b"[" + b", ".join(items) + b"]"))


@given(_dirty_raws)
def test_a_value_is_invalid_exactly_when_it_is_not_utf8_or_holds_an_infinite_number(raw):
    value = decode_value(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        assert value == InvalidValue(raw, NOT_UTF8)
        return
    try:
        parsed = json.loads(text, parse_constant=_no_constant)
    except ValueError:
        assert_same(value, text)
        return
    if _has_infinity(parsed):
        assert value == InvalidValue(raw, NOT_FINITE)
    else:
        assert type(value) is not InvalidValue


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _has_infinity(value: Any) -> bool:
    if isinstance(value, float):
        return math.isinf(value)
    if isinstance(value, list):
        return any(map(_has_infinity, value))
    if isinstance(value, dict):
        return any(map(_has_infinity, value.values()))
    return False


def test_invalid_values_pickle_and_compare():
    value = InvalidValue(b"\xff", NOT_UTF8)
    assert pickle.loads(pickle.dumps(value)) == value
    assert value != InvalidValue(b"\xff", NOT_FINITE) and value != b"\xff"
    assert len({value, InvalidValue(b"\xff", NOT_UTF8)}) == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.int64(34), "34"),
        (np.float64(1250.5), "1250.5"),
        (np.bool_(True), "true"),
        (float("nan"), "null"),
        (None, "null"),
        (pd.NA, "null"),
        ("\u00e9", '"\u00e9"'),
        ([1, "a"], '[1, "a"]'),
    ],
)
def test_encode_value(value, expected):
    assert encode_value(value) == expected


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), np.float64("inf")])
def test_encode_rejects_infinity(value):
    with pytest.raises(ValueError, match="non-finite"):
        encode_value(value)


# --- entity values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [5, np.int64(5), np.int32(5), np.uint8(5), pd.array([5], dtype="Int64")[0], 5.0, np.float64(5.0),
     np.float32(5.0), "5"],
    ids=lambda v: type(v).__name__,
)
def test_every_form_of_five_is_5(value):
    assert entity_to_text(value, "user_id") == "5"


@pytest.mark.parametrize("value", [None, float("nan"), np.float64("nan"), pd.NA, pd.NaT])
def test_missing_means_no_entity(value):
    assert entity_to_text(value, "user_id") is None


@given(entity_values())
def test_entity_text_of_accepted_values(value):
    expected = value if isinstance(value, str) else str(int(value))
    assert entity_to_text(value, "c") == expected


@given(st.integers(min_value=INT64_MIN, max_value=INT64_MAX))
def test_integer_forms_agree(n):
    forms = [n, np.int64(n), pd.array([n], dtype="Int64")[0], str(n)]
    if abs(n) <= 2**53:
        forms += [float(n), np.float64(n)]
    assert {entity_to_text(v, "c") for v in forms} == {str(n)}


@given(st.text())
def test_strings_are_kept_as_they_are(text):
    assert entity_to_text(text) == text


@pytest.mark.parametrize(
    "value",
    [1.5, float("inf"), float("-inf"), np.float64(0.25), True, False, np.bool_(True), b"bytes",
     dt.datetime(2024, 1, 1), dt.date(2024, 1, 1), pd.Timestamp("2024-01-01"), {"a": 1}, [1], (1,), 1 + 2j],
    ids=repr,
)
def test_bad_entity_names_column(value):
    with pytest.raises(SpineError, match="'user_id'") as info:
        entity_to_text(value, "user_id")
    assert isinstance(info.value, ValueError)
    with pytest.raises(SpineError, match="'user_id'"):
        entity_texts(pd.Series([value], dtype=object), "user_id")
    with pytest.raises(SpineError, match="'user_id'"):
        entity_texts([value], "user_id")


@pytest.mark.parametrize("dtype", ["bool", "boolean"])
def test_bool_column_is_rejected(dtype):
    with pytest.raises(SpineError, match="'flag'"):
        entity_texts(pd.Series([True, False], dtype=dtype), "flag")
    with pytest.raises(SpineError, match="'flag'"):
        entity_texts(pd.Series([None, True], dtype="boolean"), "flag")
    assert entity_texts(pd.Series([], dtype=dtype), "flag") == []


def test_float_column_with_fraction_is_rejected():
    with pytest.raises(SpineError, match=r"1\.5 of type float in column 'user_id'"):
        entity_texts(pd.Series([1.0, 1.5]), "user_id")


_SERIES = {
    "int64": st.lists(st.integers(min_value=INT64_MIN, max_value=INT64_MAX)).map(
        lambda xs: pd.Series(xs, dtype="int64")),
    "uint64": st.lists(st.integers(min_value=0, max_value=2**64 - 1)).map(lambda xs: pd.Series(xs, dtype="uint64")),
    "Int64": st.lists(st.none() | st.integers(min_value=INT64_MIN, max_value=INT64_MAX)).map(
        lambda xs: pd.Series(xs, dtype="Int64")),
    "UInt64": st.lists(st.none() | st.integers(min_value=0, max_value=2**64 - 1)).map(
        lambda xs: pd.Series(xs, dtype="UInt64")),
    "float64": st.lists(st.none() | integral_floats() | st.floats()).map(lambda xs: pd.Series(xs, dtype="float64")),
    "integral float64": st.lists(st.none() | integral_floats()).map(lambda xs: pd.Series(xs, dtype="float64")),
    "Float64": st.lists(st.none() | integral_floats()).map(lambda xs: pd.Series(xs, dtype="Float64")),
    "object": st.lists(st.none() | entity_values() | st.just(float("nan"))).map(
        lambda xs: pd.Series(xs, dtype=object)),
    "string": st.lists(st.none() | st.text()).map(lambda xs: pd.Series(xs, dtype="string")),
}
if PANDAS_3:
    _SERIES["str"] = st.lists(st.none() | st.text()).map(lambda xs: pd.Series(xs, dtype="str"))


@pytest.mark.parametrize("dtype", sorted(_SERIES))
@given(data=st.data())
def test_entity_texts_equals_elementwise(dtype, data):
    series = data.draw(_SERIES[dtype])
    series.index = series.index[::-1]  # the index plays no part
    vectorised = _outcome(entity_texts, series, "c")
    elementwise = _outcome(lambda s, c: [entity_to_text(v, c) for v in s], series, "c")
    assert vectorised == elementwise
    if dtype in ("int64", "uint64", "Int64", "UInt64", "integral float64", "Float64", "string", "str"):
        assert vectorised[0] == "ok"


def test_entity_texts_known_values():
    assert entity_texts(pd.Series([1, None, 3], dtype="Int64"), "c") == ["1", None, "3"]
    assert entity_texts(pd.Series([1.0, math.nan, 1e20]), "c") == ["1", None, "100000000000000000000"]
    assert entity_texts(pd.Series(["u1", None, "34"], dtype=object), "c") == ["u1", None, "34"]
    assert entity_texts([5, np.int64(5), 5.0, "5", None], "c") == ["5", "5", "5", "5", None]


# --- keys and names -----------------------------------------------------------------------


def test_feature_key_format():
    assert feature_key("user_demographics", "age", "user123") == "user_demographics:age:user123"


@given(names(), names(), st.text())
def test_feature_key_keeps_colons_inside_entity(namespace, feature, entity):
    key = feature_key(namespace, feature, entity)
    assert key.split(":", 2) == [namespace, feature, entity]


@given(names())
def test_valid_names_are_returned(name):
    assert validate_name(name, "feature") == name


@given(st.text().filter(lambda s: not s or any(c not in
       "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-" for c in s)))
def test_invalid_names_are_rejected(name):
    with pytest.raises(RecipeError):
        validate_name(name, "feature")


@pytest.mark.parametrize("name", ["", "has space", "a:b", ":", "tab\t", "new\nline", "caf\u00e9", "a/b", 5, None])
def test_validate_name_rejects_and_says_where(name):
    with pytest.raises(RecipeError) as info:
        validate_name(name, "namespace", "recipe.yaml: augmenter.features[2]")
    assert isinstance(info.value, ValueError)
    assert "namespace" in str(info.value)
    assert "recipe.yaml: augmenter.features[2]" in str(info.value)


@pytest.mark.parametrize(
    ("namespace", "column"),
    [("user_demographics", "user_id"), ("product_details", "product_id"), ("session_summary", "session_id"),
     ("user", "user_id"), ("user_purchase_summary", "user_id")],
)
def test_entity_column_for(namespace, column):
    assert entity_column_for(namespace) == column
