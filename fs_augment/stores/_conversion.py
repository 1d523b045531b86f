"""What the offline stores share at their edges: spine columns in, joined results out.

Both :mod:`fs_augment.stores.offline` (DuckDB) and
:mod:`fs_augment.stores.bigquery` read the spine the same way (entity keys as
Arrow text, times as naive UTC ``datetime64``) and hand back their joined
values with the same dtypes (:func:`scatter`), so a recipe gives the same
arrays whichever store runs it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from fs_augment.errors import SpineError
from fs_augment.keys import entity_texts

__all__ = ["aligned_values", "scatter", "spine_column", "spine_entities", "spine_stamps", "text_objects"]

_EXACT_FLOAT_INT = 1 << 53


# --- spine -------------------------------------------------------------------

def spine_column(spine: pd.DataFrame, column: str, what: str) -> pd.Series:
    """The spine's ``column``, or SpineError naming the columns it has (``what``: its role, for messages)."""
    if column not in spine.columns:
        raise SpineError(f"{what} column {column!r} is not in the spine; the spine has columns: "
                         f"{', '.join(map(str, spine.columns)) or 'none'}")
    values: pd.Series | pd.DataFrame = spine[column]  # a frame when the name is duplicated
    if isinstance(values, pd.DataFrame):
        raise SpineError(f"the spine has more than one column named {column!r}")
    return values


def spine_stamps(spine: pd.DataFrame, column: str, dtype: str | None = None) -> np.ndarray:
    """The spine's times as naive UTC ``datetime64`` (NaT for none), in ``dtype`` or their own resolution.

    Naive times are read as UTC, zoned ones converted; anything else is
    parsed by :func:`pandas.to_datetime`.

    Examples
    --------
    >>> spine = pd.DataFrame({"ts": pd.to_datetime(["2024-01-01T01:00+01:00", None])})
    >>> spine_stamps(spine, "ts", "datetime64[ns]")
    array(['2024-01-01T00:00:00.000000000',                           'NaT'],
          dtype='datetime64[ns]')
    """
    values = spine_column(spine, column, "timestamp")
    try:
        if not isinstance(values.dtype, pd.DatetimeTZDtype) and values.dtype.kind != "M":
            values = pd.to_datetime(values, utc=True)
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return values.to_numpy(dtype=dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise SpineError(f"timestamp column {column!r} cannot be read as times: {exc}") from None


def spine_entities(spine: pd.DataFrame, column: str) -> pa.Array:
    """The spine's entity keys as Arrow text, null for no entity (other values as the contract's text)."""
    values = spine_column(spine, column, "entity")
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        try:
            return pa.Array.from_pandas(values, type=pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass  # not all text: convert value by value below
    return pa.array(entity_texts(values, column), type=pa.string())


# --- results -----------------------------------------------------------------

def text_objects(values: pa.ChunkedArray) -> np.ndarray:
    """Arrow text as an object array of str (None for null), one Python str per distinct value.

    Feature text is mostly a few categories: reading it through a dictionary makes a handful of
    str objects rather than one per row, so the copies, scans and checks that follow touch a
    little memory instead of a million scattered objects.
    """
    encoded = (values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values).dictionary_encode()
    words = np.empty(len(encoded.dictionary) + 1, dtype=object)
    words[:-1] = encoded.dictionary.to_numpy(zero_copy_only=False)
    words[-1] = None
    texts: np.ndarray = words[encoded.indices.fill_null(len(encoded.dictionary)).to_numpy()]
    return texts


def aligned_values(table: pa.Table, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Feature columns aligned with the spine (nulls for missing) as :func:`scatter` gives them.

    With ``rows``, only the spine rows at those positions, in that order: the
    values a lookup of just those rows would give.

    Examples
    --------
    >>> table = pa.table({"n:age": [30, None, 40]})
    >>> aligned_values(table)["n:age"], aligned_values(table, np.array([2, 0]))["n:age"]
    (array([30., nan, 40.]), array([40, 30]))
    """
    if rows is not None:
        table = table.take(pa.array(rows, pa.int64()))
    n = table.num_rows
    every = np.arange(n)
    return {name: scatter(column, every, n) for name, column in zip(table.column_names, table.columns, strict=True)}


def scatter(values: pa.ChunkedArray, rows: np.ndarray, n: int) -> np.ndarray:
    """Spread the joined values over ``n`` spine rows; the rows not joined are missing.

    ``values[i]`` belongs to spine row ``rows[i]``. The dtypes: ``float64``
    with NaN for floats; ``int64`` for integers when none is missing, else
    ``float64`` with NaN, or an object array of Python ints and None when a
    value is beyond 2**53; ``bool`` or, with missing values, an object array
    with None; timestamps as ``datetime64`` (zoned ones: their UTC values)
    with NaT; text and everything else as object arrays with None.

    Examples
    --------
    >>> scatter(pa.chunked_array([[7, 9]]), np.array([2, 0]), 3)
    array([ 9., nan,  7.])
    >>> scatter(pa.chunked_array([["a", None]]), np.array([0, 1]), 2)
    array(['a', None], dtype=object)
    """
    kind = values.type
    complete = len(rows) == n and values.null_count == 0
    if pa.types.is_floating(kind):
        out = np.full(n, np.nan, dtype=np.float64)
        out[rows] = values.to_numpy()
        return out
    if pa.types.is_integer(kind):
        if complete:
            out = np.empty(n, dtype=np.int64)
            out[rows] = values.to_numpy()
            return out
        filled = values.fill_null(0).to_numpy()
        if len(filled) and (filled.max() > _EXACT_FLOAT_INT or filled.min() < -_EXACT_FLOAT_INT):  # exact ints
            obj = np.full(n, None, dtype=object)
            obj[rows] = np.asarray(values.to_pylist(), dtype=object)
            return obj
        out = np.full(n, np.nan, dtype=np.float64)
        out[rows] = values.to_numpy()  # nulls become NaN
        return out
    if pa.types.is_boolean(kind) and complete:
        out = np.empty(n, dtype=bool)
        out[rows] = values.to_numpy()
        return out
    if pa.types.is_timestamp(kind):
        stamps = values.cast(pa.timestamp(kind.unit)).to_numpy()  # zoned times: their UTC values
        out = np.full(n, np.datetime64("NaT"), dtype=stamps.dtype)
        out[rows] = stamps
        return out
    out = np.full(n, None, dtype=object)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        out[rows] = text_objects(values)
    elif pa.types.is_boolean(kind):
        out[rows] = values.to_numpy(zero_copy_only=False)
    else:
        holder = np.empty(len(rows), dtype=object)
        holder[:] = values.to_pylist()
        out[rows] = holder
    return out
