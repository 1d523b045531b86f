"""Spines that stay in BigQuery: Loader SQL joined point in time in one query, on the emulator.

The demo project's data lake and feature store are loaded into two datasets of the
emulator. A :class:`~fs_augment.SpineQuery` (and ``fs-augment train``) must give what
loading the spine and looking it up as a DataFrame gives, while the client's HTTP
transport shows no upload, no load job, no ``insertAll`` and no scratch table, and the
emulator's job list shows one query job for the join.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
import requests
import yaml
from threadpoolctl import threadpool_limits

import fs_augment
from fs_augment.augmenter import FeatureStoreAugmenter
from fs_augment.cli import main
from fs_augment.connections import close_all
from fs_augment.demo import write_demo_data
from fs_augment.errors import SpineError
from fs_augment.loader import load_spine
from fs_augment.recipe import load_recipe
from fs_augment.stores.bigquery import SCRATCH_PREFIX, BigQueryOfflineStore
from fs_augment.stores.bigquery_sql import TableSQL, spine_query_sql
from tests.support.bqemulator import BigQueryEmulator
from tests.support.stores import BIGQUERY_PROJECT, redis_host_and_db

pytestmark = pytest.mark.bigquery

NAMESPACES = ("user_demographics", "user_purchase_summary", "product_details")


@dataclass
class Project:
    """The demo project with its data lake and features in BigQuery (environment ``bq``)."""

    config_dir: Path
    recipe: Path
    sql: str
    lake_uri: str
    feature_dataset: str


@pytest.fixture(scope="module")
def bq_project(emulator: BigQueryEmulator, tmp_path_factory: pytest.TempPathFactory,
               request: pytest.FixtureRequest) -> Project:
    root = tmp_path_factory.mktemp("bqspine")
    demo = write_demo_data(root, users=60, products=12, rows=300)
    suffix = uuid.uuid4().hex[:8]
    features = BigQueryOfflineStore(BIGQUERY_PROJECT, f"features_{suffix}", api_endpoint=emulator.endpoint)
    lake = BigQueryOfflineStore(BIGQUERY_PROJECT, f"lake_{suffix}", api_endpoint=emulator.endpoint)
    for namespace in NAMESPACES:
        features.write_table(pd.read_parquet(demo.features / f"{namespace}.parquet"), namespace)
    lake.write_table(pd.read_parquet(demo.data_lake / "product_views.parquet"), "product_views")
    lake.write_table(pd.read_csv(demo.data_lake / "users.csv"), "users")
    features.close()
    lake.close()

    client = redis.Redis.from_url(request.config.getoption("--redis-url"))
    host, db = redis_host_and_db(client)
    client.close()
    lake_uri = f"bq://{BIGQUERY_PROJECT}.lake_{suffix}"
    config_dir = root / "bq-config"
    config_dir.mkdir()
    (config_dir / "bq.yaml").write_text(yaml.safe_dump({
        "feature_store": {
            "provider": "redis", "connection_timeout": 30000, "retry_attempts": 1,
            "connection_info": {"redis_host": host, "redis_db": db, "redis_mode": "standalone",
                                "offline_store_uri": f"bq://{BIGQUERY_PROJECT}.features_{suffix}",
                                "bigquery_api_endpoint": emulator.endpoint}},
        "data_lake": {"uri": lake_uri},
    }))
    recipe = load_recipe(demo.recipe)
    assert recipe.loader is not None
    return Project(config_dir, demo.recipe, recipe.loader.sql, lake_uri, f"features_{suffix}")


@pytest.fixture
def adapter(bq_project: Project) -> Iterator[fs_augment.FeatureStoreAdapter]:
    with fs_augment.connect("bq", bq_project.config_dir) as opened, fs_augment.use(opened):
        yield opened


class Requests:
    """Every HTTP request the Google clients of this process send (method and URL), recorded at the transport."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[tuple[str, str]] = []
        send = requests.Session.send

        def recording(session: requests.Session, prepared: requests.PreparedRequest, **kwargs: Any) -> Any:
            self.seen.append((prepared.method or "", prepared.url or ""))
            return send(session, prepared, **kwargs)

        monkeypatch.setattr(requests.Session, "send", recording)

    def uploads(self) -> list[str]:
        """Load-job uploads, streaming inserts and table creations (a scratch spine needs one of them)."""
        return [url for method, url in self.seen
                if "/upload/" in url or "insertAll" in url or (method == "POST" and re.search(r"/tables\b", url))]

    def job_posts(self) -> int:
        return sum(1 for method, url in self.seen if method == "POST" and re.search(r"/jobs\b", url))


def new_jobs(emulator: BigQueryEmulator, before: set[str]) -> list[str]:
    """The emulator's jobs not in ``before``, by kind: ``load``, ``dry run``, ``spine join`` (Loader SQL
    joined in place), ``spine parameter`` (a spine passed as a query parameter) or ``query``."""
    client = emulator.client()
    try:
        jobs = [job for job in client.list_jobs() if job.job_id not in before]
    finally:
        client.close()
    kinds = []
    for job in jobs:
        text = getattr(job, "query", "") or ""
        if job.job_type != "query":
            kinds.append(job.job_type)
        elif getattr(job, "dry_run", False):
            kinds.append("dry run")
        elif text.startswith("WITH loaded AS"):
            kinds.append("spine join")
        else:
            kinds.append("spine parameter" if "UNNEST(@spine)" in text else "query")
    return sorted(kinds)


def job_ids(emulator: BigQueryEmulator) -> set[str]:
    client = emulator.client()
    try:
        return {job.job_id for job in client.list_jobs()}
    finally:
        client.close()


# --- the SQL text --------------------------------------------------------------------------------

def test_spine_query_sql_wraps_the_loader_sql_and_returns_its_columns() -> None:
    users = TableSQL("`p.f.user_demographics`", "t.`user_id`", "t.`event_timestamp`", ("age",), ("age",),
                     max_age=True, created="t.`created_timestamp`")
    products = TableSQL("`p.f.product_details`", "CAST(t.`product_id` AS STRING)", None, ("price",),
                        spine_entity="e1")
    sql = spine_query_sql((users, products), "SELECT user_id, product_id, ts FROM views;\n",
                          {"e0": "l.`user_id`", "e1": "CAST(l.`product_id` AS STRING)"}, "TIMESTAMP(l.`ts`)")
    # each row keyed by its entities and time (a value: the same in every evaluation of the CTE)
    key = "TO_JSON_STRING(STRUCT(l.`user_id` AS e0, CAST(l.`product_id` AS STRING) AS e1, TIMESTAMP(l.`ts`) AS ts))"
    assert sql.startswith(f"WITH loaded AS (SELECT l.*, {key} AS _fs_augment_key, ROW_NUMBER() OVER () AS "
                          "_fs_augment_row FROM (\nSELECT user_id, product_id, ts FROM views\n) AS l),\n")  # ; dropped
    assert ("spine AS (SELECT DISTINCT l._fs_augment_key AS row_id, l.`user_id` AS e0, CAST(l.`product_id` AS STRING) "
            "AS e1, TIMESTAMP(l.`ts`) AS ts, 0 AS ts_rem FROM loaded AS l)") in sql
    # the groups are point_in_time_sql's: inclusive times, created_timestamp, max_age parameters, ties
    assert "t.`event_timestamp` <= s.ts" in sql and "t.`created_timestamp` <= s.ts" in sql
    assert "@max_age_us_0 - IF(s.ts_rem > @max_age_rem_0, 1, 0)" in sql
    assert "ORDER BY t.`event_timestamp` DESC, t.`age` DESC NULLS LAST" in sql
    assert "found AS (SELECT row_id, g0.c0 AS g0_c0, g1.c0 AS g1_c0 FROM g0 FULL OUTER JOIN g1 USING (row_id))" in sql
    assert sql.endswith(
        "SELECT l.* EXCEPT (_fs_augment_key, _fs_augment_row), found.g0_c0 AS _fs_augment_g0_c0, "
        "found.g1_c0 AS _fs_augment_g1_c0\n"
        "FROM loaded AS l LEFT JOIN found ON found.row_id = l._fs_augment_key\n"
        "ORDER BY l._fs_augment_row")
    assert "UNNEST" not in sql and "@spine" not in sql and SCRATCH_PREFIX not in sql


# --- the augmenter -------------------------------------------------------------------------------------

def test_a_spine_query_equals_the_loaded_spine_and_nothing_is_uploaded(
    bq_project: Project, adapter: fs_augment.FeatureStoreAdapter, emulator: BigQueryEmulator,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    recipe = load_recipe(bq_project.recipe)
    config = fs_augment.load_config("bq", bq_project.config_dir)
    spine = load_spine(bq_project.sql, bq_project.lake_uri, config=config)
    sent = Requests(monkeypatch)
    before = job_ids(emulator)
    monkeypatch.setattr(adapter.offline, "array_max_rows", 0)  # today's path: the spine uploaded as a table
    loaded = FeatureStoreAugmenter(recipe)
    expected = loaded.fit_transform(spine)
    expected_again = loaded.transform(spine)
    assert sent.uploads() and "load" in new_jobs(emulator, before)  # what the observation sees of an upload

    before = job_ids(emulator)
    sent.seen.clear()
    queried = FeatureStoreAugmenter(recipe)
    with caplog.at_level("DEBUG", logger="fs_augment"):
        got = queried.fit_transform(fs_augment.SpineQuery(bq_project.sql))
    assert sent.uploads() == []
    assert sent.job_posts() == 2  # the dry run reading the query's columns, and the join
    assert new_jobs(emulator, before) == ["dry run", "spine join"]  # no load job, no other query
    assert any("WITH loaded AS" in r.getMessage() and bq_project.sql.strip() in r.getMessage()
               for r in caplog.records)

    pd.testing.assert_frame_equal(got, expected)
    assert got["purchased"].notna().all() and got["user_demographics__age"].notna().any()
    for fitted in ("feature_names_in_", "feature_dtypes_", "feature_kinds_", "missing_rate_", "input_kinds_"):
        assert repr(getattr(queried, fitted)) == repr(getattr(loaded, fitted)), fitted
    assert queried.feature_stats_ == loaded.feature_stats_

    again = queried.transform(fs_augment.SpineQuery(bq_project.sql, uri=bq_project.lake_uri))
    pd.testing.assert_frame_equal(again, expected_again)
    assert sent.uploads() == []


def test_a_spine_query_without_point_in_time_loads_the_rows(
    bq_project: Project, adapter: fs_augment.FeatureStoreAdapter, redis_client: redis.Redis,
) -> None:
    recipe = {"augmenter": {"features": [{"namespace": "user_demographics", "features": ["age"]}]}}
    redis_client.set("user_demographics:age:user1", "33")
    sql = "SELECT user_id FROM users WHERE user_id IN ('user1', 'user2') ORDER BY user_id"
    out = FeatureStoreAugmenter(recipe).fit_transform(fs_augment.SpineQuery(sql))
    assert out["user_id"].tolist() == ["user1", "user2"]
    assert out["user_demographics__age"].tolist()[0] == 33 and pd.isna(out["user_demographics__age"].iloc[1])


def test_a_spine_query_missing_the_entity_column_names_it(
    bq_project: Project, adapter: fs_augment.FeatureStoreAdapter,
) -> None:
    query = fs_augment.SpineQuery("SELECT user_id, event_timestamp FROM product_views")
    with pytest.raises(SpineError, match=r"column 'product_id' is not in the result of the Loader SQL on data "
                                         r"lake bq://.*; its columns are: user_id, event_timestamp"):
        FeatureStoreAugmenter(load_recipe(bq_project.recipe)).fit(query)


@pytest.mark.parametrize("bad", ["", None])
def test_a_spine_query_needs_sql(bad: Any) -> None:
    with pytest.raises(SpineError, match="non-empty query"):
        fs_augment.SpineQuery(bad)


def test_the_join_in_place_keeps_ties_max_age_created_timestamp_and_missing_keys(
    bq_project: Project, adapter: fs_augment.FeatureStoreAdapter, emulator: BigQueryEmulator,
) -> None:
    t0 = pd.Timestamp("2024-05-01", tz="UTC")
    s = pd.Timedelta(seconds=1)
    features = BigQueryOfflineStore(BIGQUERY_PROJECT, bq_project.feature_dataset, api_endpoint=emulator.endpoint)
    features.write_table(pd.DataFrame({  # u1: a tie at 10 s, a backfill created at 50 s; u2: one old row
        "user_id": ["u1", "u1", "u1", "u2"],
        "event_timestamp": [t0 + 10 * s, t0 + 10 * s, t0 + 20 * s, t0],
        "created_timestamp": [None, None, t0 + 50 * s, None],
        "score": [1.5, 2.5, 9.0, 4.0],
        "tier": ["a", "b", "z", "c"],
    }), "user_scores")
    features.write_table(pd.DataFrame({
        "shop_id": [7, 7], "event_timestamp": [t0, t0 + 30 * s], "rating": [3, 4]}), "shop_ratings")
    features.close()
    lake = BigQueryOfflineStore(BIGQUERY_PROJECT, bq_project.lake_uri.rpartition(".")[2],
                                api_endpoint=emulator.endpoint)
    lake.write_table(pd.DataFrame({
        "visit": list(range(9)),  # visit 8 has visit 0's keys and time: one key, one answer, both rows
        "user_id": ["u1", "u1", "u1", "u2", "u2", None, "u9", "u1", "u1"],
        "shop_id": [7, 7, None, 7, 7, 7, 7, 7, 7],
        # DATETIME: naive times, read as UTC on both paths
        "at": pd.to_datetime([t0 + 10 * s, t0 + 40 * s, t0 + 60 * s, t0 + 5 * s, t0 + 6 * s, t0 + 60 * s,
                              t0 + 60 * s, None, t0 + 10 * s]).tz_convert(None),
    }), "visits")
    lake.close()
    recipe = {"augmenter": {"timestamp_column": "at", "features": [
        {"namespace": "user_scores", "features": ["score", "tier"]},
        {"namespace": "shop_ratings", "features": ["rating"], "entity_column": "shop_id", "max_age": "10s"}]}}
    sql = "SELECT visit, user_id, shop_id, `at` FROM visits ORDER BY visit"
    config = fs_augment.load_config("bq", bq_project.config_dir)
    spine = load_spine(sql, bq_project.lake_uri, config=config)
    expected = FeatureStoreAugmenter(recipe).fit_transform(spine)
    got = FeatureStoreAugmenter(recipe).fit_transform(fs_augment.SpineQuery(sql))
    pd.testing.assert_frame_equal(got, expected)
    # the tie at 10 s takes the greatest values; the row of 20 s counts once created (50 s)
    assert got["user_scores__score"].tolist()[:5] == [2.5, 2.5, 9.0, 4.0, 4.0]
    assert got["user_scores__tier"].tolist()[:3] == ["b", "b", "z"]
    assert got["user_scores__score"].iloc[5:8].isna().all()  # no entity, an unknown entity, no time
    assert got.iloc[8, 4:].tolist() == got.iloc[0, 4:].tolist() and got["visit"].tolist() == list(range(9))
    # max_age 10 s: exactly 10 s old still counts, 30 s old does not
    assert got["shop_ratings__rating"].tolist()[:2] == [3.0, 4.0] \
        and got["shop_ratings__rating"].iloc[3:5].tolist() == [3.0, 3.0]
    assert got["shop_ratings__rating"].iloc[[2, 5, 6, 7]].isna().all()
    # as_of before the backfill was created: the join in place never uses its row, as the loaded spine's
    as_of = t0 + 40 * s
    expected = FeatureStoreAugmenter(recipe, as_of=as_of).fit_transform(spine)
    got = FeatureStoreAugmenter(recipe, as_of=as_of).fit_transform(fs_augment.SpineQuery(sql))
    pd.testing.assert_frame_equal(got, expected)
    assert got["user_scores__score"].tolist()[:3] == [2.5, 2.5, 2.5]

# --- fs-augment train ----------------------------------------------------------------------------

def train(capsys: pytest.CaptureFixture[str], project: Project, tracking: str, *extra: str) -> tuple[str, str]:
    close_all()
    with threadpool_limits(1):
        code = main(["train", str(project.recipe), "--env", "bq", "--config-dir", str(project.config_dir),
                     "--tracking-uri", tracking, "--no-progress", *extra])
    out, err = capsys.readouterr()
    close_all()
    assert code == 0, err
    return out, err


def metrics_of(out: str) -> dict[str, str]:
    return dict(re.findall(r"^\s*(accuracy|log_loss|roc_auc)\s+(\S+)$", out, re.M))


@pytest.mark.mlflow
@pytest.mark.slow
def test_train_joins_the_loader_sql_in_bigquery_with_the_same_metrics(
    bq_project: Project, emulator: BigQueryEmulator, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, tmp_path: Path,
) -> None:
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with monkeypatch.context() as today:  # the spine loaded, then sent back for each lookup
        today.setattr(BigQueryOfflineStore, "joins_queries_of", lambda self, uri: False)
        expected = metrics_of(train(capsys, bq_project, tracking)[0])
    assert set(expected) == {"accuracy", "log_loss", "roc_auc"}

    before = job_ids(emulator)
    sent = Requests(monkeypatch)
    caplog.clear()
    out, _ = train(capsys, bq_project, tracking, "--debug")
    assert metrics_of(out) == expected
    assert sent.uploads() == []
    jobs = new_jobs(emulator, before)
    # the training spine joined once, in place; logging the model predicts its 5-row input example
    assert [j for j in jobs if j != "spine parameter"] == ["dry run", "spine join"], jobs
    # --debug logs the SQL at DEBUG (to stderr, through logging.basicConfig, outside pytest's capture)
    logged = [r.getMessage() for r in caplog.records if r.name == "fs_augment.stores.bigquery"]
    joins = [m for m in logged if m.startswith("point-in-time join with the Loader SQL")]
    assert len(joins) == 1 and "WITH loaded AS" in joins[0]
    assert "FROM product_views AS v" in joins[0]  # the Loader SQL, inside the join

