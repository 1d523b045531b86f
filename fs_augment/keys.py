"""The key contract: entity values to text, key building, value codecs.

Pure functions, no I/O. The online key of a feature is
``{namespace}:{feature_name}:{entity_key}``; values are UTF-8 text holding
JSON, or any other text read as the raw string. A stored value that cannot be
read as either -- bytes that are not UTF-8, or a number beyond float64 such as
``1e400`` -- is an :class:`InvalidValue`: every feature reads it as missing and
counts it as invalid.

Examples
--------
>>> from fs_augment.keys import entity_to_text, feature_key, decode_value, encode_value
>>> entity_to_text(123.0)
'123'
>>> feature_key("user_demographics", "age", "user123")
'user_demographics:age:user123'
>>> decode_value(b"1250.50"), decode_value(b"KR"), decode_value(b'"KR"')
(1250.5, 'KR', 'KR')
>>> encode_value("KR")
'"KR"'
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import numbers
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import orjson as _orjson  # a faster parser for the same JSON grammar
import pandas as pd

from fs_augment.errors import ParameterError, RecipeError, SpineError

__all__ = [
    "CREATED_COLUMN",
    "NAME_PATTERN",
    "NOT_FINITE",
    "NOT_UTF8",
    "TIMESTAMP_COLUMN",
    "InvalidValue",
    "decode_value",
    "decode_values",
    "encode_value",
    "entity_column_for",
    "entity_texts",
    "entity_to_text",
    "event_time_key",
    "feature_key",
    "format_event_time",
    "parse_as_of",
    "parse_event_time",
    "validate_name",
]

NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")

#: The column of each feature row's time in the offline layout (CONTRACT 4.4).
TIMESTAMP_COLUMN = "event_timestamp"

#: The optional column of when each feature row became known (CONTRACT 4.4): a point-in-time
#: lookup uses a row only once it is created; null means known at its ``event_timestamp``.
CREATED_COLUMN = "created_timestamp"


def validate_name(name: object, what: str, where: str = "") -> str:
    """Return ``name`` if it is a valid namespace or feature name.

    Raises :class:`~fs_augment.errors.RecipeError` naming ``what`` and
    ``where`` otherwise.

    Examples
    --------
    >>> validate_name("user_demographics", "namespace")
    'user_demographics'
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        suffix = f" in {where}" if where else ""
        raise RecipeError(
            f"invalid {what} {name!r}{suffix}: names must match [A-Za-z0-9_.-]+"
        )
    return name


def entity_column_for(namespace: str) -> str:
    """The entity column a namespace is keyed by when the recipe does not say.

    Examples
    --------
    >>> entity_column_for("user_demographics"), entity_column_for("session_summary")
    ('user_id', 'session_id')
    """
    return namespace.split("_", 1)[0] + "_id"


def feature_key(namespace: str, feature: str, entity: str) -> str:
    """The online key ``{namespace}:{feature}:{entity}``."""
    return f"{namespace}:{feature}:{entity}"


def event_time_key(namespace: str, entity: str) -> str:
    """The online key of an entity's event time, ``{namespace}:event_timestamp:{entity}`` (CONTRACT 4.5).

    Examples
    --------
    >>> event_time_key("user_demographics", "user123")
    'user_demographics:event_timestamp:user123'
    """
    return f"{namespace}:{TIMESTAMP_COLUMN}:{entity}"


_EPOCH = _dt.datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=_dt.UTC)
_NS = 1_000_000_000
_FRACTION = re.compile(r"[.,](\d{7,})")
_fromisoformat = _dt.datetime.fromisoformat


def _sub_microseconds(value: str) -> int:
    """The nanoseconds beyond the microseconds of an ISO 8601 fraction (0 without a seventh digit)."""
    dot = value.find(".")
    if dot < 0:
        dot = value.find(",")
    if dot > 0 and value[dot + 1:dot + 8].isdigit():  # seven or more fraction digits
        extra = value[dot + 7:dot + 10]
        if len(extra) == 3 and extra.isdigit():  # nanoseconds: nine digits
            return int(extra)
        match = _FRACTION.match(value, dot)  # seven or eight
        if match is not None:
            return int(match.group(1)[6:9].ljust(3, "0"))
    return 0


def parse_event_time(value: Any) -> int | None:
    """The event time a stored (decoded) timestamp value holds, in nanoseconds since the Unix epoch (UTC).

    A JSON number is seconds since the epoch; text is ISO 8601, where a time
    without a zone is UTC (fractions up to nanoseconds are exact). None (no
    key, or JSON ``null``) is None: no event time is known.

    Raises
    ------
    ValueError
        The value is neither: a bool, a list, unreadable bytes, text that is no ISO 8601 time.

    Examples
    --------
    >>> parse_event_time(86400), parse_event_time(1.5), parse_event_time("1970-01-02")
    (86400000000000, 1500000000, 86400000000000)
    >>> parse_event_time("1970-01-01T09:00:00.000000001+09:00")
    1
    """
    kind = type(value)
    if kind is str:
        try:
            moment = _fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 time") from None
        since = moment - (_EPOCH if moment.tzinfo is None else _EPOCH_UTC)
        if len(value) == 30 and value[19] == "." and value[29] == "Z":  # the reference writer's form
            return (since.days * 86_400 + since.seconds) * _NS + int(value[20:29])
        ns = ((since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds) * 1000
        if len(value) > 26:  # room for a fraction finer than the microseconds fromisoformat keeps
            ns += _sub_microseconds(value)
        return ns
    if kind is int:
        whole_seconds: int = value
        return whole_seconds * _NS
    if kind is float:
        seconds: float = value
        if not math.isfinite(seconds):
            raise ValueError(f"{value!r} is not a finite number of seconds")
        whole = math.floor(seconds)
        return whole * _NS + round((seconds - whole) * _NS)
    if value is None:
        return None
    raise ValueError(f"{value!r} of type {kind.__name__} is neither seconds since the epoch nor ISO 8601 text")


def format_event_time(ns: int) -> str:
    """ISO 8601 text in UTC (``Z``) of a time in nanoseconds since the epoch, as the reference writer stores it.

    Fractions of a second are written only when present, to the microsecond or the nanosecond.

    Examples
    --------
    >>> format_event_time(0), format_event_time(1_500_000_000), format_event_time(1)
    ('1970-01-01T00:00:00Z', '1970-01-01T00:00:01.500000Z', '1970-01-01T00:00:00.000000001Z')
    >>> parse_event_time(format_event_time(1_700_000_000_123_456_789))
    1700000000123456789
    """
    seconds, fraction = divmod(int(ns), _NS)
    text = (_EPOCH + _dt.timedelta(seconds=seconds)).isoformat()
    if fraction:
        text += f".{fraction // 1000:06d}" if fraction % 1000 == 0 else f".{fraction:09d}"
    return text + "Z"


def parse_as_of(value: Any, parameter: str = "as_of") -> pd.Timestamp:
    """A time given as ``as_of`` (a datetime or ISO 8601 text) as a UTC :class:`pandas.Timestamp`.

    A datetime without a time zone, and ISO 8601 text without an offset, are
    UTC; zoned times are converted. Text is read strictly as ISO 8601 (no
    ``"now"``, no other formats); fractions to the nanosecond are kept.

    Raises
    ------
    ParameterError
        ``value`` is neither, or text that is no ISO 8601 time; the message
        names ``parameter`` and the value.

    Examples
    --------
    >>> parse_as_of("2024-06-01T12:00:00+09:00")
    Timestamp('2024-06-01 03:00:00+0000', tz='UTC')
    >>> import datetime as dt
    >>> parse_as_of(dt.datetime(2024, 6, 1))
    Timestamp('2024-06-01 00:00:00+0000', tz='UTC')
    """
    if isinstance(value, str):
        try:
            ns = parse_event_time(value.strip())
            if ns is not None:
                return pd.Timestamp(ns, tz="UTC")
        except (ValueError, OverflowError):  # OutOfBoundsDatetime is a ValueError
            pass
        raise ParameterError(f"{parameter} must be a datetime or ISO 8601 text such as "
                             f"'2024-06-01T00:00:00Z' (years 1678 to 2261), got {value!r}")
    if isinstance(value, _dt.datetime | np.datetime64) and not pd.isna(value):
        try:
            stamp = pd.Timestamp(value)
        except (ValueError, OverflowError) as exc:  # OutOfBoundsDatetime is a ValueError
            raise ParameterError(f"{parameter} {value!r} cannot be a time: {exc}") from None
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    raise ParameterError(f"{parameter} must be a datetime or ISO 8601 text such as '2024-06-01T00:00:00Z', "
                         f"got {value!r} ({type(value).__name__})")


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    return False


def entity_to_text(value: Any, column: str | None = None) -> str | None:
    """Turn one entity value into the text used in keys, or None for "no entity".

    str is kept as is; integers (Python, NumPy, pandas nullable) are written in
    decimal; a float with an integral value is written as that integer;
    None/NaN/NA mean no entity. Anything else raises
    :class:`~fs_augment.errors.SpineError` naming ``column``.

    Examples
    --------
    >>> [entity_to_text(v) for v in ("u1", 5, 5.0, None, float("nan"))]
    ['u1', '5', '5', None, None]
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        raise _bad_entity(value, column)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if _is_missing(value):
        return None
    if isinstance(value, float | np.floating) and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    raise _bad_entity(value, column)


def _bad_entity(value: Any, column: str | None) -> SpineError:
    where = f" in column {column!r}" if column is not None else ""
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return SpineError(
        f"entity value {shown} of type {type(value).__name__}{where} cannot be a "
        "key: entity values must be str, integers, integral floats or missing"
    )


def entity_texts(values: pd.Series | np.ndarray | pd.api.extensions.ExtensionArray | Sequence[Any],
                 column: str | None = None) -> list[str | None]:
    """Vectorised :func:`entity_to_text` over a column (Series, array or list); None marks no entity.

    Examples
    --------
    >>> entity_texts(pd.Series([1, 2, None], dtype="Int64"), "user_id")
    ['1', '2', None]
    """
    if (isinstance(values, pd.Series | pd.api.extensions.ExtensionArray) and isinstance(values.dtype, pd.StringDtype)
            and len(values) > 1):  # text or missing only
        # pandas-stubs types na_value as a Scalar; pandas takes any value, None included
        texts: list[str | None] = values.to_numpy(dtype=object, na_value=None).tolist()  # type: ignore[call-overload,arg-type]
        return texts
    if isinstance(values, np.ndarray | pd.api.extensions.ExtensionArray):  # a column's array, no Series around it
        if values.dtype.kind == "O":  # object, str, string, categorical: value by value, as a Series would
            if len(values) == 1:
                return [entity_to_text(values[0], column)]
            return [entity_to_text(v, column) for v in values.tolist()]
        values = pd.Series(values, copy=False)
    if isinstance(values, pd.Series):
        dtype = values.dtype
        if dtype.kind in "iu":
            return _integer_texts(values)
        if dtype.kind == "f":
            return _float_texts(values, column)
        if dtype.kind == "b":
            present = values.dropna()
            if len(present):
                raise _bad_entity(present.iloc[0], column)
            return [None] * len(values)
        values = values.tolist()
    return [entity_to_text(v, column) for v in values]


def _integer_texts(values: pd.Series) -> list[str | None]:
    """Key texts of an integer column (numpy or nullable)."""
    dtype = values.dtype
    if isinstance(dtype, pd.api.extensions.ExtensionDtype):  # nullable Int64 and friends
        mask = values.isna().to_numpy()
        ints = values.to_numpy(dtype="uint64" if dtype.kind == "u" else "int64", na_value=0).tolist()
        return [None if m else str(v) for v, m in zip(ints, mask.tolist(), strict=True)]
    return [str(v) for v in values.to_numpy().tolist()]


def _float_texts(values: pd.Series, column: str | None) -> list[str | None]:
    """Key texts of a float column whose values are whole numbers (NaN: no entity); anything else is refused."""
    arr = values.to_numpy(dtype="float64", na_value=np.nan)
    nan = np.isnan(arr)
    with np.errstate(invalid="ignore"):
        ok = nan | (np.isfinite(arr) & (np.mod(arr, 1) == 0))
    if not ok.all():
        raise _bad_entity(float(arr[~ok][0]), column)
    if (np.abs(arr[~nan]) >= 2.0**63).any():  # beyond int64: Python ints, one by one
        return [entity_to_text(v, column) for v in arr.tolist()]
    ints = np.where(nan, 0, arr).astype("int64").tolist()
    return [None if m else str(v) for v, m in zip(ints, nan.tolist(), strict=True)]


class InvalidValue:
    """A stored value that cannot be read: not UTF-8 text, or a number beyond float64.

    Decoding gives it instead of a replacement: lookups return it as the value, and
    :func:`fs_augment.dtypes.coerce` reads it as missing in every kind and counts it as
    invalid, as it does text in a numeric feature.

    Parameters
    ----------
    raw : bytes or str
        The stored value as it was read.
    reason : str
        Why it cannot be read (``"not UTF-8"``, ``"not a finite number"``).

    Examples
    --------
    >>> decode_value(b"K\\xffR")
    InvalidValue(b'K\\xffR', 'not UTF-8')
    >>> decode_value(b"1e400").reason
    'not a finite number'
    """

    __slots__ = ("raw", "reason")

    def __init__(self, raw: bytes | str, reason: str) -> None:
        self.raw = raw
        self.reason = reason

    def __repr__(self) -> str:
        return f"InvalidValue({self.raw!r}, {self.reason!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not InvalidValue:
            return NotImplemented
        return self.raw == other.raw and self.reason == other.reason

    def __hash__(self) -> int:
        return hash((InvalidValue, self.raw, self.reason))

    def __reduce__(self) -> tuple[Any, ...]:
        return InvalidValue, (self.raw, self.reason)


NOT_UTF8 = "not UTF-8"
NOT_FINITE = "not a finite number"


class _NotFinite(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # a literal beyond float64 (1e400); NaN and Infinity are no JSON numbers
        raise _NotFinite(text)
    return value


def decode_value(raw: bytes | str | None) -> Any:
    """Decode one stored value: JSON if it parses, the raw text otherwise.

    None (an absent key) stays None. ``NaN``/``Infinity`` are not JSON and read
    as raw text. Bytes that are not UTF-8, and JSON holding a number beyond
    float64 (``1e400``, ``-1e400``, ``[1e400]``), give an :class:`InvalidValue`.

    Examples
    --------
    >>> [decode_value(v) for v in (b"34", b"true", b"null", b"[1, 2]", b"KR", None)]
    [34, True, None, [1, 2], 'KR', None]
    """
    if raw is None:
        return None
    try:
        value = _orjson.loads(raw)
    except _orjson.JSONDecodeError:
        return _decode_text(raw)
    return _decode_text(raw) if _maybe_lossy(value, raw) else value


# orjson reads an integer beyond 64 bits as a float; such values are re-read with json.
_LONG_DIGITS = re.compile(r"\d{19}")
_LONG_DIGITS_BYTES = re.compile(rb"\d{19}")


def _maybe_lossy(value: Any, raw: bytes | str) -> bool:
    if not isinstance(value, float | list):
        return False
    if isinstance(raw, str):
        return _LONG_DIGITS.search(raw) is not None
    return _LONG_DIGITS_BYTES.search(raw) is not None


def _decode_text(raw: bytes | str) -> Any:
    """The slow path of a value orjson refused: Python's JSON, then raw text, else invalid."""
    if isinstance(raw, bytes | bytearray):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return InvalidValue(bytes(raw), NOT_UTF8)
    else:
        text = raw
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except _NotFinite:
        return InvalidValue(raw, NOT_FINITE)
    except ValueError:
        return text


def decode_values(raws: Iterable[bytes | str | None]) -> list[Any]:
    """Decode many stored values (see :func:`decode_value`)."""
    loads = _orjson.loads
    error = _orjson.JSONDecodeError
    out: list[Any] = []
    append = out.append
    for raw in raws:
        if raw is None:
            append(None)
            continue
        try:
            value = loads(raw)
        except error:
            append(_decode_text(raw))
            continue
        # only a float or list whose text holds 19 digits in a row can have lost precision
        if (type(value) is float or type(value) is list) and len(raw) >= 19 and _maybe_lossy(value, raw):
            value = _decode_text(raw)
        append(value)
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"value {value!r} of type {type(value).__name__} is not JSON serialisable")


def encode_value(value: Any) -> str:
    """Encode one value as the JSON text the writer stores.

    NaN and missing values are written as ``null``.

    Examples
    --------
    >>> encode_value(34), encode_value(1250.5), encode_value(float("nan")), encode_value("é")
    ('34', '1250.5', 'null', '"é"')
    """
    if _is_missing(value):
        return "null"
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"cannot encode non-finite float {value!r} as JSON")
    return json.dumps(value, ensure_ascii=False, default=_json_default, allow_nan=False)
