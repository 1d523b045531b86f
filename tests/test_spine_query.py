"""``SpineQuery`` outside BigQuery: the query's rows are loaded and looked up as a DataFrame would be.

The in-place join of BigQuery is tested on the emulator in tests/stores/test_bigquery_spine_query.py.
"""

from __future__ import annotations

import pickle

import pandas as pd
import pytest
from sklearn.base import clone

import fs_augment
from fs_augment.config import Config, FeatureStoreConfig
from fs_augment.demo import write_demo_data
from fs_augment.errors import ConfigError
from fs_augment.loader import load_spine
from fs_augment.recipe import load_recipe


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write_demo_data(tmp_path_factory.mktemp("demo"), users=40, products=10, rows=120)


def test_a_spine_query_of_a_folder_lake_equals_its_loaded_rows(demo) -> None:
    recipe = load_recipe(demo.recipe)
    config = fs_augment.load_config("local", demo.config_dir)
    spine = load_spine(recipe.loader.sql, config.data_lake_uri, config=config)
    loaded = fs_augment.FeatureStoreAugmenter(recipe, env="local", config_dir=str(demo.config_dir))
    expected = loaded.fit_transform(spine)

    queried = clone(loaded)
    got = queried.fit_transform(fs_augment.SpineQuery(recipe.loader.sql))
    pd.testing.assert_frame_equal(got, expected)
    assert queried.feature_dtypes_ == loaded.feature_dtypes_
    pd.testing.assert_frame_equal(queried.transform(fs_augment.SpineQuery(recipe.loader.sql)), loaded.transform(spine))
    # the query is data: the estimator keeps none of it, and pickles as one fitted on a DataFrame
    assert queried.get_params() == loaded.get_params()
    assert not any(isinstance(v, fs_augment.SpineQuery) for v in vars(queried).values())
    pd.testing.assert_frame_equal(pickle.loads(pickle.dumps(queried)).transform(spine), loaded.transform(spine))


def test_a_spine_query_without_a_data_lake_says_where_to_set_one(tmp_path) -> None:
    config = Config("dev", str(tmp_path), FeatureStoreConfig(), None)
    with pytest.raises(ConfigError, match=r"environment 'dev' .* has no data lake for a SpineQuery: set "
                                          r"data_lake.uri in .*dev.yaml, or SpineQuery\(uri=...\)"):
        fs_augment.SpineQuery("SELECT 1").data_lake(config)
    assert fs_augment.SpineQuery("SELECT 1", uri="file://lake").data_lake(config) == "file://lake"


def test_a_spine_query_uri_must_be_a_data_lake() -> None:
    with pytest.raises(ConfigError, match=r"'bq://PROJECT.DATASET' or 'file://FOLDER', got 's3://x'"):
        fs_augment.SpineQuery("SELECT 1", uri="s3://x")
