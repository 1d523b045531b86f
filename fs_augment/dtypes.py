"""Feature dtypes: inferred once at fit, then every lookup is coerced to them.

A feature's *kind* is one of ``int``, ``float``, ``bool``, ``str`` or
``object``; each maps to one pandas dtype that can hold a missing value, so a
feature that is missing for one served entity keeps its dtype:

======  =====================  =================  ==========================
kind    dtype (default)        ``nullable=True``  missing value
======  =====================  =================  ==========================
int     ``float64``            ``Int64``          ``NaN`` / ``pd.NA``
float   ``float64``            ``float64``        ``NaN``
bool    ``float64`` (1.0/0.0)  ``boolean``        ``NaN`` / ``pd.NA``
str     text (see below)       text               ``NaN``
object  ``object``             ``object``         ``NaN`` (mixed types, arrays)
======  =====================  =================  ==========================

*text* is the text dtype of the pandas the transformer runs on: ``str`` on pandas 3 (pandas'
string dtype, NaN for missing), ``object`` on pandas 2 (see :mod:`fs_augment._compat`).

The default keeps every column usable by any scikit-learn estimator
(``pd.NA`` is refused by many of them); ``nullable=True`` keeps integers exact.

A stored value that does not fit the pinned kind (text in a numeric feature, a
fraction in an int feature, an infinite number in a float feature) becomes
missing and is counted as *invalid*, as does a value that cannot be read at all
(:class:`fs_augment.keys.InvalidValue`: not UTF-8, or a number beyond float64).

:func:`value_kinds` and :func:`text_issues` describe training values that are
read, but are probably not what their writer meant: a feature whose values mix
kinds (``True`` typed by hand beside JSON ``true``), and text that is empty or
carries surrounding whitespace (``KR\\n`` from ``echo KR | redis-cli -x SET``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from fs_augment._compat import TEXT_DTYPE, TEXT_DTYPE_NAME, one_text, text_array
from fs_augment.keys import InvalidValue

__all__ = ["DTYPES", "NULLABLE_DTYPES", "Coerced", "TextIssues", "coerce", "describe_kinds", "dtype_name", "empty",
           "fill", "infer_kind", "input_kind", "text_issues", "value_kinds"]

DTYPES = {"int": "float64", "float": "float64", "bool": "float64", "str": TEXT_DTYPE_NAME, "object": "object"}
NULLABLE_DTYPES = {**DTYPES, "int": "Int64", "bool": "boolean"}
_STR = TEXT_DTYPE
#: the dtype of ``str`` features (pandas 3: ``str`` on Python storage; pandas 2: ``object``), NaN for missing
STR_DTYPE = _STR

_NONE = type(None)
_INT_TYPES = frozenset({int, np.int64, np.int32, np.int16, np.int8, np.uint64, np.uint32, np.uint16, np.uint8})
_FLOAT_TYPES = frozenset({float, np.float64, np.float32})
_NUMBER_TYPES = _INT_TYPES | _FLOAT_TYPES
_BOOL_TYPES = frozenset({bool, np.bool_})
_NA = type(pd.NA)
_NOT_A_VALUE = frozenset({_NONE, _NA, InvalidValue})  # what kind inference ignores
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class Coerced(NamedTuple):
    """A column coerced to its pinned kind, with its counts of missing and invalid values."""

    values: Any
    missing: int
    invalid: int


def _types(values: Any) -> set[type]:
    return set(map(type, values))


def infer_kind(values: Sequence[Any] | np.ndarray | pd.api.extensions.ExtensionArray) -> str:
    """The kind of a column of looked-up values (missing and unreadable values are ignored).

    Examples
    --------
    >>> infer_kind([1, None, 3]), infer_kind([1, 2.5]), infer_kind(["KR", None]), infer_kind([True, "x"])
    ('int', 'float', 'str', 'object')
    """
    kind = getattr(getattr(values, "dtype", None), "kind", "O")
    if kind == "b":
        return "bool"
    if kind in "iu":
        return "object" if _big_unsigned(values) else "int"
    if kind == "f":
        return "float"
    if kind != "O":
        return "object"
    if not isinstance(values, list | np.ndarray):
        values = list(values)
    present = _types(values) - _NOT_A_VALUE
    floats_nan = {t for t in present if t in _FLOAT_TYPES}
    if floats_nan and all(_is_nan(v) for v in values if type(v) in floats_nan):
        present -= floats_nan
    if not present:
        return "float"
    if present <= _BOOL_TYPES:
        return "bool"
    if present <= _INT_TYPES:  # integers beyond Int64 (JSON allows them) stay exact as objects
        return "int" if all(_fits_int64(v) for v in values if type(v) in _INT_TYPES) else "object"
    if present <= _NUMBER_TYPES:
        return "float"
    if present <= {str}:
        return "str"
    return "object"


def input_kind(column: pd.Series) -> str:
    """The kind of an input (spine) column at fit, for a served model's signature.

    ``str`` (text, missing allowed), ``int`` (integers within int64, none
    missing: a missing value would make them floats in a request), ``float``,
    ``bool`` (none missing), ``datetime``, or ``object`` when that is
    ambiguous: mixed types, integers or bools with missing values, extension
    dtypes other than text and nullable numbers (categories, periods ...).

    Examples
    --------
    >>> input_kind(pd.Series(["u1", None])), input_kind(pd.Series([1, 2])), input_kind(pd.Series([1.0, None]))
    ('str', 'int', 'float')
    >>> input_kind(pd.Series([1, None], dtype="Int64")), input_kind(pd.Series([1, "u2"], dtype=object))
    ('object', 'object')
    """
    dtype = column.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if isinstance(dtype, pd.StringDtype):
        return "str"
    numpy = isinstance(dtype, np.dtype)
    if not numpy and getattr(dtype, "kind", "O") not in "iufb":  # nullable and Arrow numbers pass
        return "object"
    kind = infer_kind(column.to_numpy() if numpy else column.array)
    if kind in ("int", "bool") and column.isna().any():
        return "object"
    if kind == "float" and dtype.kind == "O" and column.isna().all():  # nothing seen to tell a kind by
        return "object"
    return kind


def _is_nan(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float | np.floating) and math.isnan(value))


def _fits_int64(value: Any) -> bool:
    return _INT64_MIN <= int(value) <= _INT64_MAX


def _fits_float(value: Any) -> bool:
    """Whether a number converts to float64 (a JSON integer may be far beyond it)."""
    if type(value) is not int:
        return True
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _big_unsigned(values: Any) -> bool:
    """Whether a uint64 array holds values beyond Int64."""
    dtype = values.dtype
    if dtype.kind != "u" or dtype.itemsize < 8 or not len(values):
        return False
    if isinstance(values, pd.api.extensions.ExtensionArray):
        values = values.to_numpy(dtype="uint64", na_value=0)
    return int(values.max()) > _INT64_MAX


def dtype_name(kind: str, nullable: bool = False) -> str:
    """The dtype a kind is pinned to."""
    return (NULLABLE_DTYPES if nullable else DTYPES)[kind]


def empty(kind: str, nullable: bool = False) -> Any:
    """A zero-length array of the kind's dtype."""
    if not nullable and kind in ("int", "bool"):
        return np.array([], dtype="float64")
    if kind == "str":
        return text_array(np.array([], dtype=object))
    if kind == "object":
        return pd.Series([], dtype=object)
    if kind in ("int", "bool"):
        return pd.array([], dtype="Int64" if kind == "int" else "boolean")
    return np.array([], dtype="float64")


def _finite(out: np.ndarray, invalid: int = 0) -> Coerced:
    """A float64 column with its infinities (no JSON number, so a misfit) turned missing and counted."""
    infinite = np.isinf(out)
    if infinite.any():
        out = np.where(infinite, np.nan, out)
        invalid += int(infinite.sum())
    return Coerced(out, int(np.isnan(out).sum()), invalid)


def _as_float(values: Any) -> Coerced:
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        return _finite(values.astype("float64", copy=False))
    if isinstance(values, pd.api.extensions.ExtensionArray) and values.dtype.kind in "iuf":
        return _finite(values.to_numpy(dtype="float64", na_value=np.nan))
    types = _types(values)
    if types <= _NUMBER_TYPES | {_NONE}:
        try:
            out = np.array(values, dtype="float64")
        except OverflowError:  # an integer beyond float64 (JSON allows it): value by value below
            pass
        else:
            return _finite(out)
    out = np.empty(len(values), dtype="float64")
    invalid = 0
    for i, v in enumerate(values):
        if type(v) in _NUMBER_TYPES and _fits_float(v):
            out[i] = v
        else:
            out[i] = np.nan
            if not _is_nan(v):
                invalid += 1
    return _finite(out, invalid)


def _as_int(values: Any) -> Coerced:
    if isinstance(values, np.ndarray | pd.api.extensions.ExtensionArray) and _big_unsigned(values):
        # pandas-stubs types na_value as a Scalar; pandas takes any value, None included
        values = values.tolist() if isinstance(values, np.ndarray) else values.to_numpy(object, na_value=None).tolist()  # type: ignore[arg-type]
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return Coerced(pd.array(values, dtype="Int64"), 0, 0)
    if isinstance(values, np.ndarray | pd.api.extensions.ExtensionArray) and values.dtype.kind == "f":
        return _whole_floats_as_int(values)
    if isinstance(values, pd.api.extensions.ExtensionArray) and values.dtype.kind in "iu":
        out = values.astype("Int64")
        return Coerced(out, int(pd.isna(out).sum()), 0)
    types = _types(values)
    if types <= _INT_TYPES | {_NONE}:
        try:
            out = pd.array(list(values), dtype="Int64")
        except (OverflowError, TypeError):  # an integer beyond Int64: checked one by one below
            pass
        else:
            return Coerced(out, int(out.isna().sum()), 0)
    return _ints_one_by_one(values)


def _whole_floats_as_int(values: Any) -> Coerced:
    """A float array as Int64: whole numbers kept, the rest invalid (NaN: missing)."""
    floats = np.asarray(values.to_numpy(dtype="float64", na_value=np.nan)
                        if isinstance(values, pd.api.extensions.ExtensionArray) else values, dtype="float64")
    nan = np.isnan(floats)
    with np.errstate(invalid="ignore"):
        bad = ~nan & (np.mod(floats, 1) != 0)
    if bad.any():
        floats = np.where(bad, np.nan, floats)
    return Coerced(pd.array(floats, dtype="Int64"), int(nan.sum() + bad.sum()), int(bad.sum()))


def _ints_one_by_one(values: Any) -> Coerced:
    """Values of any types as Int64: ints within int64 and whole finite floats kept, the rest invalid."""
    clean: list[Any] = []
    invalid = 0
    for v in values:
        t = type(v)
        if t in _INT_TYPES and _fits_int64(v):
            clean.append(v)
        elif t in _FLOAT_TYPES and math.isfinite(v) and float(v).is_integer() and _fits_int64(v):
            clean.append(int(v))
        else:
            clean.append(None)
            if not _is_nan(v):
                invalid += 1
    out = pd.array(clean, dtype="Int64")
    return Coerced(out, int(out.isna().sum()), invalid)


def _as_bool(values: Any) -> Coerced:
    if isinstance(values, np.ndarray) and values.dtype.kind == "b":
        return Coerced(pd.array(values, dtype="boolean"), 0, 0)
    clean: list[Any] = []
    invalid = 0
    for v in values:
        if type(v) in _BOOL_TYPES:
            clean.append(bool(v))
        else:
            clean.append(None)
            if not _is_nan(v):
                invalid += 1
    out = pd.array(clean, dtype="boolean")
    return Coerced(out, int(out.isna().sum()), invalid)


def _text_column(values: Any) -> Coerced | None:
    """The ``str`` kind of a column of text and missing values (None, NaN, NA) only, without a
    Python loop; None for anything else (the general path)."""
    if infer_dtype(values, skipna=True) != "string":  # skips None/NaN/NA only, exactly what counts as missing
        return None
    out = text_array(values)  # missing values become NaN
    return Coerced(out, int(np.count_nonzero(pd.isna(out))), 0)


def _as_object(values: Any, kind: str) -> Coerced:
    if kind == "str" and isinstance(getattr(values, "dtype", None), pd.StringDtype):
        out = text_array(values)
        return Coerced(out, int(np.count_nonzero(pd.isna(out))), 0)
    if isinstance(values, pd.api.extensions.ExtensionArray):
        # pandas-stubs types na_value as a Scalar; pandas takes any value, None included
        values = values.to_numpy(dtype=object, na_value=None)  # type: ignore[arg-type]
    if kind == "str" and len(values) > 1:
        fast = _text_column(values)
        if fast is not None:
            return fast
    out = np.empty(len(values), dtype=object)
    missing = invalid = 0
    for i, v in enumerate(values):
        if _is_nan(v) or v is pd.NA:
            out[i] = np.nan
            missing += 1
        elif type(v) is InvalidValue:
            out[i] = np.nan
            missing += 1
            invalid += 1
        elif kind == "str" and type(v) is not str:
            if isinstance(v, list | dict):
                out[i] = np.nan
                missing += 1
                invalid += 1
            else:
                out[i] = str(v).lower() if type(v) in _BOOL_TYPES else str(v)
        else:
            out[i] = v
    if kind == "str":
        return Coerced(text_array(out), missing, invalid)
    # a Series told its dtype: pandas infers str from an array of all-text values
    return Coerced(pd.Series(out, dtype=object, copy=False), missing, invalid)




_ONE_NAN = (np.nan,)


def _coerce_one(value: Any, kind: str, nullable: bool) -> Coerced | None:
    """:func:`coerce` of a one-value list for a JSON-decoded value that plainly fits its kind
    (or is None); None for anything else, which takes the general path.

    Gives exactly what the general path gives: ``float64`` arrays for float, int and bool (not
    nullable) and a text array for str.
    """
    t = type(value)
    if kind == "str":
        if t is str:
            return Coerced(one_text(value), 0, 0)
        if value is None:
            return Coerced(one_text(np.nan), 1, 0)
        return None
    if kind == "float" or not nullable:
        if value is None:
            return Coerced(np.array(_ONE_NAN), 1, 0) if kind != "object" else None
        if kind == "float" and ((t is float and not math.isinf(value)) or
                                (t is int and _INT64_MIN <= value <= _INT64_MAX)):
            out = np.array((value,), dtype="float64")
            return Coerced(out, 0 if out[0] == out[0] else 1, 0)
        if kind == "int" and t is int and _INT64_MIN <= value <= _INT64_MAX:
            out = np.array((value,), dtype="float64")
            if abs(out[0]) < 2.0**63:
                return Coerced(out, 0, 0)
        elif kind == "bool" and t is bool:
            return Coerced(np.array((value,), dtype="float64"), 0, 0)
    return None


def coerce(values: Any, kind: str, nullable: bool = False) -> Coerced:
    """Coerce looked-up values to a kind's dtype; misfits become missing and are counted.

    Examples
    --------
    >>> c = coerce([3, None, "x"], "int", nullable=True)
    >>> c.values.tolist(), c.missing, c.invalid
    ([3, <NA>, <NA>], 2, 1)
    >>> coerce([3, None], "int").values
    array([ 3., nan])
    """
    if type(values) is list and len(values) == 1:  # one served row: the common cases without the general machinery
        one = _coerce_one(values[0], kind, nullable)
        if one is not None:
            return one
    if kind == "float":
        return _as_float(values)
    if kind in ("int", "bool"):
        if not nullable and isinstance(values, list):
            exact = _INT_TYPES if kind == "int" else _BOOL_TYPES
            if _types(values) <= exact | {_NONE}:  # the common case, without a nullable detour
                try:
                    out = np.array(values, dtype="float64")
                except OverflowError:  # an integer beyond float64: checked below
                    out = np.array([np.inf])
                if kind == "bool" or not (np.abs(out) >= 2.0**63).any():  # else: beyond Int64, checked below
                    return Coerced(out, int(np.isnan(out).sum()), 0)
        coerced = _as_int(values) if kind == "int" else _as_bool(values)
        if nullable:
            return coerced
        return coerced._replace(values=coerced.values.to_numpy(dtype="float64", na_value=np.nan))
    return _as_object(values, kind)


def fill(values: Any, kind: str, default: Any) -> Any:
    """``values`` with missing entries replaced by ``default`` (already a valid value of the kind)."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return np.where(np.isnan(values), default, values)
    if kind == "object":
        out = np.asarray(values, dtype=object).copy()
        out[pd.isna(out)] = default  # element-wise: list values are present, never "missing"
        return pd.Series(out, dtype=object, copy=False)  # told: pandas would infer text from all-text values
    return pd.Series(values, copy=False).fillna(default).array


def _kind_of_value(value: Any) -> str:
    t = type(value)
    if t in _BOOL_TYPES:
        return "bool"
    if t in _INT_TYPES:
        return "int"
    if t in _FLOAT_TYPES:
        return "float"
    if t is str:
        return "str"
    if isinstance(value, list | tuple | np.ndarray):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return t.__name__


def value_kinds(values: Sequence[Any] | np.ndarray | pd.api.extensions.ExtensionArray) -> dict[str, tuple[int, Any]]:
    """The kinds of a column's present values: kind -> (how many, the first one), most frequent first.

    Missing and unreadable values are left out, as :func:`infer_kind` leaves them out. A column
    :func:`infer_kind` calls ``object`` with more than one kind here mixes kinds: ``True`` typed
    by hand beside JSON ``true`` (``str`` and ``bool``), ``01234`` beside ``12345`` (``01234`` is
    no JSON number: ``str`` and ``int``).

    Examples
    --------
    >>> value_kinds([True, "True", None, False])
    {'bool': (2, True), 'str': (1, 'True')}
    >>> value_kinds([12345, "01234"])
    {'int': (1, 12345), 'str': (1, '01234')}
    """
    kind = getattr(getattr(values, "dtype", None), "kind", "O")
    if kind != "O":
        return {infer_kind(values): (len(values), None)} if len(values) else {}
    if not isinstance(values, list):
        values = list(values)
    types = list(map(type, values))
    seen: dict[str, list[Any]] = {}
    for t, count in Counter(types).items():
        if t in _NOT_A_VALUE:
            continue
        at = types.index(t)
        if t in _FLOAT_TYPES:  # NaN is missing
            present = [v for v in values if type(v) is t and v == v]
            count = len(present)
            if not count:
                continue
            at = values.index(present[0])
        name = _kind_of_value(values[at])
        entry = seen.get(name)
        if entry is None:
            seen[name] = [count, at]
        else:  # one kind of several types (bool and numpy.bool_): the first of them
            entry[0] += count
            entry[1] = min(entry[1], at)
    ranked = sorted(seen.items(), key=lambda item: (-item[1][0], item[1][1]))
    return {name: (count, values[at]) for name, (count, at) in ranked}


def describe_kinds(kinds: dict[str, tuple[int, Any]], width: int = 30) -> str:
    """:func:`value_kinds` as text for a message: each kind, its count and an example.

    Examples
    --------
    >>> describe_kinds(value_kinds([12345, "01234", 54321]))
    "int 2 (e.g. 12345), str 1 (e.g. '01234')"
    """
    parts = []
    for kind, (count, first) in kinds.items():
        shown = repr(first)
        if len(shown) > width:
            shown = shown[: width - 3] + "..."
        parts.append(f"{kind} {count} (e.g. {shown})")
    return ", ".join(parts)


class TextIssues(NamedTuple):
    """Text values that are read as they are, but were probably not meant so (see :func:`text_issues`)."""

    present: int
    empty: int
    padded: int
    example: str | None


def text_issues(values: Any) -> TextIssues:
    """Count the empty texts and the texts with surrounding whitespace among a column's present values.

    Both are kept as real values (``""`` is not missing, ``"KR\\n"`` is not ``"KR"``); these counts
    are what the augmenter warns about at fit and ``fs-augment check`` reports. ``example`` is
    the first padded text, else ``""`` when there are empty ones.

    Examples
    --------
    >>> text_issues(["KR", "KR\\n", "", None, " US"])
    TextIssues(present=4, empty=1, padded=2, example='KR\\n')
    """
    if not isinstance(values, list):
        values = values.tolist() if hasattr(values, "tolist") else list(values)
    present = empty = padded = 0
    example = None
    for value in values:  # a plain loop: faster than pandas' string methods on Python strings
        if type(value) is not str:
            if not _is_nan(value) and type(value) is not InvalidValue:
                present += 1
            continue
        present += 1
        if not value:
            empty += 1
        elif value.strip() != value:
            padded += 1
            if example is None:
                example = value
    if example is None and empty:
        example = ""
    return TextIssues(present, empty, padded, example)
