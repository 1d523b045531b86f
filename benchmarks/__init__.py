"""fs_augment benchmarks: measured speed and memory against the raw Redis and DuckDB floor.

Run from the repository root, with the package installed and Redis on 127.0.0.1:6379::

    python -m benchmarks                    # full ANCHORS.md sizes, a few minutes
    python -m benchmarks --size smoke       # tiny, seconds (CI); skips the served model and Spark
    python -m benchmarks --only spark       # spark_udf next to the in-process scorer (pyspark, Java 17)
    python -m benchmarks --only online --only batch --out /tmp/bench

It generates the ANCHORS.md data set (seeded) into a parquet folder and Redis database 12
(``--redis-url``; flushed at start and end), measures fs_augment and its floor interleaved in one
process against one server (point-in-time joins, the memory check, imports and the served model
in fresh processes), prints a table with medians and ratios, and writes ``benchmarks/results.json``
and ``BENCHMARKS.md`` (or both into ``--out``).
"""
