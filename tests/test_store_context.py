"""An explicit store context: ``with fs_augment.use(adapter):`` steers augmenters without the process environment."""

from __future__ import annotations

import ast
import os
import threading
from pathlib import Path

import pandas as pd
import pytest

import fs_augment
from fs_augment import FeatureStoreAugmenter
from fs_augment.connections import current_adapter, get_adapter
from fs_augment.errors import ConfigError
from fs_augment.writer import write_parquet_namespace

PACKAGE = Path(fs_augment.__file__).parent
RECIPE = {"augmenter": {"features": [{"feature_namespace": "user_demographics", "features": ["age"]}]}}


def local_project(folder: Path, ages: dict[str, int]) -> Path:
    """A config folder whose environment ``local`` serves ``ages`` from parquet; returns the folder."""
    write_parquet_namespace(pd.DataFrame({"user_id": list(ages), "age": list(ages.values()),
                                          "event_timestamp": pd.Timestamp("2024-01-01", tz="UTC")}),
                            "user_demographics", folder / "features")
    config = folder / "config"
    config.mkdir(parents=True)
    (config / "local.yaml").write_text("feature_store:\n  provider: local\n  connection_info:\n"
                                       f"    offline_store_uri: 'file://{folder / 'features'}'\n")
    return config


def package_variables() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("FS_AUGMENT_")}


def test_an_unpinned_augmenter_fits_and_transforms_through_the_given_adapter(tmp_path, monkeypatch):
    first = local_project(tmp_path / "a", {"u1": 10})
    second = local_project(tmp_path / "b", {"u1": 20})
    monkeypatch.chdir(tmp_path)  # no ./config here: without a given adapter the lookup has nowhere to go
    before = package_variables()
    spine = pd.DataFrame({"user_id": ["u1"]})
    with fs_augment.connect("local", first) as a, fs_augment.connect("local", second) as b:
        with fs_augment.use(a) as given:
            assert given is a and current_adapter() is a
            aug = FeatureStoreAugmenter(RECIPE).fit(spine)
            assert aug.transform(spine)["user_demographics__age"].tolist() == [10]
            with fs_augment.use(b):  # blocks nest
                assert aug.transform(spine)["user_demographics__age"].tolist() == [20]
            assert aug.transform(spine.set_index(pd.Index([5])))["user_demographics__age"].tolist() == [10]
        assert current_adapter() is None
        assert package_variables() == before  # nothing written to the process environment
        with pytest.raises(ConfigError):  # outside the block: ./config of the working folder, absent here
            aug.transform(spine)


def test_each_thread_sees_only_its_own_adapter(tmp_path):
    configs = [local_project(tmp_path / str(i), {"u1": i}) for i in range(4)]
    spine = pd.DataFrame({"user_id": ["u1"]})
    with fs_augment.use(fs_augment.connect("local", configs[0])):
        aug = FeatureStoreAugmenter(RECIPE).fit(spine)
    seen: dict[int, list[float]] = {}
    start = threading.Barrier(len(configs))

    def work(i: int) -> None:
        with fs_augment.connect("local", configs[i]) as adapter, fs_augment.use(adapter):
            start.wait()
            seen[i] = [aug.transform(spine)["user_demographics__age"].iloc[0] for _ in range(20)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(configs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {i: [float(i)] * 20 for i in range(len(configs))}


def test_an_augmenter_pinned_to_another_environment_says_so(tmp_path):
    config = local_project(tmp_path, {"u1": 1})
    aug = FeatureStoreAugmenter(RECIPE, env="prod")
    with fs_augment.connect("local", config) as adapter, fs_augment.use(adapter):
        with pytest.raises(ConfigError, match=r"pinned to environment 'prod'.*environment 'local'"):
            aug.fit(pd.DataFrame({"user_id": ["u1"]}))
        assert get_adapter("local") is adapter  # pinned to the given adapter's own environment: fine


def test_use_takes_an_adapter_only():
    with pytest.raises(TypeError, match=r"takes a FeatureStoreAdapter.*got str"), fs_augment.use("local"):  # type: ignore[arg-type]
        pass


def writes_to_environ(tree: ast.AST) -> list[int]:
    """Lines that assign, delete or mutate ``os.environ`` (reading it is fine)."""
    def is_environ(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ"

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            lines += [node.lineno for t in targets if isinstance(t, ast.Subscript) and is_environ(t.value)]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and is_environ(node.func.value)
              and node.func.attr in ("update", "pop", "setdefault", "clear", "popitem", "__setitem__")):
            lines.append(node.lineno)
    return lines


def test_the_library_never_writes_the_process_environment():
    # the CLI is a program and may quiet MLflow for its own process; the library below it steers nothing so
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "cli.py":
            continue
        lines = writes_to_environ(ast.parse(path.read_text(), str(path)))
        if lines:
            found[str(path.relative_to(PACKAGE))] = lines
    assert found == {}
