"""Demo data: a small, realistic project that runs with the embedded ``local`` store.

:func:`write_demo_data` writes, under one folder::

    config/base.yaml, config/local.yaml    the environment (provider: local, no server)
    local_data_lake/product_views.parquet  the labelled spine: who viewed what, when, and bought it or not
    local_data_lake/users.csv              user accounts (the quickstart's SQL drops internal accounts)
    local_features/<namespace>.parquet     user_demographics, user_purchase_summary, product_details,
                                           several timestamped versions per entity
    recipes/quickstart.yaml                the seed's features, the loader SQL, the model and the split

The label ``purchased`` is drawn from the feature values each view saw at its
time (point in time), so a model trained on the augmented spine genuinely
learns from the store's features, and a leaky (latest-value) join would be
measurably different. Everything is drawn from one seeded generator: the same
arguments write the same files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["DemoProject", "write_demo_data"]

_START = pd.Timestamp("2024-01-01", tz="UTC")
_END = pd.Timestamp("2024-12-31 23:59:59", tz="UTC")
_HISTORY_START = pd.Timestamp("2023-01-01", tz="UTC")

_COUNTRIES = ["KR", "US", "JP", "DE", "GB", "FR", "BR", "IN"]
_COUNTRY_WEIGHTS = [0.30, 0.22, 0.12, 0.09, 0.08, 0.07, 0.06, 0.06]
_GENDERS = ["female", "male", "unspecified"]
_GENDER_WEIGHTS = [0.49, 0.48, 0.03]
#: category → (median price, brands)
_CATALOGUE = {
    "electronics": (240.0, ["Voltix", "Nimbus", "Quanta"]),
    "books": (18.0, ["Pageturn", "Inkwell"]),
    "fashion": (45.0, ["Loomis", "Northstar", "Velvet & Co"]),
    "home": (60.0, ["Hearthly", "Casa Nova"]),
    "beauty": (25.0, ["Lumiere", "Glowlab"]),
    "sports": (70.0, ["Stride", "Peakform"]),
    "toys": (30.0, ["Brickbox", "Playwell"]),
    "grocery": (8.0, ["Freshfield", "Harvest Lane"]),
}
#: categories each age band is drawn to (they buy them more often)
_AFFINITY = {
    "young": {"electronics", "sports", "fashion"},
    "middle": {"home", "toys", "electronics"},
    "senior": {"books", "home", "grocery"},
}

_BASE_YAML = """\
# config/base.yaml - the common base of every environment
feature_store:
  provider: "redis"
  connection_timeout: 5000
  retry_attempts: 3
  connection_info:
    redis_host: "localhost:6379"
    redis_db: 0
    redis_password: null
    offline_store_uri: "file://./local_features"
"""

_LOCAL_YAML = """\
# config/local.yaml - the embedded store: the parquet folder serves offline and
# online lookups, no server needed. Relative paths are relative to the folder
# holding config/.
feature_store:
  provider: "local"
  connection_info:
    offline_store_uri: "file://./local_features"
data_lake:
  uri: "file://./local_data_lake"
"""

_RECIPE_YAML = """\
# recipes/quickstart.yaml - the seed's features, plus how `fs-augment train` runs
augmenter:
  type: "feature_store"
  # spine rows are looked up point in time: the feature values as of each view
  timestamp_column: "event_timestamp"
  features:
    - feature_namespace: "user_demographics"
      features: ["age", "country_code", "gender"]
    - feature_namespace: "user_purchase_summary"
      features: ["ltv", "total_purchase_count"]
    - feature_namespace: "product_details"
      features: ["price", "category", "brand"]

loader:
  # runs against the environment's data lake (data_lake.uri): each file is a table
  sql: |
    SELECT v.user_id, v.product_id, v.event_timestamp, v.purchased
    FROM product_views AS v
    JOIN users AS u USING (user_id)
    WHERE NOT u.is_internal
    ORDER BY v.event_timestamp, v.view_id
  entity_columns: ["user_id", "product_id"]
  timestamp_column: "event_timestamp"
  target_column: "purchased"

model:
  class: "sklearn.ensemble.HistGradientBoostingClassifier"
  params:
    max_iter: 100
    learning_rate: 0.1
    max_leaf_nodes: 15
    l2_regularization: 1.0
    random_state: 0

evaluation:
  test_size: 0.25
  random_state: 0
"""


@dataclass(frozen=True)
class DemoProject:
    """Where :func:`write_demo_data` put things (all absolute paths)."""

    root: Path
    config_dir: Path
    recipe: Path
    data_lake: Path
    features: Path


def _times(rng: np.random.Generator, low: pd.Timestamp, high: pd.Timestamp, n: int) -> pd.DatetimeIndex:
    """``n`` times drawn uniformly between ``low`` and ``high``, to the second."""
    seconds = rng.integers(0, int((high - low).total_seconds()) + 1, size=n)
    return low + pd.to_timedelta(seconds, unit="s")


def _version_times(rng: np.random.Generator, first: pd.Timestamp, count: int) -> list[pd.Timestamp]:
    """The first version's time, then ``count - 1`` later ones up to the end of the year, sorted."""
    later = sorted(_times(rng, first, _END, count - 1)) if count > 1 else []
    return [first, *later]


def _users(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Accounts (data lake), demographics and purchase summaries (feature store), and a latent propensity."""
    ids = [f"user{i}" for i in range(1, n + 1)]
    signup = _times(rng, _HISTORY_START, pd.Timestamp("2024-04-01", tz="UTC"), n)
    propensity = rng.lognormal(0.0, 0.6, size=n)  # how much each user spends; seen through ltv and counts
    age0 = np.clip(np.rint(rng.normal(38, 13, size=n)), 18, 85).astype(int)
    country = rng.choice(_COUNTRIES, size=n, p=_COUNTRY_WEIGHTS)
    gender = rng.choice(_GENDERS, size=n, p=_GENDER_WEIGHTS)
    internal = rng.random(n) < 0.01
    has_profile = rng.random(n) >= 0.02  # a few users never got a profile computed

    demo_rows, summary_rows = [], []
    for i, user in enumerate(ids):
        first = signup[i] + pd.Timedelta(days=int(rng.integers(0, 30)))
        if has_profile[i]:
            age, place = int(age0[i]), str(country[i])
            for k, when in enumerate(_version_times(rng, first, 1 + int(rng.integers(0, 3)))):
                if k:  # a birthday, and now and then a move abroad
                    age += 1
                    if rng.random() < 0.05:
                        place = str(rng.choice(_COUNTRIES, p=_COUNTRY_WEIGHTS))
                demo_rows.append((user, when, age, place, str(gender[i])))
        ltv, count = 0.0, 0
        for when in _version_times(rng, first, 2 + int(rng.integers(0, 5))):
            bought = int(rng.poisson(1.5 * propensity[i]))
            count += bought
            ltv += float(rng.gamma(2.0, 25.0 * propensity[i], size=bought).sum())
            summary_rows.append((user, when, round(ltv, 2), count))

    accounts = pd.DataFrame({
        "user_id": ids,
        "signup_date": signup.strftime("%Y-%m-%d"),
        "is_internal": internal,
    })
    demographics = pd.DataFrame(demo_rows, columns=["user_id", "event_timestamp", "age", "country_code", "gender"])
    summaries = pd.DataFrame(summary_rows, columns=["user_id", "event_timestamp", "ltv", "total_purchase_count"])
    accounts["propensity"] = propensity
    return accounts, demographics, summaries


def _products(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Product details, each with one to four price versions."""
    categories = list(_CATALOGUE)
    rows = []
    for i in range(1, n + 1):
        category = str(rng.choice(categories))
        median, brands = _CATALOGUE[category]
        brand = str(rng.choice(brands))
        price = float(median * rng.lognormal(0.0, 0.5))
        first = _times(rng, pd.Timestamp("2023-06-01", tz="UTC"), pd.Timestamp("2023-12-31", tz="UTC"), 1)[0]
        for k, when in enumerate(_version_times(rng, first, 1 + int(rng.integers(0, 4)))):
            if k:
                price *= float(rng.choice([0.8, 0.9, 1.05, 1.1, 1.2]))
            rows.append((f"prod{i}", when, round(price, 2), category, brand))
    return pd.DataFrame(rows, columns=["product_id", "event_timestamp", "price", "category", "brand"])


def _as_of(spine: pd.DataFrame, table: pd.DataFrame, entity: str) -> pd.DataFrame:
    """``table``'s row of each spine row's entity as of its time (the store's point-in-time rule)."""
    ordered = spine.sort_values("event_timestamp", kind="stable")
    joined = pd.merge_asof(ordered, table.sort_values("event_timestamp", kind="stable"), on="event_timestamp",
                           by=entity, direction="backward", allow_exact_matches=True)
    joined.index = ordered.index
    return joined.loc[spine.index]


def _zscore(values: pd.Series) -> pd.Series:
    values = values.astype("float64")
    return ((values - values.mean()) / values.std()).fillna(0.0)


def _views(rng: np.random.Generator, rows: int, accounts: pd.DataFrame, products: pd.DataFrame,
           demographics: pd.DataFrame, summaries: pd.DataFrame) -> pd.DataFrame:
    """Product views of 2024, labelled ``purchased`` from the features each view saw."""
    weights = accounts["propensity"].to_numpy() ** 0.5
    users = rng.choice(accounts["user_id"].to_numpy(), size=rows, p=weights / weights.sum())
    product_ids = products["product_id"].unique()
    popularity = 1.0 / np.arange(1, len(product_ids) + 1) ** 0.8
    items = rng.choice(product_ids, size=rows, p=popularity / popularity.sum())
    views = pd.DataFrame({
        "view_id": np.arange(1, rows + 1),
        "user_id": users,
        "product_id": items,
        "event_timestamp": _times(rng, _START, _END, rows),
    })

    demo = _as_of(views, demographics, "user_id")
    summary = _as_of(views, summaries, "user_id")
    product = _as_of(views, products, "product_id")
    band = pd.cut(demo["age"], [0, 30, 50, 200], labels=list(_AFFINITY), right=False).astype(object)
    drawn_to = np.array([isinstance(b, str) and c in _AFFINITY[b] for b, c in zip(band, product["category"],
                                                                                   strict=True)])
    likes_beauty = (demo["gender"] == "female").to_numpy() & (product["category"] == "beauty").to_numpy()
    logit = (
        -0.9
        + 1.1 * _zscore(np.log1p(summary["ltv"]))
        + 0.5 * _zscore(summary["total_purchase_count"])
        - 0.9 * _zscore(np.log(product["price"]))
        + 1.0 * drawn_to
        + 0.6 * likes_beauty
        + 0.3 * demo["country_code"].isin(["KR", "US"]).to_numpy()
    )
    chance = 1.0 / (1.0 + np.exp(-logit.to_numpy(dtype="float64")))
    views["purchased"] = (rng.random(rows) < chance).astype("int64")
    return views


def write_demo_data(
    folder: str | os.PathLike[str],
    *,
    users: int = 2000,
    products: int = 200,
    rows: int = 6000,
    seed: int = 0,
) -> DemoProject:
    """Write a complete demo project (data lake, feature store, config, recipe) under ``folder``.

    Parameters
    ----------
    folder : path-like
        Created if needed; the files listed in the module documentation are
        (over)written, anything else in it is left alone.
    users, products : int
        How many users and products the feature store describes.
    rows : int
        How many labelled product views the data lake holds.
    seed : int
        Seed of the one random generator; the same arguments write the same files.

    Returns
    -------
    DemoProject
        The paths of the project's parts.

    Examples
    --------
    >>> import tempfile
    >>> project = write_demo_data(tempfile.mkdtemp(), users=50, products=10, rows=100)
    >>> sorted(p.name for p in project.features.iterdir())
    ['product_details.parquet', 'user_demographics.parquet', 'user_purchase_summary.parquet']
    >>> project.recipe.name, sorted(p.name for p in project.config_dir.iterdir())
    ('quickstart.yaml', ['base.yaml', 'local.yaml'])
    """
    for name, value in (("users", users), ("products", products), ("rows", rows)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    from fs_augment.writer import write_parquet_namespace

    root = Path(folder).expanduser().resolve()
    project = DemoProject(root=root, config_dir=root / "config", recipe=root / "recipes" / "quickstart.yaml",
                          data_lake=root / "local_data_lake", features=root / "local_features")
    rng = np.random.default_rng(seed)
    accounts, demographics, summaries = _users(rng, users)
    catalogue = _products(rng, products)
    views = _views(rng, rows, accounts, catalogue, demographics, summaries)

    for path in (project.config_dir, project.recipe.parent, project.data_lake, project.features):
        path.mkdir(parents=True, exist_ok=True)
    write_parquet_namespace(demographics, "user_demographics", project.features)
    write_parquet_namespace(summaries, "user_purchase_summary", project.features)
    write_parquet_namespace(catalogue, "product_details", project.features)
    views.to_parquet(project.data_lake / "product_views.parquet", index=False)
    accounts.drop(columns=["propensity"]).to_csv(project.data_lake / "users.csv", index=False)
    (project.config_dir / "base.yaml").write_text(_BASE_YAML, encoding="utf-8")
    (project.config_dir / "local.yaml").write_text(_LOCAL_YAML, encoding="utf-8")
    project.recipe.write_text(_RECIPE_YAML, encoding="utf-8")
    return project
