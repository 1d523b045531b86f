#!/usr/bin/env bash
# Create (once) a dedicated virtual environment holding the `bqemulator`
# BigQuery REST emulator, used by the BigQuery tests through
# tests/support/bqemulator.py.
#
# The emulator lives in its own venv because its pins (duckdb, sqlglot, ...)
# must not leak into the project's venv.  bqemulator imports numpy at start-up
# (for its built-in DuckDB UDFs) without declaring it, so numpy is added.  It
# also needs DuckDB's `spatial` extension at start-up; the extension is taken
# from the PyPI wheel `duckdb-extension-spatial` (which pins the duckdb
# version) and installed into a DuckDB home scoped to the venv
# (<venv>/duckdb-home), so nothing is fetched from the DuckDB extension
# repository at run time.  testcontainers is not needed: the emulator's own
# pytest plugin only loads in this venv, never in the project's.
#
# Usage: .ci/bqemulator-setup.sh [VENV_DIR]
#   VENV_DIR defaults to ${BQEMU_VENV:-$HOME/.cache/fs_augment/bqemu-venv}.
#   BQEMU_PYTHON selects the interpreter (default: python3, needs >= 3.11).
#
# Idempotent: a marker file records the pinned versions; when it matches,
# the script exits without touching the network.
set -euo pipefail

BQEMULATOR_VERSION="1.4.0"
DUCKDB_VERSION="1.5.5"
MARKER_CONTENT="bqemulator==${BQEMULATOR_VERSION} duckdb==${DUCKDB_VERSION} duckdb-extension-spatial==${DUCKDB_VERSION} numpy"

venv="${1:-${BQEMU_VENV:-$HOME/.cache/fs_augment/bqemu-venv}}"
python="${BQEMU_PYTHON:-python3}"
marker="$venv/.bqemu-setup"

is_ready() {
    [[ -f "$marker" ]] && [[ "$(cat "$marker")" == "$MARKER_CONTENT" ]] \
        && [[ -x "$venv/bin/python" ]]
}

if is_ready; then
    echo "bqemulator-setup: $venv already set up ($MARKER_CONTENT)"
    exit 0
fi

mkdir -p "$(dirname "$venv")"
# Serialise concurrent runs (e.g. parallel CI steps) on the same venv.
exec 9>"$venv.lock"
flock 9
if is_ready; then
    echo "bqemulator-setup: $venv already set up ($MARKER_CONTENT)"
    exit 0
fi

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "bqemulator-setup: $python is older than 3.11 (bqemulator needs >= 3.11)" >&2
    exit 1
fi

echo "bqemulator-setup: creating $venv"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "bqemulator==${BQEMULATOR_VERSION}" \
    "duckdb==${DUCKDB_VERSION}" \
    "duckdb-extension-spatial==${DUCKDB_VERSION}" \
    "numpy>=1.26"

# Install the bundled spatial extension into the scoped DuckDB home; the
# emulator's `INSTALL spatial` is then a no-op and `LOAD spatial` works
# offline.  The helper starts the emulator with HOME=<venv>/duckdb-home.
mkdir -p "$venv/duckdb-home"
HOME="$venv/duckdb-home" "$venv/bin/python" - <<'PY'
from pathlib import Path

import duckdb
import duckdb_extension_spatial

root = Path(duckdb_extension_spatial.__file__).parent / "extensions"
ext = root / f"v{duckdb.__version__}" / "spatial.duckdb_extension"
if not ext.is_file():
    raise SystemExit(f"spatial extension for duckdb {duckdb.__version__} not found under {root}")
con = duckdb.connect()
con.execute(f"INSTALL '{ext}'")
con.execute("LOAD spatial")
print("bqemulator-setup: spatial extension installed:", con.execute(
    "SELECT install_path FROM duckdb_extensions() WHERE extension_name = 'spatial'"
).fetchone()[0])
PY

# Fail here, not in the first test, if the emulator cannot even be imported.
"$venv/bin/python" -c 'import bqemulator.server, numpy' >/dev/null

# The marker is written last, so an interrupted run is redone next time.
printf '%s' "$MARKER_CONTENT" >"$marker"
echo "bqemulator-setup: done ($MARKER_CONTENT)"
