"""``SpineQuery``: an entity spine given as Loader SQL rather than as a DataFrame.

:class:`~fs_augment.FeatureStoreAugmenter` takes a ``SpineQuery`` wherever it
takes a spine (``fit``, ``fit_transform``, ``transform``). When the query's
data lake is BigQuery, the offline store is BigQuery and the lookup is point in
time (batch mode, the recipe's ``timestamp_column``), the Loader SQL runs as a
subquery of the point-in-time join: one query, no spine downloaded or uploaded,
no scratch table; only the augmented rows come back. Otherwise the query's
rows are loaded (:func:`fs_augment.load_spine`) and looked up as a DataFrame
would be, so a ``SpineQuery`` means the same everywhere. A query is data:

>>> query = SpineQuery("SELECT user_id, event_time FROM orders", uri="bq://my-project.lake")
>>> query
SpineQuery(sql='SELECT user_id, event_time FROM orders', uri='bq://my-project.lake')
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fs_augment.errors import ConfigError, SpineError
from fs_augment.keys import parse_as_of

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from fs_augment.adapter import FeatureStoreAdapter, Groups
    from fs_augment.config import Config

__all__ = ["SpineQuery", "run_spine_query"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpineQuery:
    """A spine given as Loader SQL: the query's rows are the spine's rows, its columns the spine's columns.

    Parameters
    ----------
    sql : str
        One query returning the recipe's entity columns (and, for a
        point-in-time lookup, its ``timestamp_column``), and any other column.
        Unqualified table names are the data lake's tables, as in
        :func:`fs_augment.load_spine`.
    uri : str, optional
        The data lake, ``bq://PROJECT.DATASET`` or ``file://FOLDER``; by
        default the ``data_lake.uri`` of the environment where the lookup runs.

    Notes
    -----
    The rows come back in the order the data lake numbers the query's rows.
    BigQuery does not promise to keep a subquery's ``ORDER BY``: when the
    order matters, keep an ordering column and sort the result.

    Examples
    --------
    >>> SpineQuery("SELECT user_id FROM users").uri is None
    True
    >>> SpineQuery("  ")
    Traceback (most recent call last):
    ...
    fs_augment.errors.SpineError: a SpineQuery's sql must be a non-empty query, got '  '
    """

    sql: str
    uri: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.sql, str) or not self.sql.strip():
            raise SpineError(f"a SpineQuery's sql must be a non-empty query, got {self.sql!r}")
        if self.uri is not None and not (isinstance(self.uri, str) and self.uri.startswith(("bq://", "file://"))):
            raise ConfigError(f"a SpineQuery's uri is 'bq://PROJECT.DATASET' or 'file://FOLDER', got {self.uri!r}")

    def data_lake(self, config: Config) -> str:
        """The data lake the query runs in: ``uri``, else the environment's ``data_lake.uri``."""
        uri = self.uri or config.data_lake_uri
        if uri is None:
            raise ConfigError(
                f"environment {config.env!r} ({config.config_dir}) has no data lake for a SpineQuery: set "
                f"data_lake.uri in {Path(config.config_dir) / (config.env + '.yaml')}, or SpineQuery(uri=...)")
        return uri


def run_spine_query(
    query: SpineQuery,
    adapter: FeatureStoreAdapter,
    groups: Groups,
    timestamp_column: str | None,
    config: Config,
    *,
    as_of: Any = None,
) -> tuple[pd.DataFrame, pa.Table | None]:
    """The rows of a spine query and, when they could be joined in place, their features.

    Parameters
    ----------
    query : SpineQuery
    adapter : FeatureStoreAdapter
        The environment's adapter.
    groups : LookupPlan or sequence of FeatureGroup
        What to look up.
    timestamp_column : str or None
        The spine's time column for a point-in-time lookup; None for a
        lookup of the latest values (the query's rows are then loaded).
    config : Config
        The environment (its data lake, and how to reach it).
    as_of : datetime or str, optional
        The lookup's ``as_of`` (see :class:`~fs_augment.FeatureStoreAugmenter`): rows created
        after it are ignored.

    Returns
    -------
    tuple
        The spine (a DataFrame with a RangeIndex) and its features as Arrow
        (one column ``"namespace:feature"`` a feature, aligned with the spine;
        :func:`fs_augment.stores._conversion.aligned_values` reads them), or None when the
        query's rows were loaded and are still to be looked up.
    """
    uri = query.data_lake(config)
    if timestamp_column is not None and adapter.joins_queries_of(uri):
        return adapter.lookup_query(query.sql, uri, groups, timestamp_column,
                                    as_of=None if as_of is None else parse_as_of(as_of))
    from fs_augment.loader import load_spine

    logger.debug("loading the spine query's rows from %s to look them up", uri)
    spine = load_spine(query.sql, uri, config=config)
    return spine.reset_index(drop=True), None
