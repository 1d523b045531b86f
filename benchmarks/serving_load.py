"""A served MLflow model under concurrent clients, with 1 and 2 workers, next to the same pipeline served with
features passed in.

Runs in a worker process of its own (``python -m benchmarks.workers serving-load``). The pipeline is
augmenter → one-hot encoding → ``HistGradientBoostingClassifier`` (whose predictions use OpenMP
threads). It is logged with :func:`fs_augment.mlflow.log_model` (``augmented``: entity keys in, the
8 features looked up online in Redis) and, without the augmenter, with ``mlflow.sklearn``
(``direct``: the 8 features in the request). For each number of workers both are served with
``mlflow models serve --workers N --env-manager local``; for 1, 8 and 32 concurrent clients (threads
of this process, one keep-alive HTTP connection each) and 1- and 100-row requests, each model is
loaded for a fixed time, in two slices each in the order augmented, direct, direct, augmented (so
drift of the shared machine hits both alike). Requests/s and p50/p99 latency per cell.

The ``settings`` cells serve the augmented model alone at 32 clients with other settings: OpenMP
left at its default (one thread a core) instead of ``OMP_NUM_THREADS=1``, and a connection pool of
one instead of the default. Every served answer checked before the load equals the in-process
prediction.
"""

from __future__ import annotations

import http.client
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.serving import _Server, _split, fit_and_log, setup
from benchmarks.stats import latency_summary

#: the thread settings of the main cells (see the module docstring for the others)
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
POOL_ENV = "bench_pool1"


def _load(port: int, bodies: list[bytes], clients: int, seconds: float) -> tuple[list[int], float]:
    """``clients`` threads post ``bodies`` round robin for ``seconds``; per-request latencies (ns) and wall."""
    samples: list[list[int]] = [[] for _ in range(clients)]
    errors: list[str] = []
    start_line = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(c: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = samples[c]
        i = c * 7919
        clock = time.perf_counter_ns
        start_line.wait()
        try:
            while time.perf_counter() < deadline[0]:
                body = bodies[i % len(bodies)]
                i += 1
                begin = clock()
                connection.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                data = response.read()
                mine.append(clock() - begin)
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}: {data[:500]!r}")
        except Exception as exc:  # reported after the threads end
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    begin = time.perf_counter()
    deadline[0] = begin + seconds
    start_line.wait()
    for thread in threads:
        thread.join(seconds + 120)
    wall = time.perf_counter() - begin
    if errors:
        raise RuntimeError(f"{len(errors)} clients failed; first: {errors[0]}")
    return [s for mine in samples for s in mine], wall


def _cell(servers: dict[str, _Server], bodies: dict[str, list[bytes]], clients: int, seconds: float
          ) -> dict[str, Any]:
    samples: dict[str, list[int]] = {name: [] for name in servers}
    walls = dict.fromkeys(servers, 0.0)
    names = list(servers)
    for name in names + names[::-1]:
        got, wall = _load(servers[name].port, bodies[name], clients, seconds / 2)
        samples[name] += got
        walls[name] += wall
    out: dict[str, Any] = {}
    for name in names:
        summary = latency_summary(samples[name])
        out[name] = {"requests_per_s": summary["n"] / walls[name],
                     **{k: summary[k] for k in ("n", "p50_us", "p99_us", "mean_us")}}
    return out


def _check(server: _Server, bodies: list[bytes], expected: list[Any]) -> None:
    for body, want in zip(bodies, expected, strict=True):
        got = server.invoke(body)
        if got != want:
            raise RuntimeError(f"the served model on port {server.port} answered {got[:5]}, in process {want[:5]}")


def _pool_config(config_dir: Path) -> None:
    """Environment ``bench_pool1``: the benchmark's Redis environment with a pool of one connection."""
    text = (config_dir / "bench.yaml").read_text(encoding="utf-8")
    (config_dir / f"{POOL_ENV}.yaml").write_text(text + "  connection_pool_size: 1\n", encoding="utf-8")


def serving_load(args: dict[str, Any]) -> dict[str, Any]:
    load_before = list(os.getloadavg())
    setup(args)
    work = Path(args["work"])

    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier

    from benchmarks.data import SIZES, spine

    sizes = SIZES[args["size"]]
    seconds = float(args["seconds"])
    model = HistGradientBoostingClassifier(max_iter=50, random_state=0)
    pipe, _, info, direct_info, _ = fit_and_log(sizes, model, dense=True)
    augment = pipe.named_steps["augment"]

    rng = np.random.default_rng(43)
    bodies: dict[int, dict[str, list[bytes]]] = {}
    expected: dict[int, list[Any]] = {}
    for rows, count in ((1, 300), (100, 30)):
        frames = [spine(sizes, rows, seed=int(rng.integers(1 << 30))) for _ in range(count)]
        augment.set_params(mode="batch")
        features = [augment.transform(frame) for frame in frames]
        augment.set_params(mode="auto")
        bodies[rows] = {"augmented": [_split(f) for f in frames], "direct": [_split(f) for f in features]}
        expected[rows] = [pipe.predict(f).tolist() for f in frames[:5]]

    base_env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env = {**base_env, **ONE_THREAD}
    cells: list[dict[str, Any]] = []
    for workers in args["workers"]:
        servers: dict[str, _Server] = {}
        try:
            servers["augmented"] = _Server(info.model_uri, env, work / f"augmented_w{workers}.log", workers)
            servers["direct"] = _Server(direct_info.model_uri, env, work / f"direct_w{workers}.log", workers)
            for rows in (1, 100):
                for name, server in servers.items():  # warm every worker: imports, first lookups
                    _load(server.port, bodies[rows][name], 2 * workers, min(1.0, seconds))
                _check(servers["augmented"], bodies[rows]["augmented"][:5], expected[rows])
                _check(servers["direct"], bodies[rows]["direct"][:5], expected[rows])
                for clients in args["clients"]:
                    cells.append({"workers": workers, "rows": rows, "clients": clients,
                                  **_cell(servers, bodies[rows], clients, seconds)})
        finally:
            for server in servers.values():
                server.stop()

    settings = []
    if args.get("settings"):
        _pool_config(Path(args["config_dir"]))
        variants = [
            ("OpenMP default (one thread a core)", 1, base_env),
            ("OpenMP default (one thread a core)", 2, base_env),
            ("OMP_NUM_THREADS=1, connection_pool_size 1", 2, {**env, "FS_AUGMENT_ENV": POOL_ENV}),
        ]
        for label, workers, variant_env in variants:
            server = _Server(info.model_uri, variant_env, work / f"settings_{len(settings)}.log", workers)
            try:
                for rows in (1, 100):
                    _load(server.port, bodies[rows]["augmented"], 2 * workers, min(1.0, seconds))
                    _check(server, bodies[rows]["augmented"][:5], expected[rows])
                    result = _cell({"augmented": server}, {"augmented": bodies[rows]["augmented"]}, 32, seconds)
                    settings.append({"setting": label, "workers": workers, "rows": rows, "clients": 32,
                                     **result["augmented"]})
            finally:
                server.stop()
    return {"seconds_per_cell": seconds, "model": type(model).__name__, "threads": ONE_THREAD, "cells": cells,
            "settings": settings, "load_before": load_before, "load_after": list(os.getloadavg()),
            "cores": os.cpu_count()}
