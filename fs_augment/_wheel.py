"""A wheel of the fs_augment code this process runs, for a logged model to carry.

A pickled pipeline can only be unpickled by the code that pickled it, so the
wheel is made from the imported package itself (every file under
``fs_augment/`` but bytecode caches), not rebuilt from a source tree that may
have moved on, and not fetched from an index that may not have this version.
Its metadata is the installed distribution's (name, version, dependencies,
console script); without an installed distribution of the same version (the
package only on ``sys.path``) it gets the name and version alone.

The archive is a plain PEP 427 wheel, ``py3-none-any`` (the package is pure
Python), with the build number ``1``: the tie-breaker PEP 427 gives build
numbers, so pip prefers it to a file of the same version an index may offer
(without one pip takes the index's). It is reproducible: entries sorted,
timestamps fixed, so the same code gives the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from importlib import metadata
from pathlib import Path

__all__ = ["BUILD_NUMBER", "WHEEL_TAG", "build_wheel", "wheel_name"]

WHEEL_TAG = "py3-none-any"
BUILD_NUMBER = "1"
_DISTRIBUTION = "fs_augment"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_SKIPPED_DIRECTORIES = {"__pycache__"}
_SKIPPED_SUFFIXES = {".pyc", ".pyo"}


def wheel_name(version: str) -> str:
    """The file name of fs_augment's wheel at ``version`` (PEP 427).

    Examples
    --------
    >>> wheel_name("0.1.0")
    'fs_augment-0.1.0-1-py3-none-any.whl'
    """
    return f"{_DISTRIBUTION}-{version}-{BUILD_NUMBER}-{WHEEL_TAG}.whl"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"sha256={digest}"


def _package_files(package_dir: Path) -> list[tuple[str, Path]]:
    files = []
    for path in sorted(package_dir.rglob("*")):
        relative = path.relative_to(package_dir)
        if not path.is_file() or path.suffix in _SKIPPED_SUFFIXES:
            continue
        if _SKIPPED_DIRECTORIES.intersection(relative.parts[:-1]):
            continue
        files.append(((Path(package_dir.name) / relative).as_posix(), path))
    return files


def _metadata(version: str) -> tuple[str, str | None]:
    """The METADATA text and entry_points.txt of the installed distribution, when it is this version."""
    # every installed copy on the path, not only the first: a source checkout's own fs_augment.egg-info
    # (an editable install writes one there) comes first from its folder and has no METADATA file
    for installed in metadata.distributions(name=_DISTRIBUTION):
        if installed.version == version:
            text = installed.read_text("METADATA")
            if text:
                return text, installed.read_text("entry_points.txt")
    return f"Metadata-Version: 2.1\nName: {_DISTRIBUTION}\nVersion: {version}\n", None


def build_wheel(directory: str | Path, package_dir: str | Path | None = None, version: str | None = None) -> Path:
    """Write a wheel of the imported fs_augment package into ``directory``.

    Parameters
    ----------
    directory : str or Path
        Where the wheel goes (it must exist).
    package_dir : str or Path, optional
        The package folder to pack; by default the one ``fs_augment`` was
        imported from.
    version : str, optional
        The wheel's version; by default ``fs_augment.__version__``.

    Returns
    -------
    Path
        The wheel, named by :func:`wheel_name`.
    """
    import fs_augment

    package_dir = Path(package_dir if package_dir is not None else Path(fs_augment.__file__).parent)
    version = version or fs_augment.__version__
    dist_info = f"{_DISTRIBUTION}-{version}.dist-info"
    metadata_text, entry_points = _metadata(version)
    wheel_text = (f"Wheel-Version: 1.0\nGenerator: fs_augment {version}\nRoot-Is-Purelib: true\n"
                  f"Tag: {WHEEL_TAG}\nBuild: {BUILD_NUMBER}\n")

    entries: list[tuple[str, bytes]] = [(name, path.read_bytes()) for name, path in _package_files(package_dir)]
    entries.append((f"{dist_info}/METADATA", metadata_text.encode("utf-8")))
    entries.append((f"{dist_info}/WHEEL", wheel_text.encode("utf-8")))
    if entry_points:
        entries.append((f"{dist_info}/entry_points.txt", entry_points.encode("utf-8")))
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in entries)
    entries.append((f"{dist_info}/RECORD", f"{record}{dist_info}/RECORD,,\n".encode()))

    target = Path(directory) / wheel_name(version)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return target
