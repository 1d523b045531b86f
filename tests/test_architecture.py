"""The package's layers, read from the source with ``ast`` (nothing is imported to check them).

* the pure layer (errors, keys, config, recipe, backends ...) imports nothing above it;
* the stores import only the pure layer and each other's modules, never the adapter,
  monitoring, connections or their own package ``__init__``;
* code above the stores reaches them through the interface of ``stores/base.py``;
* every registered backend implements its interface and is a context manager.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from fs_augment import backends
from fs_augment.stores.base import OfflineStore, OnlineStore

PACKAGE = Path(__file__).resolve().parent.parent / "fs_augment"

#: Modules below the stores: pure logic, no I/O against a store.
PURE = {"fs_augment.errors", "fs_augment.keys", "fs_augment.config", "fs_augment.recipe",
        "fs_augment.backends", "fs_augment.settings"}
#: What no module in fs_augment/stores/ may import.
ABOVE_STORES = {"fs_augment.adapter", "fs_augment.monitoring", "fs_augment.connections", "fs_augment.stores"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (also in functions and ``TYPE_CHECKING`` blocks).

    ``from package import name`` counts as importing ``package`` (its ``__init__`` runs) unless
    ``package.name`` is a module file, which then counts instead.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                if is_module(candidate):
                    found.add(candidate)
                else:
                    found.add(base)
    return {name for name in found if name == "fs_augment" or name.startswith("fs_augment.")}


def is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:]) if name.startswith("fs_augment.") else None
    if relative is None:
        return False
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


def files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.py"))


STORE_FILES = files(PACKAGE / "stores")


def test_the_reader_sees_imports_in_functions_and_type_checking_blocks():
    probe = PACKAGE / "stores" / "redis.py"
    found = imports(probe)
    assert "fs_augment.stores.base" in found
    assert "fs_augment.config" in found


@pytest.mark.parametrize("path", STORE_FILES, ids=lambda p: p.name)
def test_stores_import_nothing_above_them(path):
    found = imports(path)
    assert not found & ABOVE_STORES, f"{path.name} imports {sorted(found & ABOVE_STORES)}"
    allowed = PURE | {module_name(p) for p in STORE_FILES if p.name != "__init__.py"}
    assert found <= allowed, f"{path.name} imports {sorted(found - allowed)} (allowed: the pure layer, stores.*)"


@pytest.mark.parametrize("name", sorted(PURE))
def test_the_pure_layer_imports_only_itself(name):
    path = PACKAGE / f"{name.rpartition('.')[2]}.py"
    if not path.is_file():
        pytest.fail(f"{path} is missing")
    found = imports(path) - {name}
    assert found <= PURE, f"{path.name} imports {sorted(found - PURE)}"


def test_the_stores_package_init_imports_nothing():
    assert imports(PACKAGE / "stores" / "__init__.py") == set()


@pytest.mark.parametrize("name", ["checks.py", "writer.py", "adapter.py", "connections.py", "stores/local.py"])
def test_code_above_a_backend_uses_the_store_interface(name):
    """No ``isinstance`` against a backend class, no backend module imported (the writer may open
    Redis for a URL or a redis-py client it is given); checks, writer and the local store probe no
    store with ``hasattr``."""
    path = PACKAGE / name
    tree = ast.parse(path.read_text(encoding="utf-8"))
    backend_classes = {spec.store_class.rpartition(":")[2] for spec in registered()}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "hasattr" \
                and name in ("checks.py", "writer.py", "stores/local.py"):
            pytest.fail(f"{name}:{node.lineno} probes a store with hasattr")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance":
            named = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
            assert not named & backend_classes, f"{name}:{node.lineno} checks for a backend class"
    backend_modules = {spec.store_class.partition(":")[0] for spec in registered()}
    if name == "writer.py":
        backend_modules.discard("fs_augment.stores.redis")
    assert not imports(path) & backend_modules, f"{name} imports {sorted(imports(path) & backend_modules)}"


def registered() -> list[backends.Backend]:
    return [*backends.ONLINE_PROVIDERS.values(), *backends.OFFLINE_SCHEMES.values()]


@pytest.mark.parametrize("backend", registered(), ids=lambda b: f"{b.kind}-{b.name}")
def test_every_registered_backend_implements_its_interface(backend):
    interface = OnlineStore if backend.kind == "online" else OfflineStore
    store_class = backend.load_store_class()
    assert issubclass(store_class, interface)
    assert not inspect.isabstract(store_class), f"{store_class.__name__} leaves abstract methods"
    for method in ("__enter__", "__exit__", "close", "describe", "list_features"):
        assert callable(getattr(store_class, method))
    factory = backend.load_factory()
    assert callable(factory)
    assert backend.store_class.partition(":")[0] == backend.factory.partition(":")[0], "one module a backend"
    assert store_class.__module__ == backend.store_class.partition(":")[0]


@pytest.mark.parametrize("backend", registered(), ids=lambda b: f"{b.kind}-{b.name}")
def test_every_factory_builds_its_store_without_io_and_it_closes_as_a_context_manager(backend, tmp_path):
    from fs_augment.config import load_config

    uri = {"file": f"file://{tmp_path}", "bq": "bq://my-project.features"}.get(backend.name, f"file://{tmp_path}")
    provider = backend.name if backend.kind == "online" else "redis"
    (tmp_path / "base.yaml").write_text("")
    (tmp_path / "t.yaml").write_text(
        f"feature_store:\n  provider: {provider}\n  connection_info:\n    redis_host: 127.0.0.1:1\n"
        f"    offline_store_uri: {uri}\n")
    config = load_config("t", tmp_path)
    if backend.kind == "online":
        offline = backends.offline_backend(uri).load_factory()(config)
        store = backend.load_factory()(config, offline)
    else:
        store = backend.load_factory()(config)
    with store as entered:  # nothing connected: 127.0.0.1:1 and the BigQuery project are never asked
        assert entered is store
        assert isinstance(store, backend.load_store_class())
        assert store.describe()
