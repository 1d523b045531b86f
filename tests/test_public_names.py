"""The package's public names: each resolves, and a type checker sees what it is.

``fs_augment`` imports its public names lazily (``__getattr__``); its ``TYPE_CHECKING`` imports
show them to a type checker, which would otherwise take every one of them for ``Any``.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fs_augment

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fs_augment"


def _type_checking_names() -> set[str]:
    """The names ``fs_augment/__init__.py`` binds in its ``if TYPE_CHECKING:`` block."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom), ast.dump(statement)
                names.update(alias.asname or alias.name for alias in statement.names)
    return names


def test_all_is_a_static_list_of_the_lazy_names() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    [value] = [node.value for node in tree.body if isinstance(node, ast.Assign)
               and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)]
    assert isinstance(value, ast.List) and all(isinstance(e, ast.Constant) for e in value.elts), \
        "__all__ must be a list of strings that a type checker can read without running the module"
    assert sorted(fs_augment.__all__) == sorted(["__version__", *fs_augment._LAZY])


@pytest.mark.parametrize("name", fs_augment.__all__)
def test_every_public_name_resolves(name: str) -> None:
    value = getattr(fs_augment, name)
    if name != "__version__":
        module = importlib.import_module(fs_augment._LAZY[name])
        assert value is getattr(module, name)


def test_every_lazy_name_and_submodule_is_shown_to_type_checkers() -> None:
    shown = _type_checking_names()
    assert shown >= set(fs_augment._LAZY), sorted(set(fs_augment._LAZY) - shown)
    assert shown >= fs_augment._SUBMODULES, sorted(fs_augment._SUBMODULES - shown)


def test_the_package_ships_its_py_typed_marker() -> None:
    assert (PACKAGE / "py.typed").is_file()


def test_import_stays_lazy() -> None:
    """The ``TYPE_CHECKING`` imports cost nothing at run time: ``import fs_augment`` loads no public module."""
    probe = ("import sys, fs_augment; "
             "print(sorted(m for m in sys.modules if m.startswith(('fs_augment.', 'sklearn', 'pandas'))))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert loaded.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_type_checker_sees_the_public_classes_and_functions(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """mypy, with the project's configuration and a cold cache, reveals the real types, never ``Any``."""
    from mypy import api  # in the test extra: a missing mypy fails
    names = [name for name in fs_augment.__all__ if name != "__version__"]
    snippet = "\n".join([
        "import fs_augment",
        "from fs_augment import FeatureStoreAugmenter",
        "reveal_type(FeatureStoreAugmenter)",
        "reveal_type(FeatureStoreAugmenter(recipe='r.yaml').fit_transform)",
        "reveal_type(fs_augment.keys.feature_key)",
        *(f"reveal_type(fs_augment.{name})" for name in names),
    ])
    user_code = tmp_path / "user_code.py"
    user_code.write_text(snippet + "\n", encoding="utf-8")
    monkeypatch.chdir(ROOT)  # the package is found in the checkout, as .ci/run checks it
    stdout, stderr, status = api.run(["--config-file", str(ROOT / "pyproject.toml"),
                                      "--cache-dir", str(tmp_path / "cache"), str(user_code)])
    assert status == 0, stdout + stderr
    types = re.findall(r'^.*user_code\.py:\d+: note: Revealed type is "(.*)"$', stdout, flags=re.MULTILINE)
    assert len(types) == 3 + len(names), stdout
    augmenter, fit_transform, feature_key, *public = types
    assert augmenter.startswith("def (recipe: str | os.PathLike[str] | "), augmenter
    assert augmenter.endswith(") -> fs_augment.augmenter.FeatureStoreAugmenter"), augmenter
    assert fit_transform.endswith("-> pandas.core.frame.DataFrame | polars.dataframe.frame.DataFrame"), fit_transform
    assert feature_key == "def (namespace: str, feature: str, entity: str) -> str"
    for name, text in zip(names, public, strict=True):
        assert text != "Any" and text.startswith(("def ", "overload", "type[", "Overload", "fs_augment.")), \
            f"fs_augment.{name} is {text}"
