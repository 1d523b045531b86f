"""Online and batch lookups, fs_augment and the raw floor interleaved in one process, one server.

The raw floor is what a careful hand-written client does: build the contract's string keys
``{namespace}:{feature}:{entity}``, read them with redis-py (hiredis parser) ``MGET`` — one
``MGET`` for a single entity or 1,000 rows, chunked ``MGET`` in non-transactional pipelines for
100,000 rows — decode the values with :func:`fs_augment.keys.decode_values`, and (for the
DataFrame variants) build the frame column-wise with ``pd.DataFrame(dict_of_lists)``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.data import FEATURE_SPECS, GROUPS, LOCAL_ENV, RECIPE, Sizes, product_ids, spine, user_ids
from benchmarks.stats import latency_summary, runs_summary

#: Keys per MGET and MGETs per round trip of the raw chunked floor (the store's defaults too).
RAW_CHUNK = 10_000
RAW_CHUNKS_PER_ROUND_TRIP = 4

QUALIFIED = [f"{g.namespace}:{f}" for g in GROUPS for f in g.features]
_PREFIXES = [(f"{g.namespace}:{f}:", g.entity_column) for g in GROUPS for f in g.features]


def raw_client(redis_url: str) -> Any:
    import redis

    return redis.Redis.from_url(redis_url)


# --- the raw floor -----------------------------------------------------------------------------

def raw_online(client: Any) -> Callable[[str, str], list[Any]]:
    """MGET of the 8 keys of one (user, product) + decode."""
    from fs_augment.keys import decode_values

    mget = client.mget

    def lookup(user: str, product: str) -> list[Any]:
        return decode_values(mget([
            f"user_demographics:age:{user}", f"user_demographics:country_code:{user}",
            f"user_demographics:gender:{user}", f"user_purchase_summary:ltv:{user}",
            f"user_purchase_summary:total_purchase_count:{user}", f"product_details:price:{product}",
            f"product_details:category:{product}", f"product_details:brand:{product}",
        ]))

    return lookup


def raw_online_with_event_times(client: Any) -> Callable[[str, str], list[Any]]:
    """MGET of the 8 keys and the 3 event-time keys of one (user, product) + decode: the floor with max_age."""
    from fs_augment.keys import decode_values

    mget = client.mget

    def lookup(user: str, product: str) -> list[Any]:
        return decode_values(mget([
            f"user_demographics:age:{user}", f"user_demographics:country_code:{user}",
            f"user_demographics:gender:{user}", f"user_demographics:event_timestamp:{user}",
            f"user_purchase_summary:ltv:{user}", f"user_purchase_summary:total_purchase_count:{user}",
            f"user_purchase_summary:event_timestamp:{user}", f"product_details:price:{product}",
            f"product_details:category:{product}", f"product_details:brand:{product}",
            f"product_details:event_timestamp:{product}",
        ]))

    return lookup


#: The recipe's features with a max_age no benchmark row exceeds: every event time is read and compared.
MAX_AGE_SPECS = [{**spec, "max_age": "36500d"} for spec in FEATURE_SPECS]


def raw_frame(client: Any, frame: pd.DataFrame, *, chunked: bool) -> pd.DataFrame:
    """Keys of every row and feature → (chunked, pipelined) MGET → decode → DataFrame."""
    from fs_augment.keys import decode_values

    entities = {"user_id": frame["user_id"].tolist(), "product_id": frame["product_id"].tolist()}
    n = len(frame)
    keys = [prefix + e for prefix, column in _PREFIXES for e in entities[column]]
    if not chunked:
        values = decode_values(client.mget(keys))
    else:
        values = []
        step = RAW_CHUNK * RAW_CHUNKS_PER_ROUND_TRIP
        for start in range(0, len(keys), step):
            pipe = client.pipeline(transaction=False)
            for at in range(start, min(start + step, len(keys)), RAW_CHUNK):
                pipe.mget(keys[at:at + RAW_CHUNK])
            for reply in pipe.execute():
                values.extend(decode_values(reply))
    data = {name: values[i * n:(i + 1) * n] for i, name in enumerate(QUALIFIED)}
    return pd.DataFrame(data, index=frame.index)


def raw_frame_unique(client: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """The raw floor reading each distinct entity once (as fs_augment does), then spread over the rows."""
    from fs_augment.keys import decode_values

    codes, uniques = {}, {}
    for column in ("user_id", "product_id"):
        codes[column], found = pd.factorize(frame[column].to_numpy(dtype=object))
        uniques[column] = found.tolist()
    keys = [prefix + e for prefix, column in _PREFIXES for e in uniques[column]]
    values: list[Any] = []
    step = RAW_CHUNK * RAW_CHUNKS_PER_ROUND_TRIP
    for start in range(0, len(keys), step):
        pipe = client.pipeline(transaction=False)
        for at in range(start, min(start + step, len(keys)), RAW_CHUNK):
            pipe.mget(keys[at:at + RAW_CHUNK])
        for reply in pipe.execute():
            values.extend(decode_values(reply))
    data, position = {}, 0
    for name, (_, column) in zip(QUALIFIED, _PREFIXES, strict=True):
        width = len(uniques[column])
        column_values = np.empty(width, dtype=object)
        column_values[:] = values[position:position + width]
        data[name] = column_values[codes[column]].tolist()
        position += width
    return pd.DataFrame(data, index=frame.index)


# --- fs_augment ------------------------------------------------------------------------------

def fitted_augmenter(env: str, config_dir: Path, sizes: Sizes, *, mode: str) -> Any:
    from fs_augment import FeatureStoreAugmenter

    fit_spine = spine(sizes, min(2000, sizes.users), seed=11)
    aug = FeatureStoreAugmenter(RECIPE, env=env, config_dir=str(config_dir), mode="batch").fit(fit_spine)
    return aug.set_params(mode=mode)


def _interleave(variants: dict[str, Callable[[int], Any]], calls: int, warmup: int) -> dict[str, list[int]]:
    """Run every variant once per iteration, in a fresh random order; per-call times in ns after warm-up.

    A rotating order would keep each variant behind the same predecessor (a rotation keeps the cycle), so one
    that always follows a pandas-heavy variant would pay for its cache misses and collections; a random order
    spreads them over every variant.
    """
    names = list(variants)
    samples: dict[str, list[int]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    order = random.Random(0)
    for i in range(calls + warmup):
        order.shuffle(names)
        for name in names:
            function = variants[name]
            start = clock()
            function(i)
            elapsed = clock() - start
            if i >= warmup:
                samples[name].append(elapsed)
    return samples


def _python_model(aug: Any, drift: bool) -> Callable[[pd.DataFrame], Any]:
    """The ``predict`` of the pyfunc model :func:`fs_augment.mlflow.log_model` logs, loaded around a copy of ``aug``."""
    import pickle
    import tempfile
    from types import SimpleNamespace

    from fs_augment.mlflow import AugmentedModel

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.pkl"
        path.write_bytes(pickle.dumps(aug))
        model = AugmentedModel()
        model.load_context(SimpleNamespace(artifacts={"pipeline": str(path)},
                                           model_config={"lookup_mode": "online", "predict_method": "transform",
                                                         "drift": drift}))
    assert bool(model.drift_monitors) == drift
    return lambda frame: model.predict(None, frame)


def bench_online(sizes: Sizes, redis_url: str, env: str, config_dir: Path, seed: int = 1) -> dict[str, Any]:
    """One entity row (a user and a product, 8 features in 3 namespaces) per call."""
    from fs_augment._compat import one_text
    from fs_augment.connections import get_adapter

    client = raw_client(redis_url)
    adapter = get_adapter(env, str(config_dir))
    aug = fitted_augmenter(env, config_dir, sizes, mode="online")
    raw = raw_online(client)
    raw_timed = raw_online_with_event_times(client)
    rng = np.random.default_rng(seed)
    total = sizes.online_calls + sizes.online_warmup
    users = user_ids(sizes.users)[rng.integers(0, sizes.users, total)].tolist()
    products = product_ids(sizes.products)[rng.integers(0, sizes.products, total)].tolist()
    frames = [pd.DataFrame({"user_id": pd.Series([u], dtype="str"), "product_id": pd.Series([p], dtype="str")})
              for u, p in zip(users, products, strict=True)]
    specs = FEATURE_SPECS
    names = QUALIFIED
    online_get = adapter.online_get_features
    transform = aug.transform

    floats = [kind in ("int", "float") for kind in (aug.feature_kinds_[n.replace(":", "__")] for n in names)]
    text = one_text  # a one-row array of the text dtype the augmenter pins (pandas 3: str; pandas 2: object)

    def raw_frame_one(i: int) -> pd.DataFrame:
        """The hand-written best: MGET + decode, then the same 10 columns built column-wise, dtypes pinned."""
        values = raw(users[i], products[i])
        data: dict[str, Any] = {"user_id": text(users[i]), "product_id": text(products[i])}
        for name, is_float, value in zip(names, floats, values, strict=True):
            if is_float:
                data[name] = np.array([np.nan if value is None else value], dtype="float64")
            else:
                data[name] = text(np.nan if value is None else value)
        return pd.DataFrame(data, copy=False)

    # the CPU cost alone: the same calls against the embedded store (an in-process index, no round trip),
    # and the pandas floor of the output, the 10 pinned 1-row columns built into a frame with no I/O at all
    local_get = get_adapter(LOCAL_ENV, str(config_dir)).online_get_features
    local_transform = fitted_augmenter(LOCAL_ENV, config_dir, sizes, mode="online").transform
    fixed = raw(users[0], products[0])

    def frame_only(i: int) -> pd.DataFrame:
        data: dict[str, Any] = {"user_id": text(users[i]), "product_id": text(products[i])}
        for name, is_float, value in zip(names, floats, fixed, strict=True):
            data[name] = np.array([value], dtype="float64") if is_float else text(value)
        return pd.DataFrame(data, copy=False)

    # the same answers, checked once before timing
    expected = raw(users[0], products[0])
    for lookup in (online_get, local_get):
        got = lookup({"user_id": users[0], "product_id": products[0]}, specs)
        assert list(got.values()) == expected, (got, expected)
        timed = lookup({"user_id": users[0], "product_id": products[0]}, MAX_AGE_SPECS)
        assert list(timed.values()) == expected, (timed, expected)
    assert None not in raw_timed(users[0], products[0]), "the event-time keys are missing: rerun the data step"
    pd.testing.assert_frame_equal(transform(frames[0]), local_transform(frames[0]))

    drift_on, drift_off = (_python_model(aug, drift) for drift in (True, False))
    pd.testing.assert_frame_equal(drift_on(frames[0]), drift_off(frames[0]))

    samples = _interleave({
        "raw_mget_decode": lambda i: raw(users[i], products[i]),
        "online_get_features": lambda i: online_get({"user_id": users[i], "product_id": products[i]}, specs),
        "raw_mget_decode_with_event_times": lambda i: raw_timed(users[i], products[i]),
        "online_get_features_max_age": lambda i: online_get({"user_id": users[i], "product_id": products[i]},
                                                            MAX_AGE_SPECS),
        "transform_1row_online": lambda i: transform(frames[i]),
        "raw_mget_decode_pinned_frame": raw_frame_one,
        "cpu_online_get_features_embedded": lambda i: local_get({"user_id": users[i], "product_id": products[i]},
                                                                specs),
        "cpu_transform_1row_embedded": lambda i: local_transform(frames[i]),
        "cpu_pinned_frame_build_only": frame_only,
        # the served model's own predict (fs_augment.mlflow.AugmentedModel, predict_method transform), drift on/off
        "pyfunc_1row_online_drift_on": lambda i: drift_on(frames[i]),
        "pyfunc_1row_online_drift_off": lambda i: drift_off(frames[i]),
    }, sizes.online_calls, sizes.online_warmup)
    client.close()
    return {name: latency_summary(values) for name, values in samples.items()}


def bench_batch(sizes: Sizes, redis_url: str, env: str, config_dir: Path, rows: int, runs: int, *,
                chunked: bool, seed: int) -> dict[str, Any]:
    """``rows`` spine rows → DataFrame of 8 features: fs_augment batch transform vs the raw floor."""
    client = raw_client(redis_url)
    aug = fitted_augmenter(env, config_dir, sizes, mode="batch")
    frame = spine(sizes, rows, seed=seed, distinct_users=True)
    out = aug.transform(frame)
    floor = raw_frame(client, frame, chunked=chunked)
    assert len(out) == len(floor) == rows
    times: dict[str, list[float]] = {"raw": [], "fs_augment": [], "raw_unique_keys": []}
    variants = {
        "raw": lambda: raw_frame(client, frame, chunked=chunked),
        "fs_augment": lambda: aug.transform(frame),
        "raw_unique_keys": lambda: raw_frame_unique(client, frame),
    }
    names = list(variants)
    for i in range(runs):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
    client.close()
    keys_fs = sum(len(g.features) * frame[g.entity_column].nunique() for g in GROUPS)
    return {
        "rows": rows,
        "raw_keys": rows * len(QUALIFIED),
        "fs_augment_keys": int(keys_fs),
        "raw": runs_summary(times["raw"]),
        "fs_augment": runs_summary(times["fs_augment"]),
        "raw_unique_keys": runs_summary(times["raw_unique_keys"]),
        "output_dtypes": {str(k): str(v) for k, v in out.dtypes.items()},
    }
