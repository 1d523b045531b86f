"""Spines and values as the offline-store tests build and compare them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["NS", "T0", "at", "missing", "plain", "spine_of"]

T0 = pd.Timestamp("2024-01-01", tz="UTC")
NS = pd.Timedelta(1, "ns")


def at(seconds: float) -> pd.Timestamp:
    """``seconds`` after :data:`T0`."""
    return T0 + pd.Timedelta(seconds=seconds)


def spine_of(rows: Sequence[tuple[Any, ...]], columns: Sequence[str] = ("user_id", "ts")) -> pd.DataFrame:
    """A spine as the adapter hands it over: entity keys as text or None, times as UTC nanoseconds."""
    frame = pd.DataFrame(list(rows), columns=list(columns))
    for column in columns[:-1]:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    frame[columns[-1]] = pd.to_datetime(frame[columns[-1]], utc=True).astype("datetime64[ns, UTC]")
    return frame


def missing(value: Any) -> bool:
    """Whether a looked-up value is missing, in any of the ways pandas and NumPy spell it."""
    if isinstance(value, np.datetime64):
        return bool(np.isnat(value))
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def plain(values: Any) -> list[Any]:
    """Values as comparable Python objects, every kind of missing as None."""
    return [None if missing(v) else v for v in list(values)]
