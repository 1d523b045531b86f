"""The ANCHORS.md data set, generated from a seed: parquet folder, Redis database, config, spines.

100,000 users (``u000000`` ...) and 10,000 products (``p00000`` ...). Namespaces:

* ``user_demographics`` (age int, country_code str, gender str), 3 timestamped rows a user;
* ``user_purchase_summary`` (ltv float, total_purchase_count int), 3 timestamped rows a user;
* ``product_details`` (price float, category str, brand str), one row a product, stamped in 2023.

User rows are stamped at random times of 2024; spine times are random times of 2024 too, so some
point-in-time lookups find no row yet (missing), as in real training spines.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fs_augment.recipe import FeatureGroup, load_recipe

# the seed's recipe, as the repository ships it
RECIPE = load_recipe(Path(__file__).parents[1] / "recipes" / "experiment.yaml").to_dict()
PIT_RECIPE = {"augmenter": {**RECIPE["augmenter"], "timestamp_column": "event_timestamp"}}
GROUPS = (
    FeatureGroup("user_demographics", ("age", "country_code", "gender"), "user_id"),
    FeatureGroup("user_purchase_summary", ("ltv", "total_purchase_count"), "user_id"),
    FeatureGroup("product_details", ("price", "category", "brand"), "product_id"),
)
FEATURE_SPECS = [{"namespace": g.namespace, "features": list(g.features)} for g in GROUPS]
COUNTRIES = ["KR", "US", "DE", "FR", "JP", "GB", "BR", "IN", "CN", "ES", "IT", "CA", "MX", "AU", "NL",
             "SE", "PL", "TR", "VN", "ID"]
GENDERS = ["F", "M", "X"]
YEAR_START = pd.Timestamp("2024-01-01", tz="UTC")
YEAR_NS = 366 * 86_400 * 10**9
ROWS_PER_USER = 3
#: The environment of the benchmark's config folder that serves the data in process (provider local).
LOCAL_ENV = "bench_local"


@dataclass(frozen=True)
class Sizes:
    """How big the generated data and the measured workloads are."""

    users: int
    products: int
    online_calls: int
    online_warmup: int
    batch_small: int
    batch_large: int
    batch_runs: int
    batch_large_runs: int
    pit_small: int
    pit_large: int
    pit_runs: int
    memory_rows: int
    import_runs: int
    serving_requests: int
    #: the served model under load: seconds of load per model and cell, the client counts, extra settings
    load_seconds: float
    load_clients: tuple[int, ...]
    load_settings: bool


SIZES = {
    "full": Sizes(users=100_000, products=10_000, online_calls=3000, online_warmup=300, batch_small=1000,
                  batch_large=100_000, batch_runs=15, batch_large_runs=5, pit_small=100_000, pit_large=1_000_000,
                  pit_runs=3, memory_rows=1_000_000, import_runs=7, serving_requests=400,
                  load_seconds=4.0, load_clients=(1, 8, 32), load_settings=True),
    "smoke": Sizes(users=500, products=50, online_calls=100, online_warmup=20, batch_small=100, batch_large=500,
                   batch_runs=3, batch_large_runs=2, pit_small=500, pit_large=2000, pit_runs=1, memory_rows=2000,
                   import_runs=2, serving_requests=30,
                   load_seconds=0.4, load_clients=(1, 8), load_settings=False),
}


def user_ids(n: int) -> np.ndarray:
    return np.array([f"u{i:06d}" for i in range(n)], dtype=object)


def product_ids(n: int) -> np.ndarray:
    return np.array([f"p{i:05d}" for i in range(n)], dtype=object)


def namespace_frames(sizes: Sizes, seed: int = 0) -> dict[str, pd.DataFrame]:
    """The offline tables of the three namespaces."""
    rng = np.random.default_rng(seed)
    users = user_ids(sizes.users)
    n = sizes.users * ROWS_PER_USER
    repeated = np.repeat(users, ROWS_PER_USER)

    def stamps(count: int) -> pd.Series:
        offsets = np.sort(rng.integers(0, YEAR_NS, size=(count // ROWS_PER_USER, ROWS_PER_USER)), axis=1)
        return pd.Series(YEAR_START + pd.to_timedelta(offsets.ravel(), unit="ns"))

    base_age = np.repeat(rng.integers(18, 80, sizes.users), ROWS_PER_USER)
    demographics = pd.DataFrame({
        "user_id": pd.Series(repeated, dtype="str"),
        "event_timestamp": stamps(n),
        "age": (base_age + np.tile(np.arange(ROWS_PER_USER), sizes.users) // 2).astype("int64"),
        "country_code": pd.Series(np.array(COUNTRIES, dtype=object)[rng.integers(0, len(COUNTRIES), n)], dtype="str"),
        "gender": pd.Series(np.array(GENDERS, dtype=object)[rng.integers(0, len(GENDERS), n)], dtype="str"),
    })
    purchases = pd.DataFrame({
        "user_id": pd.Series(repeated, dtype="str"),
        "event_timestamp": stamps(n),
        "ltv": np.round(rng.gamma(2.0, 300.0, n), 2),
        "total_purchase_count": rng.integers(0, 200, n).astype("int64"),
    })
    m = sizes.products
    categories = np.array([f"category_{i:02d}" for i in range(30)], dtype=object)
    brands = np.array([f"brand_{i:03d}" for i in range(200)], dtype=object)
    products = pd.DataFrame({
        "product_id": pd.Series(product_ids(m), dtype="str"),
        "event_timestamp": pd.Series(pd.Timestamp("2023-01-01", tz="UTC")
                                     + pd.to_timedelta(rng.integers(0, 365 * 86_400, m), unit="s")),
        "price": np.round(rng.uniform(1, 500, m), 2),
        "category": pd.Series(categories[rng.integers(0, len(categories), m)], dtype="str"),
        "brand": pd.Series(brands[rng.integers(0, len(brands), m)], dtype="str"),
    })
    return {"user_demographics": demographics, "user_purchase_summary": purchases, "product_details": products}


def spine(sizes: Sizes, rows: int, seed: int, *, times: bool = False, distinct_users: bool = False) -> pd.DataFrame:
    """An entity spine: user_id and product_id (strings), optionally event_timestamp.

    ``distinct_users`` draws users without replacement while there are enough of them (the batch
    spines: every row is a lookup of its own); otherwise with replacement.
    """
    rng = np.random.default_rng(seed)
    users = user_ids(sizes.users)
    if distinct_users and rows <= sizes.users:
        picked = users[rng.permutation(sizes.users)[:rows]]
    else:
        picked = users[rng.integers(0, sizes.users, rows)]
    frame = pd.DataFrame({
        "user_id": pd.Series(picked, dtype="str"),
        "product_id": pd.Series(product_ids(sizes.products)[rng.integers(0, sizes.products, rows)], dtype="str"),
    })
    if times:
        frame["event_timestamp"] = YEAR_START + pd.to_timedelta(rng.integers(0, YEAR_NS, rows), unit="ns")
    return frame


def write_config(folder: Path, redis_url: str, features: Path) -> Path:
    """A config folder whose environment ``bench`` reads the benchmark's Redis database and parquet folder."""
    from redis.connection import parse_url

    parts = parse_url(redis_url)
    config_dir = folder / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "bench.yaml").write_text(
        "feature_store:\n"
        "  provider: redis\n"
        "  connection_timeout: 5000\n"
        "  retry_attempts: 1\n"
        "  connection_info:\n"
        f"    redis_host: \"{parts.get('host', '127.0.0.1')}:{parts.get('port', 6379)}\"\n"
        f"    redis_db: {int(parts.get('db', 0))}\n"
        "    redis_mode: standalone\n"
        f"    offline_store_uri: \"file://{features}\"\n",
        encoding="utf-8",
    )
    # the same data served in process by the embedded store: lookups without a network round trip
    (config_dir / f"{LOCAL_ENV}.yaml").write_text(
        "feature_store:\n"
        "  provider: local\n"
        "  connection_info:\n"
        f"    offline_store_uri: \"file://{features}\"\n",
        encoding="utf-8",
    )
    return config_dir


def generate(sizes: Sizes, folder: Path, redis_url: str, seed: int = 0) -> dict[str, float]:
    """Write the parquet folder and materialise it into the (flushed) Redis database.

    Returns the seconds each step took and the Redis memory of the keys.
    """
    import redis

    from fs_augment.stores.offline import ParquetOfflineStore
    from fs_augment.writer import materialize, write_parquet_namespace

    features = folder / "features"
    timings: dict[str, float] = {}
    start = time.perf_counter()
    for namespace, frame in namespace_frames(sizes, seed).items():
        write_parquet_namespace(frame, namespace, features)
    timings["parquet_seconds"] = time.perf_counter() - start

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    used_before = int(client.info("memory")["used_memory"])
    start = time.perf_counter()
    source = ParquetOfflineStore(features)
    try:
        written = materialize(list(GROUPS), source=source, target=client)
    finally:
        source.close()
    timings["materialize_seconds"] = time.perf_counter() - start
    timings["keys"] = float(sum(written.values()))
    timings["redis_dbsize"] = float(client.dbsize())
    timings["redis_used_memory_mib"] = (int(client.info("memory")["used_memory"]) - used_before) / 2**20
    client.close()
    write_config(folder, redis_url, features)
    return timings
