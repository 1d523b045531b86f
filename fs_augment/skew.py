"""Online/offline agreement: does the online store serve what the offline store holds?

:func:`check_skew` samples entities that the offline store has (seeded, so a
run can be repeated), reads each sampled entity's latest offline row
(:meth:`~fs_augment.stores.base.OfflineStore.read_latest`) and its online
values and event time (one pass of batched reads: the online store's chunked
``MGET``, no ``SCAN``), and counts per feature how often they disagree.

Each sampled entity of a feature is exactly one of:

* **agreed** -- the online value equals the offline one (both missing counts);
* **missing online** -- the offline row has a value, the online key is absent
  (or JSON ``null``);
* **lagging** -- the values differ and the online event time
  (``{namespace}:event_timestamp:{entity}``) is older than the offline row's
  ``event_timestamp``: the online copy was not refreshed yet;
* **mismatched** -- the values differ otherwise (also when the online copy is
  newer, or no event time is known on either side).

Values are compared as decoded from the store (:func:`fs_augment.keys.decode_value`),
not as the augmenter coerces them: numbers (integers and floats alike) agree
within a relative tolerance of 1e-9; a bool agrees only with a bool; text only
with text, so ``"34"`` set as text online differs from 34 offline; offline
times agree with online ISO 8601 text of the same instant; an unreadable online
value (:class:`~fs_augment.keys.InvalidValue`) never agrees.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fs_augment.config import load_config
from fs_augment.errors import ConfigError
from fs_augment.keys import TIMESTAMP_COLUMN, InvalidValue, parse_event_time
from fs_augment.recipe import FeatureGroup, Recipe, load_recipe

if TYPE_CHECKING:
    from fs_augment.stores.base import OnlineStore

__all__ = ["RELATIVE_TOLERANCE", "SKEW_COLUMNS", "check_skew", "values_agree"]

#: The columns of :func:`check_skew`'s table, in order.
SKEW_COLUMNS = ("feature", "sampled", "compared", "mismatched", "missing_online", "lagging", "mismatch_rate",
                "examples")
#: Numbers agree when they differ by at most this share of the larger one.
RELATIVE_TOLERANCE = 1e-9
_EXAMPLES = 3


def _plain(value: Any) -> Any:
    """An offline cell as a plain Python value; None for every kind of missing."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _utc(moment: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def values_agree(offline: Any, online: Any) -> bool:
    """Whether an online value (as decoded) agrees with an offline one (see the module documentation).

    Examples
    --------
    >>> values_agree(34, 34.0), values_agree(0.1 + 0.2, 0.3), values_agree(34, "34"), values_agree(1, True)
    (True, True, False, False)
    >>> values_agree(None, None), values_agree(None, 0), values_agree([1, 2], [1, 2.0])
    (True, False, True)
    """
    offline = _plain(offline)
    if offline is None or online is None:
        return offline is None and online is None
    if type(online) is InvalidValue:
        return False
    if isinstance(offline, bool) or isinstance(online, bool):
        return isinstance(offline, bool) and isinstance(online, bool) and offline == online
    if _is_number(offline) or _is_number(online):
        if not (_is_number(offline) and _is_number(online)):
            return False
        if isinstance(offline, numbers.Integral) and isinstance(online, numbers.Integral):
            return int(offline) == int(online)
        return math.isclose(float(offline), float(online), rel_tol=RELATIVE_TOLERANCE, abs_tol=0.0)
    if isinstance(offline, dt.datetime | dt.date):
        try:
            return isinstance(online, str) and _utc(offline) == _utc(online)
        except ValueError:
            return False
    if isinstance(offline, list):
        return isinstance(online, list) and len(offline) == len(online) and all(
            values_agree(a, b) for a, b in zip(offline, online, strict=True))
    return type(offline) is type(online) and offline == online


def _sampled(latest: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Up to ``n`` of the offline latest rows that have an entity, chosen with ``seed``."""
    rows = latest[latest.iloc[:, 0].notna()]
    if len(rows) > n:
        rows = rows.sample(n, random_state=seed)
    return rows.reset_index(drop=True)


def _times_ns(values: Sequence[Any]) -> list[int | None]:
    """Offline ``event_timestamp`` cells as nanoseconds since the epoch (None for NaT)."""
    return [None if pd.isna(v) else _utc(v).value for v in values]


def _online_time(stamp: Any) -> int | None:
    try:
        return parse_event_time(stamp)
    except ValueError:  # an unreadable event time: its age is unknown
        return None


def _feature_row(name: str, entities: Sequence[str], offline: Sequence[Any], online: Sequence[Any],
                 offline_ns: Sequence[int | None], online_ns: Sequence[int | None]) -> dict[str, Any]:
    """One row of the table: how the sampled online values of one feature compare with the offline ones."""
    missing = mismatched = lagging = 0
    examples: list[str] = []
    for entity, want, got, t_off, t_on in zip(entities, offline, online, offline_ns, online_ns, strict=True):
        if got is None and _plain(want) is not None:
            missing += 1
        elif values_agree(want, got):
            continue
        elif t_off is not None and t_on is not None and t_on < t_off:
            lagging += 1
        else:
            mismatched += 1
            if len(examples) < _EXAMPLES:
                examples.append(entity)
    compared = len(entities) - missing
    return {"feature": name, "sampled": len(entities), "compared": compared, "mismatched": mismatched,
            "missing_online": missing, "lagging": lagging,
            "mismatch_rate": mismatched / compared if compared else math.nan, "examples": examples}


def _compare(online: OnlineStore, groups: Sequence[FeatureGroup],
             samples: Sequence[pd.DataFrame]) -> list[dict[str, Any]]:
    """Read every sampled entity's online values and event times in one batched pass, and compare."""
    from fs_augment.stores.base import FeatureRequest

    requests = []
    for group, frame in zip(groups, samples, strict=True):
        requests.append(FeatureRequest(group.namespace, (*group.features, TIMESTAMP_COLUMN),
                                       frame.iloc[:, 0].astype(str).tolist(), group.entity_column))
    wanted = [r for r in requests if r.entities]
    fetched = iter(online.fetch(wanted, online=False) if wanted else ())
    rows = []
    for group, request, frame in zip(groups, requests, samples, strict=True):
        answer = next(fetched) if request.entities else [[] for _ in request.features]
        *values, stamps = answer
        offline_ns = (_times_ns(frame[TIMESTAMP_COLUMN].tolist()) if TIMESTAMP_COLUMN in frame.columns
                      else [None] * len(frame))
        online_ns = [_online_time(s) for s in stamps]
        for feature, name, got in zip(group.features, group.qualified_names, values, strict=True):
            rows.append(_feature_row(name, request.entities, frame[feature].tolist(), got, offline_ns, online_ns))
    return rows


def check_skew(
    recipe: str | os.PathLike[str] | Mapping[str, Any] | Recipe,
    *,
    env: str | None = None,
    config_dir: str | os.PathLike[str] | None = None,
    sample: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Compare the online values of a recipe's features with the latest offline rows, on a sample of entities.

    For every namespace of the recipe, up to ``sample`` entities of the
    offline store's latest rows are drawn with ``seed`` (the same arguments
    draw the same entities); their online values and event times are read in
    one pass of batched reads (chunked ``MGET`` on Redis and Redis Cluster).
    How values are compared, and when a difference counts as lagging, is
    described in :mod:`fs_augment.skew`.

    Parameters
    ----------
    recipe : path-like, dict or Recipe
        The features to compare.
    env, config_dir : optional
        The environment (default ``$FS_AUGMENT_ENV``, else ``local``) and its
        config folder (default ``$FS_AUGMENT_CONFIG_DIR``, else ``./config``).
        The environment must have an offline store.
    sample : int
        Entities sampled per namespace (all of them when the offline store has fewer).
    seed : int
        Seed of the sample.

    Returns
    -------
    DataFrame
        One row per feature of the recipe, in its order, with the columns:

        * ``feature`` (str) -- ``namespace:feature``;
        * ``sampled`` (int) -- sampled entities (``compared + missing_online``);
        * ``compared`` (int) -- sampled entities with an online value to compare
          (or missing on both sides);
        * ``mismatched`` (int) -- of those, values that differ and are not lagging;
        * ``missing_online`` (int) -- a value offline, none online;
        * ``lagging`` (int) -- values that differ because the online event time
          is older than the offline row's;
        * ``mismatch_rate`` (float) -- ``mismatched / compared``; NaN when
          nothing was compared;
        * ``examples`` (list of str) -- up to 3 entity keys whose values mismatch.

        A namespace whose offline table has no rows gives its features rows
        with ``sampled == 0`` and a NaN ``mismatch_rate``: there is nothing to
        compare, which is not an error.

    Raises
    ------
    ConfigError
        The environment has no offline store, or cannot be loaded.
    RecipeError
        The recipe cannot be loaded.
    FeatureNotFoundError
        The offline store has no table for a namespace, or not the feature.
    StoreUnavailableError
        A store could not be reached.
    ValueError
        ``sample`` is not a positive integer or ``seed`` not a non-negative integer.

    Examples
    --------
    >>> import tempfile
    >>> from fs_augment.demo import write_demo_data
    >>> project = write_demo_data(tempfile.mkdtemp(), users=20, products=5, rows=50)
    >>> table = check_skew(project.recipe, env="local", config_dir=project.config_dir, sample=10)
    >>> table[["feature", "sampled", "compared", "mismatched", "mismatch_rate"]].head(2)
                              feature  sampled  compared  mismatched  mismatch_rate
    0           user_demographics:age       10        10           0            0.0
    1  user_demographics:country_code       10        10           0            0.0
    >>> list(table.columns) == list(SKEW_COLUMNS)
    True
    """
    from fs_augment.connections import connect

    if isinstance(sample, bool) or not isinstance(sample, numbers.Integral) or sample < 1:
        raise ValueError(f"sample must be a positive integer, got {sample!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    parsed = load_recipe(recipe)
    config = load_config(env, config_dir)
    with connect(config=config) as adapter:
        if adapter.offline is None:
            raise ConfigError(
                f"environment {config.env!r} has no offline store to compare the online store with: set "
                "feature_store.connection_info.offline_store_uri")
        groups = list(parsed.groups)
        samples = [_sampled(adapter.offline.read_latest(g), int(sample), int(seed)) for g in groups]
        rows = _compare(adapter.online, groups, samples)
    table = pd.DataFrame(rows, columns=list(SKEW_COLUMNS))
    return table.astype({"sampled": "int64", "compared": "int64", "mismatched": "int64",
                         "missing_online": "int64", "lagging": "int64", "mismatch_rate": "float64"})
