"""Frames in and out of an augmenter: polars input, columns placed by position, the output container."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias, overload

import numpy as np
import pandas as pd
from sklearn import get_config
from sklearn.base import TransformerMixin

if TYPE_CHECKING:
    import polars as pl

__all__ = ["Frame", "as_pandas", "by_position", "in_container"]

#: A frame an augmenter takes and gives: pandas, or polars (input, or ``set_output(transform="polars")``).
Frame: TypeAlias = "pd.DataFrame | pl.DataFrame"


@overload
def as_pandas(X: Frame) -> pd.DataFrame: ...
@overload
def as_pandas(X: Any) -> Any: ...
def as_pandas(X: Any) -> Any:
    """``X`` as a pandas DataFrame when it is a polars DataFrame (converted once, here); else ``X`` itself."""
    if isinstance(X, pd.DataFrame):
        return X
    if type(X).__module__.partition(".")[0] == "polars" and type(X).__name__ == "DataFrame":
        return X.to_pandas()
    return X


def by_position(column: Any, index: pd.Index) -> Any:
    """``column`` ready to be the next column of a frame with ``index``, its values in row order.

    A Series would be aligned on its own labels, so its values are taken by position; an
    object-dtype column is given as a Series on ``index`` itself (no realignment, duplicated labels
    included) and told its dtype, because pandas infers ``str`` from an object array of all-text
    values.
    """
    if isinstance(column, pd.Series):
        column = column.array
    dtype = getattr(column, "dtype", None)
    if dtype is not None and pd.api.types.is_object_dtype(dtype):
        return pd.Series(np.asarray(column, dtype=object), index=index, dtype=object, copy=False)
    return column


def in_container(out: pd.DataFrame, X: Any, config: Mapping[str, Any] | None,
                 names: Callable[[], np.ndarray]) -> Frame:
    """``out`` in the configured output container: ``config`` (an estimator's ``set_output``), else scikit-learn's.

    The default container is answered at once; any other is made by scikit-learn's own
    ``set_output`` wrapper (:class:`_Container`), so the result is exactly scikit-learn's.
    """
    dense = config["transform"] if config and "transform" in config else get_config()["transform_output"]
    if dense == "default":
        return out
    wrapped: Frame = _Container(out, names).set_output(transform=dense).transform(X)
    return wrapped


class _Container(TransformerMixin):
    """Hands an augmenter's output to scikit-learn's ``set_output`` wrapping, for the non-default containers.

    Its ``transform`` is wrapped by scikit-learn (``_SetOutputMixin``) as the augmenter's was before it
    opted out, so ``pandas``/``polars`` output and the errors for unknown ones are scikit-learn's.
    """

    def __init__(self, out: pd.DataFrame, names: Callable[[], np.ndarray]) -> None:
        self._out = out
        self._names = names

    def fit(self, X: Any, y: Any = None) -> _Container:
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        return self._out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return self._names()
