"""What differs between the pandas lines fs_augment supports (2.2+ and 3.x, numpy 1.26+ and 2.x).

Every check of a pandas version is made here, once, at import; the rest of the package uses the
names below and never looks at a version itself.

- **Text.** pandas 3 gives text its ``str`` dtype (``pd.StringDtype`` with NaN for missing); pandas 2
  keeps text in ``object`` columns. A ``str`` feature takes the text dtype of the pandas it runs on,
  so its columns look like every other text column of that pandas (read from parquet, CSV, ...).
- **Building frames from blocks.** ``pandas.api.internals.create_dataframe_from_blocks`` (pandas 3)
  builds a small frame without re-validating each column; without it (pandas 2) the one-row
  fast path is off and ``pd.DataFrame`` builds every frame.
- **Copy-on-write.** Always on in pandas 3, opt-in in pandas 2. The package relies on it nowhere:
  copy-on-write tracks the arrays of Series and frames, not bare arrays handed to a constructor,
  so an output built from the spine's arrays copies them on both lines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "PANDAS_3",
    "STRING_ARRAY",
    "TEXT_DTYPE",
    "TEXT_DTYPE_NAME",
    "create_dataframe_from_blocks",
    "one_text",
    "text_array",
]

#: pandas 3 or later (``str`` text dtype, copy-on-write always on).
PANDAS_3: bool = int(pd.__version__.split(".", 1)[0]) >= 3

#: pandas' public constructor of a DataFrame from arrays in block form (pandas 3); None where pandas has
#: none (pandas 2: every frame is built by pd.DataFrame)
create_dataframe_from_blocks: Callable[..., pd.DataFrame] | None
try:  # pandas-stubs has no stub of pandas.api.internals
    from pandas.api.internals import create_dataframe_from_blocks  # type: ignore[import-not-found,no-redef]
except ImportError:
    create_dataframe_from_blocks = None

if PANDAS_3:
    #: the dtype of ``str`` features: pandas' ``str`` on Python storage (cheapest to build row by row)
    TEXT_DTYPE: Any = pd.StringDtype("python", na_value=np.nan)
    #: ``str(TEXT_DTYPE)``, the name ``feature_dtypes_`` reports
    TEXT_DTYPE_NAME = "str"
    #: the array class of :data:`TEXT_DTYPE` values; None where text is held in object arrays
    STRING_ARRAY: Any = pd.arrays.StringArray
else:
    TEXT_DTYPE = np.dtype(object)
    TEXT_DTYPE_NAME = "object"
    STRING_ARRAY = None


def text_array(values: Any) -> Any:
    """Text and missing values (None, NaN, NA) as an array of :data:`TEXT_DTYPE`, NaN for missing.

    Examples
    --------
    >>> import numpy as np
    >>> values = text_array(np.array(["KR", None], dtype=object))
    >>> values.dtype == TEXT_DTYPE, values[0], bool(np.isnan(values[1]))
    (True, 'KR', True)
    """
    if STRING_ARRAY is None:
        out = np.array(values, dtype=object)  # a copy: the caller's array keeps its None/NA
        out[pd.isna(out)] = np.nan
        return out
    return pd.array(values, dtype=TEXT_DTYPE)


def one_text(value: str | float) -> Any:
    """A one-value array of :data:`TEXT_DTYPE` holding ``value`` (a str, or NaN for missing).

    Same result as :func:`text_array` of a one-value array, without its checks of every value
    (``value`` is known to be a str or NaN), for the one-row serving path.

    Examples
    --------
    >>> one_text("KR")[0], len(one_text(float("nan")))
    ('KR', 1)
    """
    if _ONE_TEXT is not None:  # a copy of a checked one-value array, its cell written through to_numpy's view
        out = _ONE_TEXT.copy()
        out.to_numpy(copy=False)[0] = value
        return out
    holder = np.empty(1, dtype=object)
    holder[0] = value
    if STRING_ARRAY is None:
        return holder
    return STRING_ARRAY(holder, dtype=TEXT_DTYPE)


def _writable_one_text() -> Any:
    """A one-value ``str`` array whose copies take a cell through ``to_numpy(copy=False)``, or None.

    ``StringArray.to_numpy(copy=False)`` gives the array's own object ndarray on pandas 3 (no
    missing value to replace): writing a str or NaN there costs a fifth of the constructor's
    checks. Whether this pandas still does so is tried here, once; where it does not, every
    one-value array is built by the constructor (``tests/test_compat.py`` pins both).
    """
    if STRING_ARRAY is None:
        return None
    template = STRING_ARRAY(np.array([""], dtype=object), dtype=TEXT_DTYPE)
    try:
        probe = template.copy()
        probe.to_numpy(copy=False)[0] = "x"
        missing = template.copy()
        missing.to_numpy(copy=False)[0] = np.nan
        ok = (probe[0] == "x" and template[0] == "" and bool(missing.isna()[0])
              and not probe.isna()[0] and probe.dtype == TEXT_DTYPE)
    except (TypeError, ValueError):  # pragma: no cover - a read-only view
        return None
    return template if ok else None


_ONE_TEXT: Any = _writable_one_text()
