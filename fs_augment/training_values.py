"""What a training lookup tells of each feature: its summary (``feature_stats_``) and values that look hand-written.

:func:`summarize` gives the statistics a fitted augmenter keeps of every training feature (and a
logged model carries), for later skew and drift checks. :func:`warn_about_training_values` warns,
once a feature, about values that are read but were probably not meant so.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from fs_augment import dtypes
from fs_augment.errors import FeatureQualityWarning

__all__ = ["summarize", "warn_about_training_values"]


def summarize(column: pd.Series, kind: str, top: int = 20) -> dict[str, Any]:
    """Summary statistics of one feature column, as plain JSON-ready data.

    Examples
    --------
    >>> import pandas as pd
    >>> summarize(pd.Series(["KR", "KR", "US", None]), "str")["top_values"]
    {'KR': 0.6666666666666666, 'US': 0.3333333333333333}
    """
    n = len(column)
    present = column.dropna()
    out: dict[str, Any] = {
        "kind": kind,
        "dtype": str(column.dtype),
        "count": len(present),
        "missing_rate": float(1 - len(present) / n) if n else 0.0,
    }
    if kind in ("int", "float") and len(present):
        numbers = present.astype("float64").clip(-1e150, 1e150)  # keeps std finite
        q = numbers.quantile([0.05, 0.5, 0.95]).tolist()
        out.update(mean=float(numbers.mean()), std=float(numbers.std(ddof=0)), min=float(numbers.min()),
                   max=float(numbers.max()), p05=q[0], p50=q[1], p95=q[2])
    elif kind in ("str", "bool") and len(present):
        counts = present.astype(str).value_counts(normalize=True).head(top)
        out["top_values"] = {str(k): float(v) for k, v in counts.items()}
        out["distinct"] = int(present.astype(str).nunique())
    return out


def warn_about_training_values(names: Sequence[str], qualified: Sequence[str], kinds: Mapping[str, str],
                               values: Mapping[str, Any]) -> None:
    """Warn, once a feature, about training values that are read but were probably not meant so.

    A feature whose values mix kinds is pinned ``object`` (``True`` typed by hand beside JSON
    ``true``; ``01234``, which is no JSON number, beside ``12345``); a text feature keeps empty
    text and surrounding whitespace as part of its values.

    Parameters
    ----------
    names, qualified : sequence of str
        Output names and the matching ``namespace:feature`` names.
    kinds : mapping
        Output name -> pinned kind.
    values : mapping
        ``namespace:feature`` -> the training lookup's values.
    """
    for name, source in zip(names, qualified, strict=True):
        kind = kinds[name]
        if kind == "object":
            message = _mixed_kinds(name, values[source])
        elif kind == "str":
            message = _padded_text(name, values[source])
        else:
            continue
        if message:
            warnings.warn(message, FeatureQualityWarning, stacklevel=4)


def _mixed_kinds(name: str, values: Any) -> str | None:
    seen = dtypes.value_kinds(values)
    if len(seen) <= 1:
        return None
    return (f"feature {name}: its training values mix kinds: {dtypes.describe_kinds(seen)}; it is pinned object, so "
            "a model sees text and numbers as different values. Write each value of a feature as JSON of one kind: "
            "true/false, numbers without leading zeros, text in double quotes")


def _padded_text(name: str, values: Any) -> str | None:
    issues = dtypes.text_issues(values)
    parts = []
    if issues.empty:
        parts.append(f"{issues.empty} {'is' if issues.empty == 1 else 'are'} empty")
    if issues.padded:
        parts.append(f"{issues.padded} {'has' if issues.padded == 1 else 'have'} surrounding whitespace")
    if not parts:
        return None
    return (f"feature {name}: of its {issues.present} training text values, {' and '.join(parts)} "
            f"(e.g. {issues.example!r}); they are kept as they are: empty text is not missing and whitespace is "
            "part of the text. Write text as JSON without padding (\"KR\"; echo adds a newline: use redis-cli SET "
            "key '\"KR\"'), and leave a missing value unset or null")
