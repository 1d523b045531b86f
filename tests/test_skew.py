"""``check_skew`` and ``fs-augment check --skew``: online/offline agreement on Redis, Redis Cluster, the local
store and BigQuery offline, with disagreements planted in the online store by hand (redis-py)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import redis
import yaml
from redis.cluster import RedisCluster as ClusterClient

from fs_augment.cli import main
from fs_augment.errors import ConfigError, FeatureNotFoundError
from fs_augment.keys import event_time_key, feature_key
from fs_augment.skew import SKEW_COLUMNS, check_skew, values_agree
from fs_augment.writer import materialize
from tests.support.redis_servers import RedisCluster
from tests.support.stores import BIGQUERY_PROJECT, flush_cluster, redis_host_and_db, write_parquet

USERS = [f"u{i}" for i in range(200)]
RECIPE = {"augmenter": {"features": [
    {"feature_namespace": "user_demographics", "features": ["age", "country_code"]},
    {"feature_namespace": "user_purchase_summary", "features": ["ltv"]},
]}}


def demographics() -> pd.DataFrame:
    """Two rows per user (the later one is the latest), so the comparison must pick the latest."""
    early = pd.DataFrame({"user_id": USERS, "event_timestamp": pd.Timestamp("2024-01-01", tz="UTC"),
                          "age": [1] * len(USERS), "country_code": ["XX"] * len(USERS)})
    late = pd.DataFrame({"user_id": USERS, "event_timestamp": pd.Timestamp("2024-03-01", tz="UTC"),
                         "age": [20 + i % 50 for i in range(len(USERS))],
                         "country_code": [("KR", "US", "DE")[i % 3] for i in range(len(USERS))]})
    return pd.concat([early, late], ignore_index=True)


def purchases() -> pd.DataFrame:
    return pd.DataFrame({"user_id": USERS, "event_timestamp": pd.Timestamp("2024-03-02", tz="UTC"),
                         "ltv": [1000 / 3 + i for i in range(len(USERS))]})


@pytest.fixture
def project(tmp_path: Path) -> dict[str, Path]:
    """An offline parquet folder with the two namespaces and the recipe that reads them."""
    features = tmp_path / "features"
    write_parquet(demographics(), features / "user_demographics.parquet")
    write_parquet(purchases(), features / "user_purchase_summary.parquet")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    return {"features": features, "recipe": recipe}


def environment(make_config_dir, project, **connection_info) -> Path:
    return make_config_dir(test={"feature_store": {
        "provider": "redis", "connection_timeout": 2000, "retry_attempts": 1,
        "connection_info": {**connection_info, "offline_store_uri": f"file://{project['features']}"}}})


@pytest.fixture
def redis_env(make_config_dir, redis_client: redis.Redis, project) -> Path:
    """Environment ``test``: the suite's Redis, materialized from the parquet folder."""
    host, db = redis_host_and_db(redis_client)
    config_dir = environment(make_config_dir, project, redis_host=host, redis_db=db, redis_mode="standalone")
    materialize(project["recipe"], env="test", config_dir=config_dir)
    return config_dir


def by_feature(table: pd.DataFrame) -> dict[str, dict]:
    return {row["feature"]: row for row in table.to_dict("records")}


def plant_ages(client, users: list[str]) -> None:
    """Overwrite the online age of ``users`` by hand, as another pipeline would (JSON numbers that differ)."""
    for user in users:
        client.set(feature_key("user_demographics", "age", user), "999")


# --- the planted disagreement -------------------------------------------------------------------------

def test_a_planted_ten_percent_disagreement_shows_in_that_feature_only(redis_client, redis_env, project):
    planted = USERS[::10]  # 20 of 200
    plant_ages(redis_client, planted)
    table = check_skew(project["recipe"], env="test", config_dir=redis_env)
    assert list(table.columns) == list(SKEW_COLUMNS)
    assert table["feature"].tolist() == ["user_demographics:age", "user_demographics:country_code",
                                         "user_purchase_summary:ltv"]
    rows = by_feature(table)
    age = rows["user_demographics:age"]
    assert (age["sampled"], age["compared"], age["mismatched"], age["missing_online"], age["lagging"]) == \
        (200, 200, 20, 0, 0)
    assert age["mismatch_rate"] == pytest.approx(0.1)
    assert len(age["examples"]) == 3 and set(age["examples"]) <= set(planted)
    for name in ("user_demographics:country_code", "user_purchase_summary:ltv"):
        assert rows[name]["mismatch_rate"] == 0.0 and rows[name]["compared"] == 200
        assert rows[name]["examples"] == []


def test_a_sample_is_seeded_and_estimates_the_rate(redis_client, redis_env, project):
    plant_ages(redis_client, USERS[::10])
    first = check_skew(project["recipe"], env="test", config_dir=redis_env, sample=100, seed=7)
    again = check_skew(project["recipe"], env="test", config_dir=redis_env, sample=100, seed=7)
    pd.testing.assert_frame_equal(first, again)
    age = by_feature(first)["user_demographics:age"]
    assert age["sampled"] == 100
    assert 0.03 <= age["mismatch_rate"] <= 0.2  # ~0.1 on a sample of half the entities
    assert by_feature(first)["user_demographics:country_code"]["mismatch_rate"] == 0.0


def test_an_older_online_event_time_counts_as_lagging_not_mismatched(redis_client, redis_env, project):
    for user in USERS[:5]:  # the online copy still holds the January row
        redis_client.set(feature_key("user_demographics", "age", user), "1")
        redis_client.set(event_time_key("user_demographics", user), '"2024-01-01T00:00:00Z"')
    redis_client.set(feature_key("user_demographics", "age", USERS[5]), "1")  # differs, and is not older
    redis_client.set(event_time_key("user_demographics", USERS[5]), '"2024-06-01T00:00:00Z"')
    age = by_feature(check_skew(project["recipe"], env="test", config_dir=redis_env))["user_demographics:age"]
    assert (age["lagging"], age["mismatched"], age["examples"]) == (5, 1, [USERS[5]])
    assert age["mismatch_rate"] == pytest.approx(1 / 200)


def test_text_online_for_a_number_offline_is_a_mismatch(redis_client, redis_env, project):
    offline_age = 20  # USERS[0]'s latest age
    redis_client.set(feature_key("user_demographics", "age", USERS[0]), f'"{offline_age}"')  # "20", JSON text
    redis_client.set(feature_key("user_demographics", "age", USERS[1]), "21.0000000000001")  # within 1e-9
    redis_client.set(feature_key("user_demographics", "country_code", USERS[2]), "DE")  # raw text, same value
    rows = by_feature(check_skew(project["recipe"], env="test", config_dir=redis_env))
    assert rows["user_demographics:age"]["mismatched"] == 1
    assert rows["user_demographics:age"]["examples"] == [USERS[0]]
    assert rows["user_demographics:country_code"]["mismatched"] == 0


def test_absent_online_keys_are_missing_online(redis_client, redis_env, project):
    redis_client.delete(*[feature_key("user_purchase_summary", "ltv", u) for u in USERS[:8]])
    ltv = by_feature(check_skew(project["recipe"], env="test", config_dir=redis_env))["user_purchase_summary:ltv"]
    assert (ltv["sampled"], ltv["compared"], ltv["missing_online"], ltv["mismatched"]) == (200, 192, 8, 0)


def test_an_empty_offline_table_gives_rows_with_nothing_compared(redis_client, make_config_dir, project, capsys):
    write_parquet(purchases().iloc[:0], project["features"] / "user_purchase_summary.parquet")
    host, db = redis_host_and_db(redis_client)
    config_dir = environment(make_config_dir, project, redis_host=host, redis_db=db, redis_mode="standalone")
    materialize(project["recipe"], env="test", config_dir=config_dir)
    rows = by_feature(check_skew(project["recipe"], env="test", config_dir=config_dir))
    ltv = rows["user_purchase_summary:ltv"]
    assert (ltv["sampled"], ltv["compared"], ltv["mismatched"]) == (0, 0, 0)
    assert math.isnan(ltv["mismatch_rate"])
    assert rows["user_demographics:age"]["mismatch_rate"] == 0.0
    code = main(["check", str(project["recipe"]), "--skew", "--env", "test", "--config-dir", str(config_dir)])
    err = capsys.readouterr().err
    assert code == 0
    assert "1 of 3 features had nothing to compare" in err


def test_bad_arguments_and_environments_get_clear_errors(make_config_dir, redis_client, project):
    with pytest.raises(ValueError, match="sample must be a positive integer, got 0"):
        check_skew(project["recipe"], sample=0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        check_skew(project["recipe"], seed=-1)
    host, db = redis_host_and_db(redis_client)
    no_offline = make_config_dir(test={"feature_store": {"provider": "redis", "connection_info": {
        "redis_host": host, "redis_db": db, "redis_mode": "standalone"}}})
    with pytest.raises(ConfigError, match=r"'test' has no offline store.*offline_store_uri"):
        check_skew(project["recipe"], env="test", config_dir=no_offline)


def test_a_namespace_the_offline_store_lacks_is_named(redis_env, tmp_path):
    recipe = {"augmenter": {"features": [{"feature_namespace": "user_nothing", "features": ["x"]}]}}
    with pytest.raises(FeatureNotFoundError, match="user_nothing"):
        check_skew(recipe, env="test", config_dir=redis_env)


def test_values_agree_by_decoded_kind():
    assert values_agree(pd.NA, None) and values_agree(float("nan"), None)
    assert values_agree(pd.Timestamp("2024-01-01", tz="UTC"), "2024-01-01T00:00:00")
    assert not values_agree(pd.Timestamp("2024-01-01", tz="UTC"), "not a time")
    assert not values_agree(1.0, 1.0 + 1e-8) and values_agree(1e12, 1e12 + 1e2)
    assert not values_agree(True, "true") and values_agree(True, True)
    assert not values_agree("KR", None)


# --- the command line ---------------------------------------------------------------------------------

def test_cli_check_skew_prints_the_table_and_fails_beyond_max_skew(redis_client, redis_env, project, capsys):
    plant_ages(redis_client, USERS[::10])
    argv = ["check", str(project["recipe"]), "--skew", "--env", "test", "--config-dir", str(redis_env)]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 1
    assert "mismatch rate" in captured.out and "user_demographics:age" in captured.out
    age_line = next(line for line in captured.out.splitlines() if line.startswith("user_demographics:age"))
    assert "0.1000" in age_line
    assert "1 of 3 features disagree" in captured.err and "user_demographics:age" in captured.err
    assert main([*argv, "--max-skew", "0.2", "--sample", "50"]) == 0
    assert "all 3 features agree within a mismatch rate of 0.2" in capsys.readouterr().out
    assert main([*argv, "--max-skew", "2"]) == 2  # a rate is between 0 and 1


# --- the other stores ---------------------------------------------------------------------------------

def test_the_local_store_agrees_with_itself(make_config_dir, project):
    config_dir = make_config_dir(test={"feature_store": {"provider": "local", "connection_info": {
        "offline_store_uri": f"file://{project['features']}"}}})
    table = check_skew(project["recipe"], env="test", config_dir=config_dir)
    assert table["mismatch_rate"].tolist() == [0.0, 0.0, 0.0]
    assert table["compared"].tolist() == [200, 200, 200]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    with RedisCluster.start(tmp_path_factory.mktemp("skew-cluster"), masters=3) as started:
        yield started


@pytest.mark.cluster
def test_a_planted_disagreement_on_a_redis_cluster(cluster, make_config_dir, project):
    client = ClusterClient(host="127.0.0.1", port=cluster.nodes[0].port)
    try:
        flush_cluster(client)
        config_dir = environment(make_config_dir, project, redis_host=f"127.0.0.1:{cluster.nodes[0].port}",
                                 redis_mode="cluster")
        materialize(project["recipe"], env="test", config_dir=config_dir)
        plant_ages(client, USERS[::10])
        rows = by_feature(check_skew(project["recipe"], env="test", config_dir=config_dir))
    finally:
        flush_cluster(client)
        client.close()
    assert rows["user_demographics:age"]["mismatch_rate"] == pytest.approx(0.1)
    assert rows["user_demographics:country_code"]["mismatch_rate"] == 0.0
    assert rows["user_purchase_summary:ltv"]["mismatch_rate"] == 0.0


@pytest.fixture(scope="module")
def emulator():
    from tests.support.bqemulator import BigQueryEmulator

    with BigQueryEmulator.start(BIGQUERY_PROJECT) as running:
        yield running


@pytest.mark.bigquery
def test_a_planted_disagreement_against_the_bigquery_offline_store(emulator, make_config_dir, redis_client, project):
    from tests.support.stores import new_bigquery_store

    offline = new_bigquery_store(emulator)
    try:
        offline.write_table(demographics(), "user_demographics")
        offline.write_table(purchases(), "user_purchase_summary")
        host, db = redis_host_and_db(redis_client)
        config_dir = make_config_dir(test={"feature_store": {
            "provider": "redis", "connection_timeout": 5000, "retry_attempts": 1,
            "connection_info": {"redis_host": host, "redis_db": db, "redis_mode": "standalone",
                                "offline_store_uri": f"bq://{BIGQUERY_PROJECT}.{offline.dataset}",
                                "bigquery_api_endpoint": emulator.endpoint}}})
        materialize(project["recipe"], env="test", config_dir=config_dir)
        plant_ages(redis_client, USERS[::10])
        redis_client.set(feature_key("user_demographics", "country_code", USERS[1]), "34")  # a number for text
        rows = by_feature(check_skew(project["recipe"], env="test", config_dir=config_dir, sample=500))
    finally:
        offline.close()
    assert rows["user_demographics:age"]["mismatch_rate"] == pytest.approx(0.1)
    assert rows["user_demographics:country_code"]["examples"] == [USERS[1]]
    assert rows["user_purchase_summary:ltv"]["mismatch_rate"] == 0.0
