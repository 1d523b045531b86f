"""The documentation site's generated and cited parts stay true to the code.

The site itself is built by ``.ci/run`` (``sphinx -W``); these tests need no Sphinx.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from fs_augment.config import load_config
from fs_augment.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def settings_table() -> Any:
    spec = importlib.util.spec_from_file_location("settings_table", DOCS / "ext" / "settings_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nested(dotted: str, value: Any) -> dict[str, Any]:
    tree: Any = value
    for part in reversed(dotted.split(".")):
        tree = {part: tree}
    return tree


def test_the_config_reference_lists_every_setting_with_its_real_default(tmp_path: Path) -> None:
    rows = [settings_table().row(item) for item in settings_table().declared_settings()]
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) and "feature_store.connection_info.redis_host" in keys
    (tmp_path / "empty.yaml").write_text("{}\n")
    defaults = load_config("empty", tmp_path).to_dict(mask_secrets=False)
    defaults["data_lake"] = {"uri": None}
    for r in rows:
        node: Any = defaults
        for part in r["key"].split("."):
            node = node[part]  # every documented key exists in the loaded configuration ...
        assert r["default"] == ("" if node is None else repr(node)), r["key"]  # ... with that default
        assert r["help"], r["key"]  # declared with one line of help
    with pytest.raises(ConfigError, match="unknown key"):  # and a key the table lacks is refused
        (tmp_path / "other.yaml").write_text(yaml.safe_dump(nested("feature_store.not_a_setting", 1)))
        load_config("other", tmp_path)


_CITED = re.compile(r"tests/([\w/]+\.py)::(\w+)")


def test_every_test_the_docs_cite_exists() -> None:
    cited = [(path, name) for page in DOCS.glob("**/*.md") for path, name in _CITED.findall(page.read_text())]
    assert len(cited) >= 10  # the point-in-time rules cite theirs
    for path, name in cited:
        source = (ROOT / "tests" / path).read_text()
        assert re.search(rf"^def {name}\(", source, re.MULTILINE), f"docs cite tests/{path}::{name}, which is gone"
