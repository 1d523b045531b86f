"""Diagnostics behind ``fs-augment check`` and ``fs-augment lookup``.

:func:`run_checks` is the contract check a data engineer or ML engineer runs
against an environment before training or serving a recipe. It returns rows,
each a :class:`CheckRow` with status ``PASS``, ``FAIL``, ``WARN`` or ``SKIP``:

* **connection** -- the online store answers one lookup;
* **online** / **offline** -- every declared feature exists in the online
  store and, when the environment has one, in the offline store;
* **coverage** -- the share of a sample of spine entities (from the recipe's
  loader, else the offline store's entities) that have a value online;
* **type** -- the kind of the values (``int``, ``float``, ``bool``, ``str``)
  agrees between online and offline, and is not a mix;
* **values** -- among the sampled online values, those that cannot be read
  (not UTF-8, a number beyond float64: FAIL), and the empty texts and texts
  with surrounding whitespace, which are read as they are (WARN);
* **freshness** -- the newest ``event_timestamp`` of each namespace offline;
* **event times** -- from the online event-time keys
  ``{namespace}:event_timestamp:{entity}`` of the sampled entities: the age
  distribution (min, median, p95, max) and how many would be stale under the
  recipe's ``max_age`` (answered as missing online). Unreadable event times
  FAIL; a ``max_age`` with no event times to apply it to (online, ``max_age``
  then never applies), or under which every sampled entity is stale, WARN.

:func:`lookup_features` is one online lookup, feature by feature.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fs_augment.config import Config, load_config
from fs_augment.dtypes import describe_kinds, infer_kind, text_issues, value_kinds
from fs_augment.errors import FeatureNotFoundError, FsAugmentError, SpineError, StoreError
from fs_augment.keys import TIMESTAMP_COLUMN, InvalidValue, entity_texts, parse_event_time
from fs_augment.recipe import FeatureGroup, Recipe, load_recipe

if TYPE_CHECKING:
    from fs_augment.adapter import FeatureStoreAdapter
    from fs_augment.stores.base import OfflineStore

__all__ = ["FAIL", "PASS", "SKIP", "WARN", "CheckRow", "LookupRow", "lookup_features", "run_checks"]

PASS, FAIL, WARN, SKIP = "PASS", "FAIL", "WARN", "SKIP"
_PROBE_ENTITY = "__fs_augment_check__"
_NUMBER_KINDS = {"int", "float"}


@dataclass(frozen=True)
class CheckRow:
    """One line of the check report.

    Examples
    --------
    >>> CheckRow("online", "user_demographics:age", PASS, "present").failed
    False
    """

    check: str
    target: str
    status: str
    detail: str = ""

    @property
    def failed(self) -> bool:
        """Whether this row fails the check run."""
        return self.status == FAIL


@dataclass(frozen=True)
class LookupRow:
    """One feature of an online lookup: its value and whether the store had it."""

    feature: str
    value: Any
    found: bool
    note: str = ""


def _kinds_agree(online: str, offline: str) -> bool:
    """Whether values of these kinds are the same feature type (ints and floats are both numbers).

    Examples
    --------
    >>> _kinds_agree("int", "float"), _kinds_agree("str", "int")
    (True, False)
    """
    return online == offline or {online, offline} <= _NUMBER_KINDS


def _present(values: Sequence[Any]) -> list[Any]:
    return [v for v in values if v is not None and not (isinstance(v, float | np.floating) and np.isnan(v))]


def _probe(adapter: FeatureStoreAdapter, groups: Sequence[FeatureGroup]) -> CheckRow:
    from fs_augment.stores.base import FeatureRequest

    group = groups[0]
    start = time.perf_counter()
    try:
        adapter.online.fetch([FeatureRequest(group.namespace, group.features[:1], [_PROBE_ENTITY])], online=True)
    except FeatureNotFoundError:
        pass  # the store answered; the feature checks report what is missing
    except StoreError as exc:
        return CheckRow("connection", adapter.online.describe(), FAIL, str(exc))
    elapsed = (time.perf_counter() - start) * 1e3
    return CheckRow("connection", adapter.online.describe(), PASS, f"env {adapter.env!r}, answered in {elapsed:.1f} ms")


def _presence(adapter: FeatureStoreAdapter, groups: Sequence[FeatureGroup]) -> tuple[list[CheckRow], set[str]]:
    """Rows for every feature online and offline, and the qualified names present online."""
    rows: list[CheckRow] = []
    online_ok: set[str] = set()
    for group in groups:
        have: list[str] | None = None
        for feature, name in zip(group.features, group.qualified_names, strict=True):
            if adapter.online.has_feature(group.namespace, feature):
                online_ok.add(name)
                rows.append(CheckRow("online", name, PASS, "present"))
                continue
            if have is None:
                have = adapter.online.list_features(group.namespace)
            listing = ", ".join(have) if have else "nothing (unknown namespace?)"
            rows.append(CheckRow("online", name, FAIL, f"absent; the namespace has: {listing}"))
    if adapter.offline is None:
        return rows, online_ok
    for group in groups:
        try:
            offline_have = set(adapter.offline.list_features(group.namespace))
        except FeatureNotFoundError as exc:
            rows.extend(CheckRow("offline", name, FAIL, str(exc)) for name in group.qualified_names)
            continue
        for feature, name in zip(group.features, group.qualified_names, strict=True):
            if feature in offline_have:
                rows.append(CheckRow("offline", name, PASS, "present"))
            else:
                listing = ", ".join(sorted(offline_have)) or "no features"
                rows.append(CheckRow("offline", name, FAIL, f"absent; the namespace has: {listing}"))
    return rows, online_ok


def _narrow(groups: Sequence[FeatureGroup], keep: set[str]) -> list[FeatureGroup]:
    """The groups with only the features in ``keep`` (qualified names); empty groups dropped."""
    out = []
    for group in groups:
        features = tuple(f for f, n in zip(group.features, group.qualified_names, strict=True) if n in keep)
        if features:
            out.append(FeatureGroup(group.namespace, features, group.entity_column, {}, group.max_age))
    return out


def _offline_latest(offline: OfflineStore, groups: Sequence[FeatureGroup]) -> dict[str, pd.DataFrame]:
    """Each group's latest offline rows (entity as text first), by namespace; groups that fail are left out."""
    out = {}
    for group in groups:
        try:
            out[group.namespace] = offline.read_latest(group)
        except FeatureNotFoundError:
            continue
    return out


def _sample_spine(
    recipe: Recipe, config: Config, latest: Mapping[str, pd.DataFrame], groups: Sequence[FeatureGroup], n: int
) -> tuple[pd.DataFrame | None, str]:
    """Entity keys to measure coverage on, and where they came from.

    The recipe's loader is used when the environment (or the loader) names a
    data lake; otherwise the offline store's latest entities are sampled.
    """
    if recipe.loader is not None and (recipe.loader.uri or config.data_lake_uri):
        from fs_augment.loader import load_spine_for_recipe

        X, _ = load_spine_for_recipe(recipe, config)
        if len(X) > n:
            X = X.sample(n, random_state=0)
        return X.reset_index(drop=True), f"{len(X)} spine rows from loader.sql"
    columns: dict[str, pd.Series] = {}
    for group in groups:
        frame = latest.get(group.namespace)
        if frame is None or group.entity_column in columns:
            continue
        keys = frame.iloc[:, 0].dropna()
        columns[group.entity_column] = keys.sample(min(n, len(keys)), random_state=0).reset_index(drop=True)
    if not columns:
        return None, "no data lake for the loader and no offline entities to sample"
    size = max(len(c) for c in columns.values())
    spine = pd.DataFrame({k: v.reindex(range(size)) for k, v in columns.items()})
    return spine, f"up to {n} entities per entity column from the offline store"


def _coverage(
    adapter: FeatureStoreAdapter, spine: pd.DataFrame, groups: Sequence[FeatureGroup], origin: str,
    min_coverage: float,
) -> tuple[list[CheckRow], dict[str, list[Any]]]:
    rows: list[CheckRow] = []
    # what the store holds, whatever its age: the event-times rows say what max_age answers as missing
    values = adapter.lookup_columns(spine, [replace(g, max_age=None) for g in groups], online=False)
    sampled: dict[str, list[Any]] = {}
    for group in groups:
        keyed = int(spine[group.entity_column].notna().sum())
        for name in group.qualified_names:
            column = list(values[name])
            present = _present(column)
            sampled[name] = present
            share = len(present) / keyed if keyed else 0.0
            detail = f"{len(present)}/{keyed} = {share:.1%} of {origin}"
            ok = len(present) > 0 and share >= min_coverage
            rows.append(CheckRow("coverage", name, PASS if ok else FAIL,
                                 detail if ok else f"{detail} (minimum {min_coverage:.0%}, and at least one)"))
    return rows, sampled


def _types(
    groups: Sequence[FeatureGroup], online: Mapping[str, list[Any]], latest: Mapping[str, pd.DataFrame],
    has_offline: bool,
) -> list[CheckRow]:
    rows = []
    for group in groups:
        frame = latest.get(group.namespace)
        for feature, name in zip(group.features, group.qualified_names, strict=True):
            online_values = online.get(name, [])
            if not online_values:
                rows.append(CheckRow("type", name, SKIP, "no online values in the sample to compare"))
                continue
            online_kind = infer_kind(online_values)
            if online_kind == "object":
                seen = value_kinds(online_values)
                what = "mix kinds" if len(seen) > 1 else "are of no plain kind"
                rows.append(CheckRow("type", name, FAIL, f"online values {what}: {describe_kinds(seen)}"))
                continue
            if not has_offline:
                rows.append(CheckRow("type", name, PASS, f"online {online_kind}"))
                continue
            offline_values = _present(frame[feature].tolist()) if frame is not None and feature in frame else []
            if not offline_values:
                rows.append(CheckRow("type", name, SKIP, f"online {online_kind}; no offline values to compare"))
                continue
            offline_kind = infer_kind(offline_values)
            detail = f"online {online_kind}, offline {offline_kind}"
            agree = offline_kind != "object" and _kinds_agree(online_kind, offline_kind)
            rows.append(CheckRow("type", name, PASS if agree else FAIL, detail if agree else f"{detail}: they differ"))
    return rows


def _values(groups: Sequence[FeatureGroup], online: Mapping[str, list[Any]]) -> list[CheckRow]:
    """Rows counting the sampled online values that cannot be read, and the empty and padded texts."""
    rows = []
    for group in groups:
        for name in group.qualified_names:
            values = online.get(name, [])
            if not values:
                rows.append(CheckRow("values", name, SKIP, "no online values in the sample"))
                continue
            reasons: dict[str, int] = {}
            for value in values:
                if type(value) is InvalidValue:
                    reasons[value.reason] = reasons.get(value.reason, 0) + 1
            texts = text_issues(values)
            parts = [f"{count} {reason}" for reason, count in reasons.items()]
            if texts.empty:
                parts.append(f"{texts.empty} empty text")
            if texts.padded:
                parts.append(f"{texts.padded} with surrounding whitespace (e.g. {texts.example!r})")
            if not parts:
                rows.append(CheckRow("values", name, PASS, f"{len(values)} sampled: none unreadable, empty or padded"))
                continue
            status = FAIL if reasons else WARN
            rows.append(CheckRow("values", name, status, f"{len(values)} sampled: {', '.join(parts)}"))
    return rows


def _freshness(offline: OfflineStore, groups: Sequence[FeatureGroup], max_staleness: float | None,
               now: pd.Timestamp) -> list[CheckRow]:
    rows = []
    for group in groups:
        try:
            newest = offline.newest_timestamp(group.namespace)
        except FeatureNotFoundError as exc:
            rows.append(CheckRow("freshness", group.namespace, SKIP, str(exc)))
            continue
        except StoreError as exc:
            rows.append(CheckRow("freshness", group.namespace, FAIL, str(exc)))
            continue
        if newest is None:
            rows.append(CheckRow("freshness", group.namespace, WARN, "no event_timestamp column: rows have no time"))
            continue
        if not isinstance(newest, pd.Timestamp):  # NaT
            rows.append(CheckRow("freshness", group.namespace, FAIL, "no row has an event_timestamp"))
            continue
        age = (now - newest).total_seconds()
        detail = f"newest row {newest.isoformat()} ({_duration(age)} ago)"
        if max_staleness is not None and age > max_staleness:
            rows.append(CheckRow("freshness", group.namespace, FAIL,
                                 f"{detail}: older than the allowed {_duration(max_staleness)}"))
        else:
            rows.append(CheckRow("freshness", group.namespace, PASS, detail))
    return rows


def _event_times(adapter: FeatureStoreAdapter, spine: pd.DataFrame, groups: Sequence[FeatureGroup],
                 now: pd.Timestamp) -> list[CheckRow]:
    """Rows on the age of the sampled entities' online event times, per namespace."""
    from fs_augment.stores.base import FeatureRequest

    rows = []
    for group in groups:
        if group.entity_column not in spine.columns:
            continue
        entities = list(dict.fromkeys(e for e in entity_texts(spine[group.entity_column], group.entity_column)
                                      if e is not None))
        if not entities:
            continue
        try:
            (stamps,), = adapter.online.fetch(
                [FeatureRequest(group.namespace, (TIMESTAMP_COLUMN,), entities, group.entity_column)])
        except FeatureNotFoundError:
            continue  # an unknown namespace: the online rows say so
        except StoreError as exc:
            rows.append(CheckRow("event times", group.namespace, FAIL, str(exc)))
            continue
        rows.append(_event_time_row(group, len(entities), stamps, now.value))
    return rows


def _event_time_row(group: FeatureGroup, sampled: int, stamps: Sequence[Any], now_ns: int) -> CheckRow:
    """The event-times row of one namespace from its sampled entities' stored event times."""
    ages: list[float] = []
    unreadable = 0
    for stamp in stamps:
        try:
            moment = parse_event_time(stamp)
        except ValueError:
            unreadable += 1
            continue
        if moment is not None:
            ages.append((now_ns - moment) / 1e9)
    limit = group.max_age
    if unreadable:
        return CheckRow("event times", group.namespace, FAIL,
                        f"{unreadable} of {sampled} sampled entities have an event time that is neither epoch "
                        "seconds nor ISO 8601 text (read as stale under max_age)")
    if not ages:
        detail = f"none of {sampled} sampled entities has an event time online"
        if limit is None:
            return CheckRow("event times", group.namespace, PASS, detail)
        return CheckRow("event times", group.namespace, WARN,
                        f"{detail}: max_age {_duration(limit)} does not apply to online lookups")
    low, median, p95, high = np.percentile(ages, [0, 50, 95, 100]).tolist()
    detail = (f"{len(ages)} of {sampled} sampled entities have one; age min {_duration(low)}, "
              f"median {_duration(median)}, p95 {_duration(p95)}, max {_duration(high)}")
    if limit is None:
        return CheckRow("event times", group.namespace, PASS, f"{detail}; no max_age")
    stale = sum(age > limit for age in ages)
    detail += f"; {stale} ({stale / len(ages):.0%}) older than max_age {_duration(limit)}, answered as missing"
    return CheckRow("event times", group.namespace, WARN if stale == len(ages) else PASS, detail)


def _duration(seconds: float) -> str:
    """A rough, readable duration.

    Examples
    --------
    >>> _duration(90), _duration(7200), _duration(3 * 86400)
    ('1m', '2h', '3d')
    """
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:.0f}s"


def run_checks(
    recipe: str | os.PathLike[str] | Mapping[str, Any] | Recipe,
    *,
    env: str | None = None,
    config_dir: str | os.PathLike[str] | None = None,
    sample: int = 1000,
    min_coverage: float = 0.0,
    max_staleness: float | None = None,
    now: pd.Timestamp | None = None,
) -> list[CheckRow]:
    """Check an environment's feature store against a recipe.

    Parameters
    ----------
    recipe : path-like, dict or Recipe
        The features to check (and the loader whose spine is sampled).
    env, config_dir : optional
        The environment (default ``$FS_AUGMENT_ENV``, else ``local``) and its
        config folder (default ``$FS_AUGMENT_CONFIG_DIR``, else ``./config``).
    sample : int
        How many spine rows (or entities per entity column) coverage and type
        checks look at.
    min_coverage : float
        A feature fails coverage below this share of sampled entities (it
        always fails when no sampled entity has it).
    max_staleness : float, optional
        Seconds; a namespace whose newest offline row is older fails freshness.
    now : Timestamp, optional
        The time freshness is measured from (default: now).

    Returns
    -------
    list of CheckRow
        ``any(row.failed for row in rows)`` means the check failed.

    Raises
    ------
    ConfigError, RecipeError
        The environment or the recipe cannot be loaded (nothing to check).

    Examples
    --------
    >>> rows = run_checks("recipes/experiment.yaml", env="local")  # doctest: +SKIP
    >>> [r.status for r in rows if r.check == "connection"]  # doctest: +SKIP
    ['PASS']
    """
    from fs_augment.connections import connect

    if not isinstance(sample, int) or sample < 1:
        raise ValueError(f"sample must be a positive integer, got {sample!r}")
    parsed = load_recipe(recipe)
    config = load_config(env, config_dir)
    groups = list(parsed.groups)
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    try:
        adapter = connect(config=config)
    except StoreError as exc:
        return [CheckRow("connection", config.feature_store.provider, FAIL, str(exc))]
    with adapter:
        rows = [_probe(adapter, groups)]
        if rows[0].failed:
            return rows
        presence, online_ok = _presence(adapter, groups)
        rows += presence
        present = _narrow(groups, online_ok)
        latest = _offline_latest(adapter.offline, present) if adapter.offline is not None else {}
        try:
            spine, origin = _sample_spine(parsed, config, latest, present, sample)
        except FsAugmentError as exc:
            spine, origin = None, f"cannot load the spine: {exc}"
            rows.append(CheckRow("coverage", "spine", FAIL, origin))
        online_values: dict[str, list[Any]] = {}
        if spine is None:
            if not any(r.check == "coverage" for r in rows):
                rows.append(CheckRow("coverage", "spine", SKIP, origin))
        elif present:
            try:
                coverage, online_values = _coverage(adapter, spine, present, origin, min_coverage)
                rows += coverage
            except (SpineError, StoreError) as exc:
                rows.append(CheckRow("coverage", "spine", FAIL, str(exc)))
        if spine is not None:
            rows += _event_times(adapter, spine, groups, now)
        rows += _types(present, online_values, latest, adapter.offline is not None)
        if online_values:
            rows += _values(present, online_values)
        if adapter.offline is not None:
            rows += _freshness(adapter.offline, groups, max_staleness, now)
    return rows


def lookup_features(
    recipe: str | os.PathLike[str] | Mapping[str, Any] | Recipe,
    entity_keys: Mapping[str, Any],
    *,
    env: str | None = None,
    config_dir: str | os.PathLike[str] | None = None,
) -> list[LookupRow]:
    """One online lookup of a recipe's features for one entity row, feature by feature.

    Namespaces keyed by a column not in ``entity_keys`` are reported as not
    looked up. A feature that the store does not have at all (for any entity)
    raises, so a typo in a recipe is not mistaken for missing data.

    Parameters
    ----------
    recipe : path-like, dict or Recipe
    entity_keys : mapping
        Entity column → key, e.g. ``{"user_id": "user123"}``.
    env, config_dir : optional
        The environment and its config folder.

    Returns
    -------
    list of LookupRow

    Raises
    ------
    SpineError
        No key for any of the recipe's entity columns, or a key for a column
        the recipe does not use.
    FeatureNotFoundError
        A declared feature is not in the store; the message lists what the
        namespace has.
    StoreUnavailableError
        The store could not be reached.

    Examples
    --------
    >>> lookup_features("recipes/experiment.yaml", {"user_id": "user1"}, env="local")  # doctest: +SKIP
    [LookupRow(feature='user_demographics:age', value=46, found=True, note=''), ...]
    """
    from fs_augment.connections import connect

    parsed = load_recipe(recipe)
    config = load_config(env, config_dir)
    known = parsed.entity_columns
    stray = [k for k in entity_keys if k not in known]
    if stray:
        raise SpineError(f"{', '.join(stray)} is not an entity column of {parsed.source or 'the recipe'}; "
                         f"its entity columns are: {', '.join(known)}")
    groups = [g for g in parsed.groups if g.entity_column in entity_keys]
    if not groups:
        raise SpineError(f"give a key for at least one of the recipe's entity columns: {', '.join(known)}")
    with connect(config=config) as adapter:
        values = adapter.online_get_features(dict(entity_keys), groups)
        rows: list[LookupRow] = []
        for group in parsed.groups:
            if group not in groups:
                rows.extend(LookupRow(name, None, False, f"no {group.entity_column} given")
                            for name in group.qualified_names)
                continue
            for feature, name in zip(group.features, group.qualified_names, strict=True):
                value = values[name]
                if value is None:  # absent for this entity, or not in the store at all?
                    adapter.verify_feature(group.namespace, feature)
                note = f"invalid: {value.reason}" if type(value) is InvalidValue else ""
                rows.append(LookupRow(name, value, value is not None, note))
    return rows
