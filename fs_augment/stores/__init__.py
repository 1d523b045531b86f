"""The store backends, each one module behind the interfaces of :mod:`fs_augment.stores.base`.

* :mod:`~fs_augment.stores.redis` — Redis and Redis Cluster (online);
* :mod:`~fs_augment.stores.local` — the embedded store: latest values from a
  parquet folder, in process (online);
* :mod:`~fs_augment.stores.offline` — a parquet folder, joined point in time
  with DuckDB (offline);
* :mod:`~fs_augment.stores.bigquery` — a BigQuery dataset, joined inside
  BigQuery (offline).

Which backend an environment uses is looked up in :mod:`fs_augment.backends`;
:func:`fs_augment.connect` (in :mod:`fs_augment.connections`) opens them. The
modules here know nothing above them: no adapter, no monitoring, no
connections, and this package imports none of its modules, so importing one
backend imports no other.
"""
