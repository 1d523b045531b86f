"""``python -m benchmarks``: see :mod:`benchmarks`."""

from benchmarks.run import main

raise SystemExit(main())
