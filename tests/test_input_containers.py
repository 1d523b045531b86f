"""What a spine may be: a pandas or polars DataFrame; sparse or numeric arrays are refused and the message says why."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
import scipy.sparse
from sklearn.pipeline import make_pipeline

from fs_augment import FeatureStoreAugmenter
from fs_augment.errors import SpineError
from fs_augment.writer import write_parquet_namespace

USERS = {"user_id": ["u1", "u2", "u3"], "age": [10, 20, 30], "country": ["KR", "US", None]}
PRODUCTS = {"product_id": ["p1", "p2"], "price": [9.5, 1.25]}


def recipe(namespace: str, *features: str) -> dict:
    return {"augmenter": {"features": [{"feature_namespace": namespace, "features": list(features)}]}}


@pytest.fixture
def config_dir(tmp_path):
    when = pd.Timestamp("2024-01-01", tz="UTC")
    write_parquet_namespace(pd.DataFrame(USERS).assign(event_timestamp=when), "user_demographics", tmp_path / "f")
    write_parquet_namespace(pd.DataFrame(PRODUCTS).assign(event_timestamp=when), "product_details", tmp_path / "f")
    config = tmp_path / "config"
    config.mkdir()
    (config / "local.yaml").write_text("feature_store:\n  provider: local\n  connection_info:\n"
                                       f"    offline_store_uri: 'file://{tmp_path / 'f'}'\n")
    return str(config)


SPINE = {"user_id": ["u3", "nobody", "u1"], "product_id": ["p2", "p1", "p9"]}


@pytest.mark.parametrize("mode", ["batch", "online"])
def test_a_polars_spine_gives_what_the_pandas_spine_gives(config_dir, mode):
    aug = FeatureStoreAugmenter(recipe("user_demographics", "age", "country"), env="local", config_dir=config_dir,
                                mode=mode)
    want_fit = aug.fit_transform(pd.DataFrame(SPINE))
    want = aug.transform(pd.DataFrame(SPINE))
    pd.testing.assert_frame_equal(aug.fit_transform(pl.DataFrame(SPINE)), want_fit)
    pd.testing.assert_frame_equal(aug.transform(pl.DataFrame(SPINE)), want)
    pd.testing.assert_frame_equal(aug.transform(pl.DataFrame(SPINE).head(1)), want.head(1))  # the 1-row path


def test_two_augmenters_in_a_polars_pipeline(config_dir):
    users = FeatureStoreAugmenter(recipe("user_demographics", "age", "country"), env="local", config_dir=config_dir)
    products = FeatureStoreAugmenter(recipe("product_details", "price"), env="local", config_dir=config_dir)
    pipeline = make_pipeline(users, products).set_output(transform="polars")
    out = pipeline.fit_transform(pd.DataFrame(SPINE))  # the second augmenter is given the first's polars output
    assert isinstance(out, pl.DataFrame)
    assert out.columns == ["user_id", "product_id", "user_demographics__age", "user_demographics__country",
                           "product_details__price"]
    assert out["user_demographics__age"].to_list() == [30.0, None, 10.0]
    assert out["product_details__price"].to_list() == [1.25, 9.5, None]
    assert pipeline.transform(pl.DataFrame(SPINE)).equals(out)


@pytest.mark.parametrize("sparse", [scipy.sparse.csr_matrix, scipy.sparse.csr_array, scipy.sparse.coo_matrix])
def test_sparse_input_is_refused_and_the_message_says_sparse(config_dir, sparse):
    aug = FeatureStoreAugmenter(recipe("user_demographics", "age"), env="local", config_dir=config_dir)
    with pytest.raises(SpineError, match="sparse input"):
        aug.fit(sparse(np.eye(3)))
    aug.fit(pd.DataFrame(SPINE))
    with pytest.raises(SpineError, match="sparse input"):
        aug.transform(sparse(np.eye(3)))


def test_numeric_arrays_and_lazy_frames_are_refused_with_what_to_pass(config_dir):
    aug = FeatureStoreAugmenter(recipe("user_demographics", "age"), env="local", config_dir=config_dir)
    with pytest.raises(SpineError, match="takes a pandas or polars DataFrame of entity columns, got ndarray"):
        aug.fit(np.zeros((3, 1)))
    with pytest.raises(SpineError, match=r"LazyFrame; collect\(\) it first"):
        aug.fit(pl.DataFrame(SPINE).lazy())
