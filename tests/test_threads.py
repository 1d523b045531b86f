"""One fitted augmenter, many threads: a served worker's threads share it, so ``transform`` must not write it.

Sixteen threads transform different spines (each with its own share of absent entities, so a
shared per-call figure would differ between them) through one fitted augmenter, through the
one-row online path, the general online path and the batch path. Every answer must equal the
single-threaded one, and the fitted state must be byte-for-byte what the fit left.
"""

from __future__ import annotations

import pickle
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd
import pytest

from fs_augment import FeatureStoreAugmenter
from fs_augment.connections import close_all
from fs_augment.keys import encode_value, feature_key
from fs_augment.writer import write_parquet_namespace

THREADS = 16
ROUNDS = 20
RECIPE = {"augmenter": {"features": [
    {"feature_namespace": "user_demographics", "features": ["age", "country", "tags"],
     "defaults": {"country": "unknown"}}]}}
USERS = {f"u{i}": {"age": 20 + i, "country": ["KR", "US", "DE"][i % 3], "tags": [f"t{i}"] * (i % 3)}
         for i in range(40)}


def spines() -> list[pd.DataFrame]:
    """One spine per thread: rows 0..k of known users, then k absent ones, on a shuffled index."""
    out = []
    for t in range(THREADS):
        users = [f"u{(t + j) % 40}" for j in range(t + 1)] + [f"nobody{j}" for j in range(t % 4)]
        out.append(pd.DataFrame({"user_id": users}, index=pd.Index(range(len(users)))[::-1] + 100 * t))
    return out


def hammer(aug: FeatureStoreAugmenter, frames: list[pd.DataFrame]) -> None:
    """Transform every frame from its own thread, ROUNDS times; compare with the single-threaded answers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [aug.transform(frame) for frame in frames]
        rows = [aug.transform(frame.iloc[[0]]) for frame in frames]
    fitted = pickle.dumps(aug)
    names = set(vars(aug))
    start = threading.Barrier(THREADS)

    def work(t: int) -> int:
        start.wait()
        checked = 0
        for _ in range(ROUNDS):
            pd.testing.assert_frame_equal(aug.transform(frames[t]), expected[t])
            pd.testing.assert_frame_equal(aug.transform(frames[t].iloc[[0]]), rows[t])
            checked += 2
        return checked

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with ThreadPoolExecutor(THREADS) as pool:
            assert sum(pool.map(work, range(THREADS))) == THREADS * ROUNDS * 2
    assert set(vars(aug)) == names  # no attribute added by a transform ...
    assert pickle.dumps(aug) == fitted  # ... and none changed


@pytest.mark.parametrize("mode", ["online", "batch"])
def test_sixteen_threads_share_one_fitted_augmenter_over_redis(redis_client, redis_config_dir, mode):
    pipe = redis_client.pipeline(transaction=False)
    for user, row in USERS.items():
        for feature, value in row.items():
            pipe.set(feature_key("user_demographics", feature, user), encode_value(value))
    pipe.execute()
    close_all()
    aug = FeatureStoreAugmenter(RECIPE, env="test", config_dir=str(redis_config_dir), mode=mode)
    aug.fit(pd.DataFrame({"user_id": ["u1", "u2", "nobody"]}))
    fit_rates = dict(aug.missing_rate_)
    hammer(aug, spines())
    assert aug.missing_rate_ == fit_rates == {
        "user_demographics__age": pytest.approx(1 / 3), "user_demographics__country": pytest.approx(1 / 3),
        "user_demographics__tags": pytest.approx(1 / 3)}


def test_sixteen_threads_share_one_fitted_augmenter_over_the_local_store(tmp_path):
    frame: dict[str, Any] = {"user_id": list(USERS), "event_timestamp": pd.Timestamp("2024-01-01", tz="UTC")}
    for feature in ("age", "country", "tags"):
        values = [row[feature] for row in USERS.values()]
        frame[feature] = pd.Series(values, dtype=object if feature == "tags" else None)
    write_parquet_namespace(pd.DataFrame(frame), "user_demographics", tmp_path / "features")
    config = tmp_path / "config"
    config.mkdir()
    (config / "local.yaml").write_text("feature_store:\n  provider: local\n  connection_info:\n"
                                       f"    offline_store_uri: 'file://{tmp_path / 'features'}'\n")
    close_all()
    aug = FeatureStoreAugmenter(RECIPE, env="local", config_dir=str(config), mode="online")
    aug.fit(pd.DataFrame({"user_id": ["u1", "nobody"]}))
    hammer(aug, spines())
    close_all()
