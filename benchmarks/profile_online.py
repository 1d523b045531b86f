"""Where a served 1-row transform spends its CPU: ``python -m benchmarks.profile_online [--calls N]``.

Needs no server: it writes the ANCHORS.md data set (smoke size by default) to a temporary parquet
folder, serves it with the embedded ``local`` store (an in-process index, so no network time hides
anything), transforms fresh 1-row frames — one per call, as served requests are — under cProfile,
and prints the share of each part of the work. The profiler inflates small Python calls, so read
the shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.data import LOCAL_ENV, RECIPE, SIZES, namespace_frames, product_ids, spine, user_ids, write_config

#: (label, file suffix, function name): cumulative time of these functions, as a share of transform's.
#: A label starting with "  " is a part of the line above it.
PARTS = (
    ("input columns read (DataFrame.items: a Series per column), checked against the fit",
     "fs_augment/augmenter.py", "_input_arrays"),
    ("entity values → key text", "fs_augment/keys.py", "entity_to_text"),
    ("lookup: adapter + embedded store (lookup_row)", "fs_augment/adapter.py", "lookup_row"),
    ("  lookup metrics (one record per lookup)", "fs_augment/monitoring.py", "record"),
    ("output: values checked against the pinned kinds, blocks, frame (_assemble_row)",
     "fs_augment/augmenter.py", "_assemble_row"),
    ("  pandas builds the DataFrame from the blocks (create_dataframe_from_blocks)",
     "pandas/api/internals.py", "create_dataframe_from_blocks"),
    ("  the 1-row str arrays of the text features (StringArray)", "pandas/core/arrays/string_.py", "__init__"),
    ("  per-feature metrics (off unless enable_monitoring)", "fs_augment/monitoring.py", "record_features"),
    ("the general path (pd.DataFrame): should be 0 on these fresh str frames", "fs_augment/augmenter.py", "_assemble"),
    ("the adapter of the environment (get_adapter)", "fs_augment/connections.py", "get_adapter"),
    ("the output container (set_output / transform_output)", "fs_augment/augmenter.py", "_output"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_online", description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--size", choices=tuple(SIZES), default="smoke")
    args = parser.parse_args(argv)
    from fs_augment import FeatureStoreAugmenter
    from fs_augment.writer import write_parquet_namespace

    sizes = SIZES[args.size]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for namespace, frame in namespace_frames(sizes).items():
            write_parquet_namespace(frame, namespace, folder / "features")
        config_dir = write_config(folder, "redis://127.0.0.1:6379/12", folder / "features")
        aug = FeatureStoreAugmenter(RECIPE, env=LOCAL_ENV, config_dir=str(config_dir), mode="batch")
        aug.fit(spine(sizes, min(1000, sizes.users), seed=1)).set_params(mode="online")
        rng = np.random.default_rng(5)
        users = user_ids(sizes.users)[rng.integers(0, sizes.users, args.calls)]
        products = product_ids(sizes.products)[rng.integers(0, sizes.products, args.calls)]
        frames = [pd.DataFrame({"user_id": pd.Series([u], dtype="str"), "product_id": pd.Series([p], dtype="str")})
                  for u, p in zip(users, products, strict=True)]
        for frame in frames[:200]:
            aug.transform(frame)
        samples = []
        for frame in frames:
            start = time.perf_counter_ns()
            aug.transform(frame)
            samples.append(time.perf_counter_ns() - start)
        profile = cProfile.Profile()
        profile.enable()
        for frame in frames:
            aug.transform(frame)
        profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    cumulative: dict[tuple[str, str], float] = {}
    for (filename, _, function), (_, _, _, cum, _) in stats.items():
        key = (filename.replace("\\", "/"), function)
        cumulative[key] = cumulative.get(key, 0.0) + cum

    def total(suffix: str, function: str) -> float:
        return sum(t for (f, name), t in cumulative.items() if f.endswith(suffix) and name == function)

    whole = total("fs_augment/augmenter.py", "transform")
    print(f"1-row online transform, embedded store: p50 {np.median(samples) / 1e3:.1f} µs per call "
          f"({args.calls:,} fresh frames, no profiler)\n")
    print("share of transform's time under cProfile:")
    for part, suffix, function in PARTS:
        print(f"  {total(suffix, function) / whole:6.1%}  {part}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
