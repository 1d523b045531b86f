"""Sphinx configuration of the fs_augment documentation.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (what ``.ci/run`` does).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "ext"))

import fs_augment

project = "fs_augment"
author = "fs_augment developers"
copyright = "fs_augment developers"
release = version = fs_augment.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "fs_settings",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "ext", "generated"]

myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types
autodoc_inherit_docstrings = False  # third-party base classes (mlflow) bring their own markup
numpydoc_show_class_members = False
numpydoc_xref_param_type = False

html_theme = "alabaster"
html_title = f"fs_augment {release}"
html_static_path: list[str] = ["_static"]
smartquotes = False  # the accepted values are quoted as the validators quote them
