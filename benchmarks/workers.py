"""Measurements that need a fresh process: point-in-time joins, the 1M-row memory check, imports, serving,
Spark.

Run as ``python -m benchmarks.workers NAME JSON_ARGS``; the last line of stdout is a JSON object.
Each worker times only its measured step and reports its peak RSS (``getrusage``), which covers
the whole process (pandas, DuckDB, scikit-learn and the data included).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HEAVY_MODULES = ("sklearn", "duckdb", "redis", "mlflow", "google", "pyarrow", "scipy")


def _features_sql(folder: str) -> str:
    def table(namespace: str) -> str:
        return "read_parquet('" + str(Path(folder) / f"{namespace}.parquet").replace("'", "''") + "')"

    return (
        "SELECT s.*, d.age, d.country_code, d.gender, p.ltv, p.total_purchase_count, "
        "pr.price, pr.category, pr.brand "
        "FROM spine AS s "
        f"ASOF LEFT JOIN {table('user_demographics')} AS d "
        "ON s.user_id = d.user_id AND s.event_timestamp >= d.event_timestamp "
        f"ASOF LEFT JOIN {table('user_purchase_summary')} AS p "
        "ON s.user_id = p.user_id AND s.event_timestamp >= p.event_timestamp "
        f"ASOF LEFT JOIN {table('product_details')} AS pr "
        "ON s.product_id = pr.product_id AND s.event_timestamp >= pr.event_timestamp"
    )


def pit_duckdb(args: dict[str, Any]) -> dict[str, Any]:
    """The hand-written floor: one DuckDB query, three ASOF LEFT JOINs over the parquet files → pandas."""
    import duckdb
    import pandas as pd

    from benchmarks.stats import current_rss_mib, peak_rss_mib

    spine = pd.read_parquet(args["spine"])
    sql = _features_sql(args["features"])
    con = duckdb.connect(":memory:")
    warm = spine.head(1000)  # the same warm-up as fs_augment's fit: files opened once
    con.register("spine", warm)
    con.sql(sql).df()
    con.unregister("spine")
    rss_before = current_rss_mib()
    start = time.perf_counter()
    con.register("spine", spine)
    out = con.sql(sql).df()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": len(out), "peak_rss_mib": peak_rss_mib(), "rss_before_mib": rss_before,
            "output_mib": float(out.memory_usage(deep=True).sum()) / 2**20}


def pit_fs_augment(args: dict[str, Any]) -> dict[str, Any]:
    """fs_augment: the augmenter's point-in-time transform of the spine (fitted on its first 1,000 rows).

    ``args["as_of"]`` (ISO 8601), when given, is the augmenter's ``as_of``.
    """
    import pandas as pd

    from benchmarks.data import PIT_RECIPE
    from benchmarks.stats import current_rss_mib, peak_rss_mib
    from fs_augment import FeatureStoreAugmenter

    spine = pd.read_parquet(args["spine"])
    aug = FeatureStoreAugmenter(PIT_RECIPE, env=args["env"], config_dir=args["config_dir"], mode="batch",
                                as_of=args.get("as_of"))
    aug.fit(spine.head(1000))
    rss_before = current_rss_mib()
    start = time.perf_counter()
    out = aug.transform(spine)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": len(out), "peak_rss_mib": peak_rss_mib(), "rss_before_mib": rss_before,
            "output_mib": float(out.memory_usage(deep=True).sum()) / 2**20}


def memory(args: dict[str, Any]) -> dict[str, Any]:
    """A batch (latest values) lookup of a large spine from Redis: peak RSS against the output frame."""
    from benchmarks.data import RECIPE, SIZES, spine
    from benchmarks.stats import current_rss_mib, peak_rss_mib
    from fs_augment import FeatureStoreAugmenter

    sizes = SIZES[args["size"]]
    frame = spine(sizes, args["rows"], seed=21)
    aug = FeatureStoreAugmenter(RECIPE, env=args["env"], config_dir=args["config_dir"], mode="batch")
    aug.fit(frame.head(1000))
    rss_before = current_rss_mib()
    peak_before = peak_rss_mib()
    start = time.perf_counter()
    out = aug.transform(frame)
    seconds = time.perf_counter() - start
    spine_mib = float(frame.memory_usage(deep=True).sum()) / 2**20
    output_mib = float(out.memory_usage(deep=True).sum()) / 2**20
    peak = peak_rss_mib()
    # the process's peak may predate the lookup (imports, the fit): then the lookup added nothing to it
    growth = peak - rss_before if peak > peak_before else 0.0
    return {"seconds": seconds, "rows": len(out), "peak_rss_mib": peak, "peak_before_mib": peak_before,
            "rss_before_mib": rss_before, "spine_mib": spine_mib, "output_mib": output_mib, "growth_mib": growth}


IMPORT_SNIPPET = """
import json, sys, time
start = time.perf_counter()
import fs_augment
seconds = time.perf_counter() - start
heavy = sorted({name.split(".", 1)[0] for name in sys.modules} & set(HEAVY))
pandas_imported = "pandas" in sys.modules
loaded = len(sys.modules)
start = time.perf_counter()
from fs_augment import FeatureStoreAugmenter
augmenter_seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "heavy_modules": heavy, "pandas_imported": pandas_imported,
                  "modules_loaded": loaded, "augmenter_import_seconds": augmenter_seconds}))
""".replace("HEAVY", repr(HEAVY_MODULES))


def run_import() -> dict[str, Any]:
    """``import fs_augment`` in a fresh interpreter started outside the repository, as a user would."""
    import tempfile

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", IMPORT_SNIPPET], cwd=tempfile.gettempdir(), env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"import benchmark failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def serving(args: dict[str, Any]) -> dict[str, Any]:
    """The served MLflow model (see :mod:`benchmarks.serving`)."""
    from benchmarks.serving import serving as run

    return run(args)


def serving_load(args: dict[str, Any]) -> dict[str, Any]:
    """The served model under concurrent clients, 1 and 2 workers (see :mod:`benchmarks.serving_load`)."""
    from benchmarks.serving_load import serving_load as run

    return run(args)


def spark(args: dict[str, Any]) -> dict[str, Any]:
    """Batch scoring with MLflow's spark_udf next to the in-process scorer (see :mod:`benchmarks.spark`)."""
    from benchmarks.spark import spark as run

    return run(args)


WORKERS = {"pit-duckdb": pit_duckdb, "pit-fs": pit_fs_augment, "memory": memory, "serving": serving,
           "serving-load": serving_load, "spark": spark}


def run_worker(name: str, args: dict[str, Any], *, timeout: float = 900) -> dict[str, Any]:
    """Run one worker in a fresh interpreter and return its JSON answer."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.workers", name, json.dumps(args)], cwd=root,
                          env=env, capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker {name} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1])
    result["process_wall_s"] = wall
    return result


def main(argv: list[str]) -> int:
    name, raw = argv[0], argv[1] if len(argv) > 1 else "{}"
    result = WORKERS[name](json.loads(raw))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
