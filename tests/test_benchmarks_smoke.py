"""The benchmark suite runs end to end at its smoke size and writes its results.

Only completion and the shape of the output are checked: timings are never asserted (the machine
is shared and noisy; ``python -m benchmarks`` at full size is the measurement).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_smoke_benchmark_completes_and_writes_results(tmp_path: Path, redis_url: str) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--size", "smoke", "--out", str(out), "--work", str(tmp_path / "work"),
         "--redis-url", redis_url],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"

    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["size"] == "smoke"
    assert not results.get("errors")
    for key in ("online", "batch_1k", "batch_100k", "pit_small", "pit_large", "memory", "import"):
        assert key in results, key
    assert set(results["online"]) >= {"raw_mget_decode", "online_get_features", "transform_1row_online"}
    assert results["import"]["heavy_modules"] == []
    assert results["machine"]["versions"]["pandas"]
    statuses = {row["target"]: row["status"] for row in results["targets"]}
    assert len(statuses) >= 10
    assert set(statuses.values()) <= {"PASS", "MISS", "not run", "info"}

    markdown = (out / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Benchmarks")
    assert "## Targets" in markdown and "python -m benchmarks" in markdown


def test_benchmark_help_documents_the_command() -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0
    for option in ("--size", "--only", "--out", "--redis-url"):
        assert option in proc.stdout


@pytest.mark.spark
def test_spark_benchmark_completes_and_reports_the_largest_command(tmp_path: Path, redis_url: str) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--size", "smoke", "--only", "spark", "--out", str(out),
         "--work", str(tmp_path / "work"), "--redis-url", redis_url],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    spark = json.loads((out / "results.json").read_text(encoding="utf-8"))["spark"]
    assert [entry["rows"] for entry in spark["sizes"]] == [2000, 4000]
    assert spark["prediction_mismatches"] == 0
    for path in ("inprocess", "spark"):
        assert 0 < spark["commands"][path]["largest_mget_keys"] <= spark["commands"]["batch_chunk_size"]
    assert "spark_udf" in (out / "BENCHMARKS.md").read_text(encoding="utf-8")


@pytest.mark.mlflow
def test_serving_load_benchmark_completes_with_both_worker_counts(tmp_path: Path, redis_url: str) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--size", "smoke", "--only", "serving_load", "--out", str(out),
         "--work", str(tmp_path / "work"), "--redis-url", redis_url],
        cwd=ROOT, capture_output=True, text=True, timeout=280, check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    load = results["serving_load"]
    assert {(c["workers"], c["clients"], c["rows"]) for c in load["cells"]} == {
        (w, c, r) for w in (1, 2) for c in (1, 8) for r in (1, 100)}
    for cell in load["cells"]:
        for model in ("augmented", "direct"):
            assert cell[model]["n"] > 0 and cell[model]["requests_per_s"] > 0
    statuses = {row["target"]: row["status"] for row in results["targets"]}
    assert any("2 workers ÷ 1" in target for target in statuses)
    assert "Served model under concurrent clients" in (out / "BENCHMARKS.md").read_text(encoding="utf-8")
