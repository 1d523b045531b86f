"""Rules the test suite keeps about itself, checked so that they stay kept.

* Helpers live in ``tests/support/``: no module imports from a ``conftest`` module
  (pytest loads those itself; importing one runs it twice under two names).
* Warnings are errors, and every ignored warning is narrow and says why
  (``filterwarnings`` in pyproject.toml).
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            modules += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return modules


def test_no_module_imports_a_conftest_module() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for folder in ("tests", "benchmarks", "fs_augment")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for module in _imported_modules(path)
        if "conftest" in module.split(".")
    ]
    assert offenders == [], "helpers belong in tests/support/: " + "; ".join(offenders)


def test_warnings_are_errors_and_every_ignore_is_narrow_and_explained() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    filters = tomllib.loads(text)["tool"]["pytest"]["ini_options"]["filterwarnings"]
    assert filters[0] == "error"
    block = re.search(r"^filterwarnings = \[\n(.*?)^\]", text, re.S | re.M)
    assert block is not None
    explained = False  # the nearest line above that is not an ignore is a comment
    for line in block.group(1).splitlines():
        stripped = line.strip()
        if stripped.startswith('"ignore:'):
            _, message, category, *_module = stripped.rstrip(",").strip('"').split(":")
            assert message and category.endswith(("Warning", "Error")), f"message and category: {stripped}"
            assert explained, f"an ignore says why, in a comment above it: {stripped}"
        else:
            explained = stripped.startswith("#")
