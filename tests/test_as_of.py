"""``as_of``: training lookups that read the offline store as it was, so a training set can be rebuilt.

The augmenter stores ``as_of`` unchanged and reads it at fit (``as_of_``); batch lookups then ignore
the feature rows created after it, with a timestamp column (point in time) and without one (each
entity's latest row created by then, from the offline store); online lookups do not apply it.
``fs-augment train`` fixes it to the moment the job starts and logs it, and a frame rebuilt with the
logged value after rows were appended and backfilled is identical to the training frame.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sklearn.base import clone

from fs_augment import FeatureStoreAugmenter
from fs_augment.connections import close_all
from fs_augment.errors import ParameterError, StoreError
from tests.support.stores import redis_host_and_db

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2024-01-01", tz="UTC")
RECIPE = {"augmenter": {"features": [{"feature_namespace": "user_demographics", "features": ["age"]}]}}
TIMED = {"augmenter": {"timestamp_column": "ts", "features": RECIPE["augmenter"]["features"]}}


@pytest.fixture(autouse=True)
def _fresh_adapters():
    close_all()
    yield
    close_all()


@pytest.fixture
def local_store(make_config_dir, tmp_path) -> tuple[Path, Path]:
    """Environment ``local`` (the embedded store) over a parquet folder with a backfilled row."""
    features = tmp_path / "features"
    features.mkdir()
    pd.DataFrame({
        "user_id": ["u1", "u1", "u1", "u2"],
        "event_timestamp": [T0, T0 + 10 * DAY, T0 + 5 * DAY, T0],
        # u1's day-5 row is a backfill written on day 20; u2's row became known on day 30
        "created_timestamp": [pd.NaT, T0 + 10 * DAY, T0 + 20 * DAY, T0 + 30 * DAY],
        "age": [30, 31, 99, 40],
    }).to_parquet(features / "user_demographics.parquet", index=False)
    config_dir = make_config_dir(local={"feature_store": {
        "provider": "local", "connection_info": {"offline_store_uri": f"file://{features}"}}})
    return config_dir, features


def augmenter(config_dir: Path, recipe: dict = RECIPE, **params) -> FeatureStoreAugmenter:
    return FeatureStoreAugmenter(recipe, env="local", config_dir=str(config_dir), **params)


def ages(frame: pd.DataFrame) -> list:
    return [None if pd.isna(v) else int(v) for v in frame["user_demographics__age"]]


def test_as_of_is_stored_unchanged_and_read_at_fit(local_store) -> None:
    config_dir, _ = local_store
    given = dt.datetime(2024, 1, 15, 9, 0)  # naive: UTC
    aug = augmenter(config_dir, as_of=given)
    assert aug.as_of is given and clone(aug).get_params()["as_of"] == given
    assert not hasattr(aug, "as_of_")
    aug.fit(pd.DataFrame({"user_id": ["u1"]}))
    assert aug.as_of_ == pd.Timestamp("2024-01-15T09:00", tz="UTC")
    assert augmenter(config_dir, as_of="2024-01-15T18:00:00+09:00").fit(
        pd.DataFrame({"user_id": ["u1"]})).as_of_ == aug.as_of_
    assert augmenter(config_dir).fit(pd.DataFrame({"user_id": ["u1"]})).as_of_ is None


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01", 1704067200, dt.date(2024, 1, 1)])
def test_a_bad_as_of_is_an_error_at_fit_naming_the_parameter_and_the_value(local_store, value) -> None:
    config_dir, _ = local_store
    aug = augmenter(config_dir, as_of=value)  # stored as given: scikit-learn validates in fit
    with pytest.raises(ParameterError, match="as_of") as raised:
        aug.fit(pd.DataFrame({"user_id": ["u1"]}))
    assert repr(value) in str(raised.value)
    assert not hasattr(aug, "as_of_")


def test_point_in_time_lookups_ignore_rows_created_after_as_of(local_store) -> None:
    config_dir, _ = local_store
    spine = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "ts": [T0 + 4 * DAY, T0 + 40 * DAY, T0 + 40 * DAY]})
    assert ages(augmenter(config_dir, TIMED).fit_transform(spine)) == [30, 31, 40]
    assert ages(augmenter(config_dir, TIMED, as_of=T0 + 15 * DAY).fit_transform(spine)) == [30, 31, None]
    assert ages(augmenter(config_dir, TIMED, as_of=T0 + 9 * DAY).fit_transform(spine)) == [30, 30, None]


def test_batch_lookups_without_times_read_the_latest_rows_created_by_as_of(local_store) -> None:
    config_dir, features = local_store
    spine = pd.DataFrame({"user_id": ["u1", "u2", "nobody", None]})
    fitted = augmenter(config_dir, as_of=T0 + 15 * DAY).fit(spine)
    assert ages(fitted.transform(spine)) == [31, None, None, None]  # u2's row was created on day 30
    assert ages(augmenter(config_dir, as_of=T0 + 2 * DAY).fit_transform(spine)) == [30, None, None, None]
    assert ages(augmenter(config_dir, as_of=T0 + 30 * DAY).fit_transform(spine)) == [31, 40, None, None]
    # the transform of the fitted augmenter keeps reading as of its as_of_, after rows were appended
    frame = pd.read_parquet(features / "user_demographics.parquet")
    later = pd.DataFrame({"user_id": ["u1"], "event_timestamp": [T0 + 50 * DAY],
                          "created_timestamp": [T0 + 50 * DAY], "age": [32]})
    pd.concat([frame, later]).to_parquet(features / "user_demographics.parquet", index=False)
    close_all()
    assert ages(fitted.transform(spine)) == [31, None, None, None]
    assert ages(augmenter(config_dir).fit_transform(spine)) == [32, 40, None, None]


def test_online_lookups_do_not_apply_as_of(local_store) -> None:
    config_dir, _ = local_store
    spine = pd.DataFrame({"user_id": ["u1", "u2"]})
    fitted = augmenter(config_dir, as_of=T0 + 2 * DAY).fit(spine)
    assert ages(fitted.transform(spine)) == [30, None]
    fitted.set_params(mode="online")  # the online store holds the values of now
    assert ages(fitted.transform(spine)) == [31, 40]
    assert ages(fitted.transform(spine.head(1))) == [31]


def test_batch_lookups_with_as_of_need_an_offline_store(make_config_dir, redis_client) -> None:
    host, db = redis_host_and_db(redis_client)
    config_dir = make_config_dir(local={"feature_store": {"provider": "redis", "connection_info": {
        "redis_host": host, "redis_db": db, "redis_mode": "standalone"}}})
    with pytest.raises(StoreError, match=r"as_of need an offline store.*offline_store_uri"):
        augmenter(config_dir, as_of=T0).fit(pd.DataFrame({"user_id": ["u1"]}))


# --- fs-augment train: as_of fixed, logged, and the training frame rebuilt ------------------------

@pytest.mark.mlflow
def test_train_logs_as_of_and_the_rebuilt_training_frame_is_identical(tmp_path, monkeypatch) -> None:
    import mlflow

    import fs_augment.mlflow as fs_mlflow
    from fs_augment.config import load_config
    from fs_augment.demo import write_demo_data
    from fs_augment.loader import load_spine_for_recipe
    from fs_augment.recipe import load_recipe
    from fs_augment.training import _model_inputs, _tracking, split, train

    project = write_demo_data(tmp_path / "demo", users=60, products=10, rows=200)
    data = yaml.safe_load(project.recipe.read_text())
    del data["augmenter"]["timestamp_column"]  # latest values (the split stays by time)
    recipe_path = tmp_path / "latest.yaml"
    recipe_path.write_text(yaml.safe_dump(data))
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("FS_AUGMENT_ENV", "local")  # where the trained (unpinned) augmenter reads
    monkeypatch.setenv("FS_AUGMENT_CONFIG_DIR", str(project.config_dir))

    before = pd.Timestamp.now(tz="UTC")
    # the tracking store passed, not set in MLFLOW_TRACKING_URI: no MLflow state outlives the test
    result = train(recipe_path, env="local", config_dir=project.config_dir, tracking_uri=tracking, progress=False)
    logged = mlflow.MlflowClient(tracking).get_run(result.run_id).data.params["fs_augment.as_of"]
    assert logged == result.as_of and before <= pd.Timestamp(logged) <= pd.Timestamp.now(tz="UTC")
    with _tracking(tracking):
        model_dir = Path(mlflow.artifacts.download_artifacts(result.model_uri, dst_path=str(tmp_path / "model")))
        loaded = fs_mlflow.load_model(result.model_uri, mode="batch").unwrap_python_model()
    manifest = json.loads(next(model_dir.rglob("feature_manifest.json")).read_text())
    assert [item["as_of"] for item in manifest["augmenters"]] == [logged]
    assert [a.as_of_ for a in fs_mlflow.find_augmenters(loaded.pipeline)] == [None]  # it scores new data

    recipe = load_recipe(recipe_path)
    config = load_config("local", project.config_dir)
    X, y = load_spine_for_recipe(recipe, config)
    train_rows, _, _ = split(X, y, test_size=0.25, time_column="event_timestamp", stratify=True)
    X_train = _model_inputs(X, recipe).iloc[train_rows]
    trained = result.pipeline.named_steps["features"]
    first = trained.transform(X_train)  # the training lookup, as of the logged time

    # after training: new rows for every user (event and created now) and backfills (event in the past,
    # created now) for products, as a data engineer appends them to the offline tables
    now = pd.Timestamp.now(tz="UTC")
    for namespace, entity in (("user_demographics", "user_id"), ("product_details", "product_id")):
        path = project.features / f"{namespace}.parquet"
        table = pd.read_parquet(path)
        table["event_timestamp"] = pd.to_datetime(table["event_timestamp"], utc=True)
        newest = table.sort_values("event_timestamp").groupby(entity).tail(1).copy()
        if namespace == "user_demographics":
            newest["event_timestamp"] = now
            newest["age"] = newest["age"] + 1
        else:
            newest["event_timestamp"] = newest["event_timestamp"] + pd.Timedelta(seconds=1)
            newest["price"] = newest["price"] * 2
        newest["created_timestamp"] = now
        # the rows there were known at their event time
        table["created_timestamp"] = pd.Series(pd.NaT, index=table.index, dtype="datetime64[ns, UTC]")
        pd.concat([table, newest], ignore_index=True).to_parquet(path, index=False)
    close_all()

    def rebuild(**params) -> pd.DataFrame:
        return FeatureStoreAugmenter(recipe, drop_entity_columns=True, **params).fit_transform(X_train)

    pd.testing.assert_frame_equal(rebuild(as_of=logged), first)
    drifted = rebuild()
    changed = (drifted.ne(first) & ~(drifted.isna() & first.isna())).sum()
    assert changed["user_demographics__age"] > 0 and changed["product_details__price"] > 0, changed
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(drifted, first)
