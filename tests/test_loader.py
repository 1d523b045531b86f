"""Loader SQL: DuckDB over a data-lake folder, BigQuery over the emulator, and the recipe's loader section."""

from __future__ import annotations

import io
import sys

import pandas as pd
import pytest

from fs_augment.config import Config, ConnectionInfo, FeatureStoreConfig, load_config
from fs_augment.errors import ConfigError, MissingDependencyError, RecipeError, SpineError, StoreError
from fs_augment.loader import data_lake_tables, load_spine, load_spine_for_recipe
from fs_augment.recipe import load_recipe

FEATURES = [{"feature_namespace": "user_demographics", "features": ["age"]}]


@pytest.fixture
def lake(tmp_path):
    """A data lake folder: a parquet file, a CSV file and a folder of parquet parts."""
    folder = tmp_path / "lake"
    folder.mkdir()
    pd.DataFrame({
        "user_id": ["u1", "u2", "u3"],
        "product_id": ["p1", "p2", "p1"],
        "event_timestamp": pd.to_datetime(["2024-01-01 10:00", "2024-01-02 00:00", "2024-01-03 00:00"])
        .tz_localize("Asia/Seoul"),
        "bought": [1, 0, 1],
    }).to_parquet(folder / "orders.parquet", index=False)
    pd.DataFrame({"user_id": ["u1", "u2", "u3"], "internal": [False, False, True]}).to_csv(
        folder / "users.csv", index=False)
    (folder / "clicks").mkdir()
    pd.DataFrame({"user_id": ["u1"]}).to_parquet(folder / "clicks" / "part-0.parquet", index=False)
    pd.DataFrame({"user_id": ["u2"]}).to_parquet(folder / "clicks" / "part-1.parquet", index=False)
    (folder / "notes.txt").write_text("not a table")
    return folder


def config_for(uri: str | None, env: str = "test", config_dir: str = "config", **info) -> Config:
    return Config(env, config_dir, FeatureStoreConfig(connection_info=ConnectionInfo(**info)), uri)


def test_files_are_tables_named_after_their_stems(lake):
    assert data_lake_tables(f"file://{lake}") == ["clicks", "orders", "users"]
    spine = load_spine(
        "SELECT o.user_id, o.bought, (SELECT count(*) FROM clicks c WHERE c.user_id = o.user_id) AS clicks "
        "FROM orders o JOIN users u USING (user_id) WHERE NOT u.internal ORDER BY o.user_id",
        f"file://{lake}",
    )
    assert spine.to_dict("list") == {"user_id": ["u1", "u2"], "bought": [1, 0], "clicks": [1, 1]}


def test_times_come_back_in_utc(lake):
    spine = load_spine("SELECT event_timestamp FROM orders ORDER BY user_id", f"file://{lake}")
    assert str(spine["event_timestamp"].dt.tz) == "UTC"
    assert spine["event_timestamp"].iloc[0] == pd.Timestamp("2024-01-01 01:00", tz="UTC")


@pytest.mark.parametrize("unit", ["ns", "us", "ms"])
def test_zoned_times_come_back_in_utc_at_every_resolution(tmp_path, unit):
    """pandas 2 writes nanosecond times, which DuckDB reads as TIMESTAMPTZ_NS and hands over without the zone."""
    times = pd.Series(pd.to_datetime(["2024-01-01 10:00", None]).tz_localize("Asia/Seoul")).astype(
        f"datetime64[{unit}, Asia/Seoul]")
    pd.DataFrame({"user_id": ["u1", "u2"], "ts": times, "naive": times.dt.tz_localize(None)}).to_parquet(
        tmp_path / "orders.parquet", index=False)
    spine = load_spine("SELECT ts, naive, ts AS again FROM orders ORDER BY user_id", f"file://{tmp_path}")
    assert [str(spine[c].dt.tz) for c in ("ts", "naive", "again")] == ["UTC", "None", "UTC"]
    assert spine["ts"].iloc[0] == pd.Timestamp("2024-01-01 01:00", tz="UTC")
    assert spine["ts"].isna().tolist() == [False, True]
    assert spine["naive"].iloc[0] == pd.Timestamp("2024-01-01 10:00")


def test_relative_folder_is_resolved_from_the_project_root_with_a_config(make_config_dir, tmp_path, monkeypatch):
    config_dir = make_config_dir(local={"data_lake": {"uri": "file://./lake"}})
    folder = config_dir.parent / "lake"
    folder.mkdir()
    pd.DataFrame({"user_id": ["u9"]}).to_parquet(folder / "users.parquet")
    monkeypatch.chdir(tmp_path)  # not the project root
    config = load_config("local", config_dir)
    assert load_spine("SELECT * FROM users", config.data_lake_uri, config=config)["user_id"].tolist() == ["u9"]


def test_relative_folder_without_a_config_is_resolved_from_the_working_directory(lake, monkeypatch):
    monkeypatch.chdir(lake.parent)
    assert len(load_spine("SELECT * FROM orders", "file://lake")) == 3


def test_missing_folder_is_a_config_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=r"data lake file://.*nowhere.*does not exist"):
        load_spine("SELECT 1", f"file://{tmp_path}/nowhere")


@pytest.mark.parametrize("sql", ["SELECT * FROM order", "SELEC user_id FROM orders", "SELECT nope FROM orders"])
def test_sql_errors_name_the_uri_and_the_tables(lake, sql):
    with pytest.raises(StoreError) as info:
        load_spine(sql, f"file://{lake}")
    message = str(info.value)
    assert f"file://{lake}" in message
    assert "tables: clicks, orders, users" in message
    assert "\n" not in message


def test_two_files_with_one_stem_are_refused(lake):
    pd.DataFrame({"user_id": ["u1"]}).to_csv(lake / "orders.csv", index=False)
    with pytest.raises(ConfigError, match=r"orders.csv and orders.parquet would both be table 'orders'"):
        load_spine("SELECT * FROM orders", f"file://{lake}")


@pytest.mark.parametrize("uri", ["s3://bucket/lake", "/plain/path", "bq://no-dataset"])
def test_unsupported_uris_are_config_errors(uri):
    with pytest.raises(ConfigError, match="data lake"):
        load_spine("SELECT 1", uri)


def test_missing_bigquery_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.cloud.bigquery", None)
    with pytest.raises(MissingDependencyError, match=r"fs_augment\[bigquery\]"):
        load_spine("SELECT 1", "bq://project.dataset")


# --- the recipe's loader section --------------------------------------------------------

def recipe_with(loader: dict | None, timestamp: str | None = None):
    augmenter = {"type": "feature_store", "features": FEATURES}
    if timestamp:
        augmenter["timestamp_column"] = timestamp
    data = {"augmenter": augmenter}
    if loader is not None:
        data["loader"] = loader
    return load_recipe(data)


def test_recipe_spine_and_target(lake):
    recipe = recipe_with({"sql": "SELECT * FROM orders ORDER BY user_id", "entity_columns": ["user_id"],
                          "timestamp_column": "event_timestamp", "target_column": "bought"}, "event_timestamp")
    X, y = load_spine_for_recipe(recipe, config_for(f"file://{lake}"))
    assert list(X.columns) == ["user_id", "product_id", "event_timestamp"]
    assert y.name == "bought" and y.tolist() == [1, 0, 1]


def test_recipe_loader_uri_overrides_the_environment(lake, tmp_path):
    recipe = recipe_with({"sql": "SELECT user_id FROM users", "uri": f"file://{lake}"})
    X, y = load_spine_for_recipe(recipe, config_for(f"file://{tmp_path}/elsewhere"))
    assert len(X) == 3 and y is None


def test_sql_file_beside_the_recipe(lake, tmp_path):
    (tmp_path / "spine.sql").write_text("SELECT user_id, bought FROM orders")
    (tmp_path / "recipe.yaml").write_text(
        "augmenter:\n  features:\n    - feature_namespace: user_demographics\n      features: [age]\n"
        "loader:\n  sql_file: spine.sql\n  target_column: bought\n")
    X, y = load_spine_for_recipe(load_recipe(tmp_path / "recipe.yaml"), config_for(f"file://{lake}"))
    assert list(X.columns) == ["user_id"] and y.sum() == 2


def test_recipe_without_loader_is_a_recipe_error(lake):
    with pytest.raises(RecipeError, match="no loader section"):
        load_spine_for_recipe(recipe_with(None), config_for(f"file://{lake}"))


def test_environment_without_data_lake_is_a_config_error():
    with pytest.raises(ConfigError, match=r"environment 'test'.*data_lake.uri"):
        load_spine_for_recipe(recipe_with({"sql": "SELECT 1"}), config_for(None))


@pytest.mark.parametrize(("loader", "timestamp", "pattern"), [
    ({"sql": "SELECT user_id FROM orders", "target_column": "label"}, None, r"loader.target_column 'label'"),
    ({"sql": "SELECT user_id FROM orders", "entity_columns": ["uid"]}, None, r"loader.entity_columns 'uid'"),
    ({"sql": "SELECT product_id FROM orders"}, None, r"need column\(s\) user_id"),
    ({"sql": "SELECT user_id FROM orders"}, "event_timestamp", r"need column\(s\) event_timestamp"),
])
def test_columns_the_recipe_needs_must_be_in_the_result(lake, loader, timestamp, pattern):
    with pytest.raises(SpineError, match=pattern) as info:
        load_spine_for_recipe(recipe_with(loader, timestamp), config_for(f"file://{lake}"))
    assert "its columns are:" in str(info.value)


# --- BigQuery -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bigquery_lake():
    """A BigQuery emulator with dataset ``lake`` holding table ``orders``."""
    from google.cloud import bigquery

    from tests.support.bqemulator import BigQueryEmulator

    with BigQueryEmulator.start("test-project") as emulator:
        client = emulator.client()
        client.create_dataset("lake")
        frame = pd.DataFrame({"user_id": ["u1", "u2"], "bought": [1, 0],
                              "ts": pd.to_datetime(["2024-01-01", "2024-02-01"], utc=True)})
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        buffer.seek(0)
        schema = [bigquery.SchemaField("user_id", "STRING"), bigquery.SchemaField("bought", "INT64"),
                  bigquery.SchemaField("ts", "TIMESTAMP")]
        client.load_table_from_file(buffer, "test-project.lake.orders", job_config=bigquery.LoadJobConfig(
            source_format="PARQUET", schema=schema)).result()
        client.close()
        yield config_for("bq://test-project.lake", bigquery_api_endpoint=emulator.endpoint)


@pytest.mark.bigquery
def test_bigquery_runs_unqualified_table_names_in_the_dataset(bigquery_lake):
    spine = load_spine("SELECT user_id, bought, ts FROM orders ORDER BY user_id", bigquery_lake.data_lake_uri,
                       config=bigquery_lake)
    assert spine["user_id"].tolist() == ["u1", "u2"]
    assert spine["bought"].tolist() == [1, 0]
    assert spine["ts"].iloc[1] == pd.Timestamp("2024-02-01", tz="UTC")


@pytest.mark.bigquery
def test_bigquery_sql_errors_name_the_uri_and_the_tables(bigquery_lake):
    with pytest.raises(StoreError) as info:
        load_spine("SELECT * FROM missing_table", bigquery_lake.data_lake_uri, config=bigquery_lake)
    assert "bq://test-project.lake (tables: orders)" in str(info.value)
    assert "missing_table" in str(info.value)
