"""The wheel a logged model ships: the imported package, valid RECORD, the same bytes for the same code."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import fs_augment
from fs_augment._wheel import build_wheel, wheel_name


def _entries(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_wheel_holds_the_imported_package_with_a_valid_record(tmp_path):
    wheel = build_wheel(tmp_path)
    assert wheel.name == wheel_name(fs_augment.__version__)
    entries = _entries(wheel)
    package = Path(fs_augment.__file__).parent
    sources = {("fs_augment" / p.relative_to(package)).as_posix() for p in package.rglob("*.py")
               if "__pycache__" not in p.parts}
    assert sources <= set(entries)
    assert not [n for n in entries if "__pycache__" in n or n.endswith(".pyc")]
    assert entries["fs_augment/mlflow.py"] == (package / "mlflow.py").read_bytes()

    dist_info = f"fs_augment-{fs_augment.__version__}.dist-info"
    metadata = entries[f"{dist_info}/METADATA"].decode()
    assert f"Version: {fs_augment.__version__}" in metadata and "Requires-Dist: pandas" in metadata
    assert wheel.name == f"fs_augment-{fs_augment.__version__}-1-py3-none-any.whl"
    assert {"Tag: py3-none-any", "Build: 1"} <= set(entries[f"{dist_info}/WHEEL"].decode().splitlines())
    assert "fs-augment = fs_augment.cli:main" in entries[f"{dist_info}/entry_points.txt"].decode()
    record = {}
    for line in entries[f"{dist_info}/RECORD"].decode().splitlines():
        name, digest, size = line.rsplit(",", 2)
        record[name] = (digest, size)
    assert set(record) == set(entries)
    assert record[f"{dist_info}/RECORD"] == ("", "")
    for name, data in entries.items():
        if name.endswith("/RECORD"):
            continue
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert record[name] == (f"sha256={digest}", str(len(data))), name


def test_same_code_gives_the_same_bytes(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    assert build_wheel(first).read_bytes() == build_wheel(second).read_bytes()


def test_a_version_not_installed_gets_name_and_version_only(tmp_path):
    package = tmp_path / "src" / "fs_augment"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('__version__ = "9.9.9"\n')
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"\0")
    (package / "py.typed").write_text("")
    out = tmp_path / "out"
    out.mkdir()
    entries = _entries(build_wheel(out, package_dir=package, version="9.9.9"))
    assert set(entries) == {"fs_augment/__init__.py", "fs_augment/py.typed", "fs_augment-9.9.9.dist-info/METADATA",
                            "fs_augment-9.9.9.dist-info/WHEEL", "fs_augment-9.9.9.dist-info/RECORD"}
    assert entries["fs_augment-9.9.9.dist-info/METADATA"].decode().splitlines()[1:] == [
        "Name: fs_augment", "Version: 9.9.9"]
