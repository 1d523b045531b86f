"""The reference writer: data that provably conforms to the store contract.

The ML pipeline only reads the feature store; data engineering owns what is in
it. This module writes the contract's layout so that tests, demos and data
engineers have a reference:

* :func:`write_namespace` — one namespace's latest values into Redis as
  ``SET {namespace}:{feature}:{entity} <json>``, pipelined in chunks.
* :func:`write_parquet_namespace` — the offline layout, ``FOLDER/<namespace>.parquet``.
* :func:`materialize` — the latest rows of the offline store into the online store.

Examples
--------
>>> import pandas as pd
>>> frame = pd.DataFrame({"user_id": ["user123"], "age": [34], "country_code": ["KR"]})
>>> write_namespace(frame, "user_demographics", "redis://127.0.0.1:6379/9")  # doctest: +SKIP
2
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from json.encoder import encode_basestring  # the JSON encoder's own string escaping (ensure_ascii=False)
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fs_augment.errors import ConfigError, SpineError, StoreError
from fs_augment.keys import TIMESTAMP_COLUMN, encode_value, entity_column_for, entity_texts, feature_key, validate_name
from fs_augment.recipe import FeatureGroup, Recipe, load_recipe, parse_feature_specs
from fs_augment.stores.base import OnlineStore

if TYPE_CHECKING:
    import redis
    from redis.cluster import RedisCluster

    from fs_augment.stores.base import OfflineStore

__all__ = ["materialize", "write_namespace", "write_parquet_namespace"]


def _feature_columns(frame: pd.DataFrame, namespace: str, entity_column: str) -> list[str]:
    if entity_column not in frame.columns:
        raise SpineError(
            f"the frame written to namespace {namespace!r} has no entity column {entity_column!r}; "
            f"its columns: {', '.join(map(str, frame.columns)) or 'none'} (pass entity_column=)"
        )
    features = [c for c in frame.columns if c not in (entity_column, TIMESTAMP_COLUMN)]
    for feature in features:
        validate_name(feature, "feature", f"the frame written to namespace {namespace!r}")
    return features


def latest_rows(frame: pd.DataFrame, entity_column: str) -> tuple[list[str], pd.DataFrame]:
    """Each entity's latest row, and its key text; rows without an entity are dropped.

    The latest row is the one with the greatest ``event_timestamp``; without
    that column, the last row of the entity wins.

    Returns
    -------
    (list of str, DataFrame)
        Entity key texts and the rows they belong to, aligned.
    """
    order = pd.DataFrame({
        "entity": pd.Series(entity_texts(frame[entity_column], entity_column), dtype=object),
        "position": np.arange(len(frame)),
    })
    if TIMESTAMP_COLUMN in frame.columns:
        order["time"] = frame[TIMESTAMP_COLUMN].to_numpy()
        order = order.sort_values("time", kind="stable", na_position="first")
    order = order[order["entity"].notna()].drop_duplicates("entity", keep="last")
    return order["entity"].tolist(), frame.iloc[order["position"].to_numpy()]


def _present(series: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Which cells hold a value, and the cells as Python objects."""
    return ~series.isna().to_numpy(dtype=bool), series.tolist()


def _json_bool(value: bool) -> str:
    return "true" if value else "false"


def _plain_encoder(series: pd.Series) -> Callable[[Any], str]:
    """What writes each present cell (a Python value from ``tolist``) of a column as JSON.

    Columns of one plain type get the JSON encoder's own text for that type without its per-call
    dispatch (ints in decimal, floats by ``repr``, ``true``/``false``, strings escaped as
    ``json.dumps(..., ensure_ascii=False)`` does); anything else goes through :func:`encode_value`.
    """
    kind = series.dtype.kind
    if kind in "iu":
        return str
    if kind == "b":
        return _json_bool
    if kind == "f" and not np.isinf(series.to_numpy(dtype="float64", na_value=np.nan)).any():  # inf: refused below
        return float.__repr__
    if isinstance(series.dtype, pd.StringDtype):
        return encode_basestring
    return encode_value


def _commands(namespace: str, features: Sequence[str], entities: list[str],
              rows: pd.DataFrame) -> Iterator[tuple[str, str | None]]:
    """``(key, json)`` for every present value and ``(key, None)`` for every missing one, feature by feature."""
    for feature in features:
        prefix = feature_key(namespace, feature, "")
        series = rows[feature]
        present, cells = _present(series)
        encode = _plain_encoder(series)
        for entity, ok, value in zip(entities, present.tolist(), cells, strict=True):
            yield prefix + entity, encode(value) if ok else None


def write_namespace(
    frame: pd.DataFrame,
    namespace: str,
    client: OnlineStore | redis.Redis | RedisCluster | str,
    *,
    entity_column: str | None = None,
    ttl: float | None = None,
    chunk_size: int = 10_000,
) -> int:
    """Write one namespace's latest values into Redis.

    Every present value becomes ``SET {namespace}:{feature}:{entity} <json>``
    (:func:`fs_augment.keys.encode_value`), ``chunk_size`` keys per round trip
    in non-transactional pipelines (as ``MSET`` commands when there is no
    ``ttl``, as ``SET ... EX`` with one). A missing value (None, NaN, NA) is
    not written, and its key is deleted, so it reads back as missing even
    where an earlier write had a value.

    Parameters
    ----------
    frame : DataFrame
        The entity column, optionally ``event_timestamp``, and one column per
        feature. With several rows per entity the latest by ``event_timestamp``
        (else the last row) wins; rows without an entity are skipped.
    namespace : str
        The namespace (``[A-Za-z0-9_.-]+``).
    client : OnlineStore, redis.Redis, RedisCluster or str
        A writable store (:attr:`~fs_augment.stores.base.OnlineStore.writable`),
        a redis-py client, or a ``redis://`` / ``rediss://`` URL (standalone or
        cluster, detected).
    entity_column : str, optional
        Defaults to the namespace's first word plus ``_id``.
    ttl : float, optional
        Seconds until the written keys expire; None keeps them.
    chunk_size : int
        Keys per round trip.

    Returns
    -------
    int
        Number of keys written (deleted keys of missing values not counted).

    Raises
    ------
    SpineError
        The entity column is missing or holds values that cannot be keys.
    RecipeError
        The namespace or a feature column is not a valid name.
    StoreError
        The store is read-only, or failed (:class:`StoreUnavailableError`: unreachable).
    """
    validate_name(namespace, "namespace")
    entity_column = entity_column or entity_column_for(namespace)
    features = _feature_columns(frame, namespace, entity_column)
    entities, rows = latest_rows(frame, entity_column)
    with _target_store(client) as store:
        if not store.writable:
            raise StoreError(f"cannot write namespace {namespace!r} to the {store.describe()} store: it is "
                             "read-only; the writer writes to Redis")
        return store.write(_commands(namespace, features, entities, rows), ttl=ttl, chunk_size=chunk_size)


@contextmanager
def _target_store(target: Any) -> Iterator[OnlineStore]:
    """The store to write to: a store as is, one opened (and closed) for a URL, one over a redis-py client."""
    if isinstance(target, OnlineStore):
        yield target
        return
    from fs_augment.stores.redis import RedisStore, store_for_url

    if isinstance(target, str):
        with store_for_url(target) as store:
            yield store
    else:
        yield RedisStore.for_client(target)


def write_parquet_namespace(frame: pd.DataFrame, namespace: str, folder: str | os.PathLike[str]) -> Path:
    """Write a namespace's table in the offline layout, ``folder/<namespace>.parquet``.

    Parameters
    ----------
    frame : DataFrame
        The entity column, optionally ``event_timestamp``, then one column per
        feature; written as it is, without the index.
    namespace : str
        The namespace (``[A-Za-z0-9_.-]+``).
    folder : path-like
        The offline store's folder (``offline_store_uri: file://FOLDER``); created if needed.

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> import tempfile
    >>> frame = pd.DataFrame({"user_id": ["user123"], "age": [34]})
    >>> write_parquet_namespace(frame, "user_demographics", tempfile.mkdtemp()).name
    'user_demographics.parquet'
    """
    validate_name(namespace, "namespace")
    for column in frame.columns:
        if not isinstance(column, str):
            raise SpineError(f"the frame written to namespace {namespace!r} has a non-text column name {column!r}")
    path = Path(folder) / f"{namespace}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


# --- materialisation -------------------------------------------------------------

def _groups(recipe_or_specs: Any) -> tuple[FeatureGroup, ...]:
    if isinstance(recipe_or_specs, Recipe):
        return recipe_or_specs.groups
    if isinstance(recipe_or_specs, FeatureGroup):
        return (recipe_or_specs,)
    if isinstance(recipe_or_specs, Sequence) and not isinstance(recipe_or_specs, str):
        if recipe_or_specs and all(isinstance(g, FeatureGroup) for g in recipe_or_specs):
            return tuple(recipe_or_specs)
        return parse_feature_specs(list(recipe_or_specs))
    return load_recipe(recipe_or_specs).groups


def _progress(items: Sequence[FeatureGroup], enabled: bool) -> Iterable[FeatureGroup]:
    if not enabled:
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return items
    return tqdm(items, desc="materialize", unit="namespace")


def materialize(
    recipe_or_specs: Any,
    *,
    env: str | None = None,
    config_dir: str | os.PathLike[str] | None = None,
    source: OfflineStore | None = None,
    target: OnlineStore | redis.Redis | RedisCluster | str | None = None,
    progress: bool = False,
) -> dict[str, int]:
    """Copy each namespace's latest offline rows into the online Redis store.

    Parameters
    ----------
    recipe_or_specs : Recipe, path, dict or list
        A recipe (file, dict or :class:`~fs_augment.recipe.Recipe`) or a
        ``feature_specs`` list; its namespaces and features are copied.
    env, config_dir : optional
        The environment whose stores are used where ``source`` or ``target``
        is not given.
    source : OfflineStore, optional
        Where the rows come from (``read_latest``); default: the
        environment's offline store.
    target : OnlineStore, redis client or URL, optional
        Where they go (a writable store); default: the environment's online store.
    progress : bool
        Show a tqdm progress bar over the namespaces, if tqdm is installed.

    Returns
    -------
    dict
        Keys written, by namespace.

    Raises
    ------
    ConfigError
        The environment has no offline store, or its provider is not ``redis``.
    """
    groups = _groups(recipe_or_specs)
    opened: list[Any] = []
    try:
        if source is None or target is None:
            from fs_augment.config import load_config

            config = load_config(env, config_dir)
            if source is None:
                source = _default_source(config)
                opened.append(source)
            if target is None:
                target = _default_target(config, source)
                opened.append(target)
        written: dict[str, int] = {}
        with _target_store(target) as store:
            for group in _progress(groups, progress):
                frame = source.read_latest(group)
                written[group.namespace] = write_namespace(
                    frame, group.namespace, store, entity_column=group.entity_column
                )
        return written
    finally:
        for store in opened:
            store.close()


def _default_source(config: Any) -> OfflineStore:
    from fs_augment.connections import open_offline_store

    source = open_offline_store(config)
    if source is None:
        raise ConfigError(
            f"environment {config.env!r} has no offline store to materialize from: set "
            "feature_store.connection_info.offline_store_uri, or pass source="
        )
    return source


def _default_target(config: Any, source: OfflineStore) -> OnlineStore:
    from fs_augment.connections import open_online_store

    target = open_online_store(config, source)
    if not target.writable:
        target.close()
        raise ConfigError(
            f"environment {config.env!r} uses provider {config.feature_store.provider!r}, whose online "
            "lookups read the offline store directly; materialize writes to Redis: pass target= "
            "or use an environment with provider: redis"
        )
    return target
