"""The benchmark driver: ``python -m benchmarks [--size full|smoke] [--only NAME ...] [--out DIR]``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

BENCHMARKS = ("online", "batch", "pit", "import", "memory", "serving", "serving_load", "spark")
#: Not run at ``--size smoke`` unless named with ``--only`` (they start MLflow servers or a JVM).
HEAVY = ("serving", "serving_load", "spark")
ENV = "bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
ROOT = Path(__file__).resolve().parent.parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="fs_augment against the raw Redis / DuckDB floor, on the ANCHORS.md data set.")
    parser.add_argument("--size", choices=("full", "smoke"), default="full",
                        help="full: the ANCHORS.md sizes (a few minutes); smoke: tiny, for CI (default: full)")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, metavar="NAME",
                        help=f"run only these benchmarks (repeatable; one of {', '.join(BENCHMARKS)})")
    parser.add_argument("--skip", action="append", choices=BENCHMARKS, default=[], metavar="NAME",
                        help="skip these benchmarks (repeatable)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write results.json and BENCHMARKS.md here (default: benchmarks/results.json and "
                             "BENCHMARKS.md at the repository root)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help="the Redis database the benchmark owns; FLUSHED at start and end "
                             "(default: %(default)s)")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the generated data (default: a temporary folder, removed afterwards)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data (default: 0)")
    return parser


#: The spine's times are in 2024 (benchmarks.data): an as_of inside it ignores the rows created later.
PIT_AS_OF = "2024-07-01T00:00:00Z"


def _with_created(work: Path, redis_url: str, seed: int) -> Path:
    """A copy of the parquet folder whose tables have ``created_timestamp`` (a lag of 0 to 3 days, a tenth
    null), and the config folder of an environment reading it; made once per run."""
    import numpy as np
    import pandas as pd

    from benchmarks.data import write_config

    folder = work / "created"
    config_dir = folder / "config"
    if config_dir.is_dir():
        return config_dir
    rng = np.random.default_rng(seed)
    (folder / "features").mkdir(parents=True)
    for path in sorted((work / "features").glob("*.parquet")):
        table = pd.read_parquet(path)
        lag = pd.to_timedelta(rng.integers(0, 3 * 86400, len(table)), unit="s")
        created = pd.Series(pd.to_datetime(table["event_timestamp"], utc=True) + lag, index=table.index)
        created[rng.random(len(table)) < 0.1] = pd.NaT
        table.insert(table.columns.get_loc("event_timestamp") + 1, "created_timestamp", created)
        table.to_parquet(folder / "features" / path.name, index=False)
    return write_config(folder, redis_url, folder / "features")


def _pit(sizes: Any, work: Path, config_dir: Path, rows: int, runs: int, seed: int,
         redis_url: str = DEFAULT_REDIS_URL) -> dict[str, Any]:
    """The hand-written ASOF JOIN floor against the augmenter's point-in-time transform: over the plain
    tables, with ``as_of``, over tables with ``created_timestamp``, and with both."""
    from benchmarks.data import spine
    from benchmarks.workers import run_worker

    spine_file = work / f"spine_{rows}.parquet"
    spine(sizes, rows, seed=seed, times=True).to_parquet(spine_file, index=False)
    features = str(work / "features")
    created_config = _with_created(work, redis_url, seed)
    base = {"spine": str(spine_file), "features": features, "env": ENV}
    variants = {
        "duckdb": ("pit-duckdb", {**base, "config_dir": str(config_dir)}),
        "fs_augment": ("pit-fs", {**base, "config_dir": str(config_dir)}),
        "fs_augment_as_of": ("pit-fs", {**base, "config_dir": str(config_dir), "as_of": PIT_AS_OF}),
        "fs_augment_created": ("pit-fs", {**base, "config_dir": str(created_config)}),
        "fs_augment_created_as_of": ("pit-fs", {**base, "config_dir": str(created_config), "as_of": PIT_AS_OF}),
    }
    results: dict[str, list[dict[str, Any]]] = {key: [] for key in variants}
    for i in range(runs):
        order = list(variants)
        for key in (order if i % 2 == 0 else order[::-1]):
            worker, worker_args = variants[key]
            results[key].append(run_worker(worker, worker_args))
    out: dict[str, Any] = {"rows": rows, "runs": runs}
    for key, items in results.items():
        out[key] = {
            "median_s": statistics.median(r["seconds"] for r in items),
            "runs_s": [r["seconds"] for r in items],
            "peak_rss_mib": max(r["peak_rss_mib"] for r in items),
            "rss_before_mib": statistics.median(r["rss_before_mib"] for r in items),
            "output_mib": items[0]["output_mib"],
        }
    return out


def _step(results: dict[str, Any], name: str, function: Any) -> None:
    """Run one benchmark; a failure is recorded (and printed), the others still run."""
    print(f"{name} ...", flush=True)
    try:
        function()
    except Exception as exc:  # reported in the results; the run goes on
        traceback.print_exc()
        results.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"[:4000]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks import machine
    from benchmarks.data import SIZES, generate
    from benchmarks.workers import run_import, run_worker

    selected = [b for b in (args.only or [b for b in BENCHMARKS if not (args.size == "smoke" and b in HEAVY)])
                if b not in args.skip]
    sizes = SIZES[args.size]
    started = time.perf_counter()
    results: dict[str, Any] = {
        "command": " ".join(["python -m benchmarks", *([shlex.join(sys.argv[1:])] if sys.argv[1:] else [])]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "size": args.size,
        "seed": args.seed,
        "sizes": asdict(sizes),
        "selected": selected,
        "machine": machine.describe(args.redis_url),
    }
    work = args.work or Path(tempfile.mkdtemp(prefix="fs_augment_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    config_dir = work / "config"
    needs_data = set(selected) - {"import"}
    try:
        if needs_data:
            print(f"generating the data set ({args.size}) in {work} and {args.redis_url} ...", flush=True)
            results["data"] = generate(sizes, work, args.redis_url, seed=args.seed)
        if "import" in selected:
            def imports() -> None:
                runs = [run_import() for _ in range(sizes.import_runs)]
                results["import"] = {
                    "median_s": statistics.median(r["seconds"] for r in runs),
                    "runs_s": [r["seconds"] for r in runs],
                    "heavy_modules": sorted({m for r in runs for m in r["heavy_modules"]}),
                    "pandas_imported": any(r["pandas_imported"] for r in runs),
                    "augmenter_median_s": statistics.median(r["augmenter_import_seconds"] for r in runs),
                }

            _step(results, "import", imports)
        if "online" in selected:
            def online() -> None:
                from benchmarks import inprocess

                results["online"] = inprocess.bench_online(sizes, args.redis_url, ENV, config_dir)

            _step(results, "online", online)
        if "batch" in selected:
            def batch() -> None:
                from benchmarks import inprocess

                results["batch_1k"] = inprocess.bench_batch(sizes, args.redis_url, ENV, config_dir, sizes.batch_small,
                                                            sizes.batch_runs, chunked=False, seed=2)
                results["batch_100k"] = inprocess.bench_batch(sizes, args.redis_url, ENV, config_dir,
                                                              sizes.batch_large, sizes.batch_large_runs, chunked=True,
                                                              seed=3)

            _step(results, "batch", batch)
        if "pit" in selected:
            def pit() -> None:
                results["pit_small"] = _pit(sizes, work, config_dir, sizes.pit_small, sizes.pit_runs, seed=4,
                                            redis_url=args.redis_url)
                results["pit_large"] = _pit(sizes, work, config_dir, sizes.pit_large, max(1, sizes.pit_runs - 1),
                                            seed=5, redis_url=args.redis_url)

            _step(results, "point in time", pit)
        if "memory" in selected:
            def memory() -> None:
                results["memory"] = run_worker("memory", {"size": args.size, "rows": sizes.memory_rows, "env": ENV,
                                                          "config_dir": str(config_dir)})

            _step(results, "memory", memory)
        if "serving" in selected:
            def serving() -> None:
                results["serving"] = run_worker("serving", {"size": args.size, "requests": sizes.serving_requests,
                                                            "env": ENV, "config_dir": str(config_dir),
                                                            "work": str(work / "mlflow")})

            _step(results, "serving", serving)
        if "serving_load" in selected:
            def serving_load() -> None:
                results["serving_load"] = run_worker(
                    "serving-load", {"size": args.size, "seconds": sizes.load_seconds, "workers": [1, 2],
                                     "clients": list(sizes.load_clients), "settings": sizes.load_settings,
                                     "env": ENV, "config_dir": str(config_dir), "work": str(work / "mlflow_load")},
                    timeout=1200)

            _step(results, "serving under load", serving_load)
        if "spark" in selected:
            def spark() -> None:
                results["spark"] = run_worker("spark", {"size": args.size, "env": ENV, "config_dir": str(config_dir),
                                                        "redis_url": args.redis_url, "work": str(work / "spark")},
                                              timeout=1800)

            _step(results, "spark", spark)
    finally:
        if needs_data:
            _flush(args.redis_url)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    results["total_seconds"] = time.perf_counter() - started
    return results


def _flush(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    from benchmarks import report

    args = _parser().parse_args(argv)
    results = run(args)
    rows = report.targets(results)
    results["targets"] = rows
    json_path = (args.out / "results.json") if args.out else ROOT / "benchmarks" / "results.json"
    md_path = (args.out / "BENCHMARKS.md") if args.out else ROOT / "BENCHMARKS.md"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    md_path.write_text(report.markdown(results, rows, report.read_notes()), encoding="utf-8")
    print()
    print(report.detail_tables(results))
    print(report.console_table(rows))
    for name, error in (results.get("errors") or {}).items():
        print(f"FAILED {name}: {error.splitlines()[0]}")
    print(f"\nwrote {json_path} and {md_path}")
    return 1 if results.get("errors") else 0
