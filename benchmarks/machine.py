"""What the benchmark ran on: CPU, cores, memory, versions."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

PACKAGES = ("fs_augment", "pandas", "numpy", "pyarrow", "redis", "hiredis", "duckdb", "orjson", "scikit-learn",
            "mlflow")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _redis_server_version(redis_url: str) -> str | None:
    try:
        import redis

        client = redis.Redis.from_url(redis_url)
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()
    except Exception:  # informational only
        binary = shutil.which("redis-server")
        if binary is None:
            return None
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
        return out.split("v=", 1)[1].split()[0] if "v=" in out else out.strip() or None


def describe(redis_url: str) -> dict[str, Any]:
    """The machine and the versions of everything measured."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    versions["redis-server"] = _redis_server_version(redis_url)
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python_executable": sys.executable,
        "versions": versions,
    }
