"""The online cache (expiry, LRU bound, threads) and the feature dtype rules."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fs_augment import cache as cache_module
from fs_augment.cache import TTLCache
from fs_augment.dtypes import (
    DTYPES,
    NULLABLE_DTYPES,
    coerce,
    dtype_name,
    empty,
    fill,
    infer_kind,
    text_issues,
    value_kinds,
)
from fs_augment.keys import NOT_FINITE, NOT_UTF8, InvalidValue
from tests.support.strategies import INT64_MAX, INT64_MIN, feature_columns

# --- TTLCache ------------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A hand-driven monotonic clock for the cache module only: ``clock[0] += seconds``."""
    now = [1000.0]
    monkeypatch.setattr(cache_module, "time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


def test_entry_expires_after_ttl(clock: list[float]):
    cache = TTLCache(ttl=10)
    cache.set("k", "v")
    clock[0] += 9.999
    assert cache.get("k") == "v"
    clock[0] += 0.001
    assert cache.get("k", "gone") == "gone"
    assert len(cache) == 0  # the expired entry was dropped


def test_set_renews_expiry(clock: list[float]):
    cache = TTLCache(ttl=10)
    cache.set("k", 1)
    clock[0] += 8
    cache.set("k", 2)
    clock[0] += 8
    assert cache.get("k") == 2


def test_get_does_not_renew_expiry(clock: list[float]):
    cache = TTLCache(ttl=10)
    cache.set("k", 1)
    clock[0] += 8
    assert cache.get("k") == 1
    clock[0] += 3
    assert cache.get("k") is None


def test_expiry_in_real_time():
    cache = TTLCache(ttl=0.05)
    cache.set("k", "v")
    assert cache.get("k") == "v"
    time.sleep(0.1)
    assert cache.get("k") is None


def test_cached_none_is_told_from_absent():
    cache = TTLCache(ttl=60)
    cache.set("k", None)
    marker = object()
    assert cache.get("k", marker) is None
    assert cache.get("other", marker) is marker


def test_lru_evicts_least_recently_used():
    cache = TTLCache(ttl=60, max_entries=2)
    cache.set("a", 1)
    cache.set("b", 2)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.set("c", 3)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (1, 3)
    assert len(cache) == 2


def test_hits_misses_and_clear():
    cache = TTLCache(ttl=60)
    cache.set("a", 1)
    cache.get("a")
    cache.get("b")
    assert (cache.hits, cache.misses) == (1, 1)
    cache.clear()
    assert len(cache) == 0
    assert cache.get("a") is None


@pytest.mark.parametrize(("ttl", "max_entries"), [(0, 10), (-1, 10), (1, 0)])
def test_bad_arguments(ttl, max_entries):
    with pytest.raises(ValueError, match="ttl"):
        TTLCache(ttl=ttl, max_entries=max_entries)


_OPS = st.lists(st.tuples(st.sampled_from(["set", "get"]), st.integers(0, 6), st.integers()), max_size=60)


@given(st.integers(min_value=1, max_value=5), _OPS)
def test_cache_behaves_like_a_bounded_lru(max_entries, ops):
    cache = TTLCache(ttl=3600, max_entries=max_entries)
    model: OrderedDict[int, int] = OrderedDict()
    for op, key, value in ops:
        if op == "set":
            cache.set(key, value)
            model[key] = value
            model.move_to_end(key)
            while len(model) > max_entries:
                model.popitem(last=False)
        else:
            expected = model.get(key)
            if key in model:
                model.move_to_end(key)
            assert cache.get(key) == expected
        assert len(cache) == len(model) <= max_entries


def test_threads_hammering_the_cache():
    cache = TTLCache(ttl=60, max_entries=50)
    errors: list[BaseException] = []
    gets = [0]
    count = threading.Lock()
    start = threading.Barrier(8)

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        done = 0
        try:
            start.wait()
            for key in rng.integers(0, 200, size=3000).tolist():
                if key % 3:
                    value = cache.get(key)
                    done += 1
                    assert value is None or value == key * 2
                else:
                    cache.set(key, key * 2)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        with count:
            gets[0] += done

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache) <= 50
    assert cache.hits + cache.misses == gets[0]


# --- dtypes -----------------------------------------------------------------------------------

NULLABLE = pytest.mark.parametrize("nullable", [False, True], ids=["default", "nullable"])


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _assert_dtype(out, kind: str, nullable: bool) -> None:
    """The column has the kind's pinned dtype, also once pandas wraps it without being told."""
    expected = dtype_name(kind, nullable)
    assert expected == (NULLABLE_DTYPES if nullable else DTYPES)[kind]
    assert pd.Series(out).dtype == expected
    assert pd.DataFrame({"f": out}).dtypes["f"] == expected


def _present(out) -> list:
    return pd.Series(out).dropna().tolist()


@NULLABLE
@settings(max_examples=50, deadline=None)
@given(column=feature_columns())
def test_coerce_to_inferred_kind_loses_nothing(column, nullable):
    kind, values = column
    assert infer_kind(values) == kind
    coerced = coerce(values, kind, nullable)
    assert coerced.invalid == 0
    assert coerced.missing == sum(map(_is_missing, values))
    assert len(coerced.values) == len(values)
    _assert_dtype(coerced.values, kind, nullable)
    present = [v for v in values if not _is_missing(v)]
    if kind == "int" and not nullable:
        present = [float(v) for v in present]
    assert _present(coerced.values) == present


@NULLABLE
@settings(max_examples=50, deadline=None)
@given(column=feature_columns(), kind=st.sampled_from(sorted(DTYPES)))
def test_coerce_to_any_kind_keeps_dtype_and_counts(column, kind, nullable):
    _, values = column
    coerced = coerce(values, kind, nullable)
    _assert_dtype(coerced.values, kind, nullable)
    assert len(coerced.values) == len(values)
    assert coerced.missing == int(pd.Series(coerced.values).isna().sum())
    assert coerced.missing == sum(map(_is_missing, values)) + coerced.invalid


@given(st.lists(st.one_of(st.none(), st.integers(min_value=INT64_MIN, max_value=INT64_MAX), st.floats())))
def test_numbers_mixed_with_missing(values):
    kind = infer_kind(values)
    assert kind in ("int", "float")
    infinite = sum(isinstance(v, float) and math.isinf(v) for v in values)  # no JSON number: invalid
    for nullable in (False, True):
        coerced = coerce(values, kind, nullable)
        assert coerced.invalid == infinite
        assert not np.isinf(pd.Series(coerced.values, dtype="float64").to_numpy()).any()


@NULLABLE
@pytest.mark.parametrize("kind", sorted(DTYPES))
def test_unreadable_values_are_missing_and_invalid_in_every_kind(kind, nullable):
    values = [InvalidValue(b"\xff", NOT_UTF8), None, InvalidValue(b"1e400", NOT_FINITE)]
    assert infer_kind(values) == "float"  # ignored, as missing values are
    coerced = coerce(values, kind, nullable)
    assert (coerced.missing, coerced.invalid) == (3, 2)
    _assert_dtype(coerced.values, kind, nullable)
    assert coerce(values[:1], kind, nullable).invalid == 1  # the one-row path too
    assert infer_kind(["KR", InvalidValue(b"\xff", NOT_UTF8)]) == "str"


@NULLABLE
@pytest.mark.parametrize("values", [np.array([1.5, np.inf, -np.inf, np.nan]),
                                    pd.array([1.5, np.inf, -np.inf, None], dtype="Float64"),
                                    [1.5, float("inf"), float("-inf"), None]], ids=["numpy", "Float64", "list"])
def test_infinite_floats_are_invalid(values, nullable):
    coerced = coerce(values, "float", nullable)
    assert (coerced.missing, coerced.invalid) == (3, 2)
    assert coerced.values[0] == 1.5
    assert coerce([float("inf")], "float", nullable).invalid == 1


@given(st.lists(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=4),
                          st.lists(st.integers(), max_size=2)), max_size=20))
def test_value_kinds_partition_the_present_values(values):
    seen = value_kinds(values)
    assert sum(count for count, _ in seen.values()) == sum(v is not None for v in values)
    counts = [count for count, _ in seen.values()]
    assert counts == sorted(counts, reverse=True)
    names = {bool: "bool", int: "int", float: "float", str: "str", list: "list"}
    for kind, (_, first) in seen.items():
        assert first in values and names[type(first)] == kind
    if infer_kind(values) != "object":
        assert len(seen) <= 1 or set(seen) == {"int", "float"}


@given(st.lists(st.one_of(st.none(), st.text(alphabet=" \tab\n", max_size=4)), max_size=20))
def test_text_issues_count_empty_and_padded_text(values):
    issues = text_issues(values)
    present = [v for v in values if v is not None]
    assert issues.present == len(present)
    assert issues.empty == present.count("")
    assert issues.padded == sum(v != "" and v.strip() != v for v in present)
    assert (issues.example is None) == (issues.empty + issues.padded == 0)


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([1, None, 3], "int"),
        ([1, float("nan")], "int"),
        ([1, 2.5], "float"),
        ([1.0, 2.0], "float"),
        ([None, None], "float"),
        ([], "float"),
        ([True, None], "bool"),
        (["KR", None], "str"),
        ([True, "x"], "object"),
        ([True, 1], "object"),
        ([[1, 2], None], "object"),
        ([1, "1"], "object"),
        ([2**63, 1], "object"),
        ([-(2**63) - 1], "object"),
        ([2**63 - 1, -(2**63)], "int"),
        ([1, pd.NA], "int"),
    ],
)
def test_infer_kind(values, kind):
    assert infer_kind(values) == kind
    assert coerce(values, kind).invalid == 0
    assert coerce(values, kind, nullable=True).invalid == 0


@NULLABLE
@pytest.mark.parametrize(
    ("values", "kind", "missing", "invalid"),
    [
        ([3, None, "x"], "int", 2, 1),
        ([3, 2.5, 4.0], "int", 1, 1),
        ([3, True], "int", 1, 1),
        ([3, 2**64], "int", 1, 1),
        ([3, 2**64, 1.0], "int", 1, 1),
        ([3, 1e20], "int", 1, 1),
        ([3, float("inf")], "int", 1, 1),
        ([1.5, "x", None, [1]], "float", 3, 2),
        ([1.5, True], "float", 1, 1),
        ([True, 1, "true", None], "bool", 3, 2),
        (["a", [1], {"b": 2}, None], "str", 3, 2),
        (["a", 1, True], "str", 0, 0),
        ([[1], "a", 1, None], "object", 1, 0),
    ],
)
def test_misfits_are_counted_as_invalid(values, kind, missing, invalid, nullable):
    coerced = coerce(values, kind, nullable)
    assert (coerced.missing, coerced.invalid) == (missing, invalid)
    _assert_dtype(coerced.values, kind, nullable)


def test_str_kind_writes_scalars_as_text():
    assert _present(coerce(["a", 1, True, 2.5], "str").values) == ["a", "1", "true", "2.5"]


def test_bool_kind_default_is_one_and_zero():
    assert coerce([True, False, None], "bool").values.tolist()[:2] == [1.0, 0.0]


@NULLABLE
@pytest.mark.parametrize(
    ("values", "kind", "missing", "invalid"),
    [
        (np.array([1, 2, 3]), "int", 0, 0),
        (np.array([1, 2], dtype=np.int32), "int", 0, 0),
        (np.array([1, 2], dtype=np.uint64), "int", 0, 0),
        (np.array([1.0, np.nan]), "float", 1, 0),
        (np.array([1.0, np.nan], dtype=np.float32), "float", 1, 0),
        (np.array([True, False]), "bool", 0, 0),
        (pd.array([1, None], dtype="Int64"), "int", 1, 0),
        (pd.array([1, None], dtype="Int32"), "int", 1, 0),
        (pd.array([1.5, None], dtype="Float64"), "float", 1, 0),
        (pd.array([True, None], dtype="boolean"), "bool", 1, 0),
        (pd.array([2**64 - 1, None], dtype="UInt64"), "object", 1, 0),
        (np.array([2**64 - 1, 1], dtype=np.uint64), "object", 0, 0),
        (np.array(["a", None], dtype=object), "str", 1, 0),
        (pd.array(["a", None], dtype="string"), "str", 1, 0),
    ],
    ids=lambda v: getattr(getattr(v, "dtype", None), "name", None) or repr(v),
)
def test_arrays(values, kind, missing, invalid, nullable):
    assert infer_kind(values) == kind
    coerced = coerce(values, kind, nullable)
    assert (coerced.missing, coerced.invalid) == (missing, invalid)
    _assert_dtype(coerced.values, kind, nullable)


@NULLABLE
@pytest.mark.parametrize(
    ("values", "kind", "missing", "invalid"),
    [
        (np.array([1.0, 2.5, np.nan]), "int", 2, 1),
        (pd.array([1.0, 2.5, None], dtype="Float64"), "int", 2, 1),
        (np.array([1, 2]), "float", 0, 0),
        (pd.array([1, None], dtype="Int64"), "float", 1, 0),
        (pd.array([1, None], dtype="Int64"), "str", 1, 0),
        (np.array([2**64 - 1, 1], dtype=np.uint64), "int", 1, 1),
    ],
)
def test_arrays_to_other_kinds(values, kind, missing, invalid, nullable):
    coerced = coerce(values, kind, nullable)
    assert (coerced.missing, coerced.invalid) == (missing, invalid)
    _assert_dtype(coerced.values, kind, nullable)


def test_nullable_int_values_are_exact():
    big = 2**62 + 1  # not exact as a float
    assert _present(coerce([big, None], "int", nullable=True).values) == [big]
    assert _present(coerce(np.array([big]), "int", nullable=True).values) == [big]


@NULLABLE
@pytest.mark.parametrize(
    ("values", "kind", "default", "expected"),
    [
        ([1, None], "int", 0, [1, 0]),
        ([1.5, None], "float", -1.0, [1.5, -1.0]),
        ([True, None], "bool", False, [True, False]),
        (["a", None], "str", "unknown", ["a", "unknown"]),
        ([[1], None], "object", "none", [[1], "none"]),
    ],
)
def test_fill_replaces_missing_and_keeps_dtype(values, kind, default, expected, nullable):
    filled = fill(coerce(values, kind, nullable).values, kind, default)
    assert list(filled) == expected
    _assert_dtype(filled, kind, nullable)
    assert not pd.Series(filled).isna().any()


@pytest.mark.parametrize("kind", ["str", "object", "float"])
def test_fill_without_missing_changes_nothing(kind):
    values = coerce([1.5, 2.5] if kind == "float" else ["a", "b"], kind).values
    assert list(fill(values, kind, "z" if kind != "float" else 0.0)) == list(values)


@NULLABLE
@pytest.mark.parametrize("kind", sorted(DTYPES))
def test_empty(kind, nullable):
    out = empty(kind, nullable)
    assert len(out) == 0
    _assert_dtype(out, kind, nullable)
