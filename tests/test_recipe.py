"""Recipes: the seed's recipe, round trips, optional additions and every kind of bad input."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings

from fs_augment.errors import FsAugmentError, RecipeError
from fs_augment.recipe import FeatureGroup, Recipe, load_recipe, parse_feature_specs
from tests.support.strategies import recipe_dicts

REPO_RECIPE = Path(__file__).parents[1] / "recipes" / "experiment.yaml"

SEED = {
    "augmenter": {
        "type": "feature_store",
        "features": [
            {"feature_namespace": "user_demographics", "features": ["age", "country_code", "gender"]},
            {"feature_namespace": "user_purchase_summary", "features": ["ltv", "total_purchase_count"]},
            {"feature_namespace": "product_details", "features": ["price", "category", "brand"]},
        ],
    }
}


def _recipe(**augmenter: Any) -> dict[str, Any]:
    """The seed recipe with some augmenter keys replaced."""
    out = copy.deepcopy(SEED)
    out["augmenter"].update(augmenter)
    return out


def _group(**item: Any) -> dict[str, Any]:
    """A recipe of one namespace item."""
    return {"augmenter": {"type": "feature_store", "features": [item]}}


@pytest.fixture
def write(tmp_path: Path):
    """Write a recipe (YAML text or data) to a file and return its path."""

    def write(content: str | dict[str, Any], name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content), encoding="utf-8")
        return path

    return write


def _error(path: Path) -> str:
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, FsAugmentError)
    message = str(info.value)
    assert str(path) in message
    return message


# --- the seed's recipe ---------------------------------------------------------------------


def test_repo_recipe_parses_exactly():
    recipe = load_recipe(REPO_RECIPE)
    assert [g.namespace for g in recipe.groups] == ["user_demographics", "user_purchase_summary", "product_details"]
    assert [g.features for g in recipe.groups] == [
        ("age", "country_code", "gender"), ("ltv", "total_purchase_count"), ("price", "category", "brand")]
    assert [g.entity_column for g in recipe.groups] == ["user_id", "user_id", "product_id"]
    assert recipe.entity_columns == ("user_id", "product_id")
    assert recipe.qualified_names == (
        "user_demographics:age", "user_demographics:country_code", "user_demographics:gender",
        "user_purchase_summary:ltv", "user_purchase_summary:total_purchase_count",
        "product_details:price", "product_details:category", "product_details:brand",
    )
    assert recipe.feature_specs() == [
        {"namespace": "user_demographics", "features": ["age", "country_code", "gender"]},
        {"namespace": "user_purchase_summary", "features": ["ltv", "total_purchase_count"]},
        {"namespace": "product_details", "features": ["price", "category", "brand"]},
    ]
    assert all(g.defaults == {} and g.max_age is None for g in recipe.groups)
    assert (recipe.timestamp_column, recipe.loader, recipe.model) == (None, None, None)
    assert recipe.source == str(REPO_RECIPE)


def test_repo_recipe_equals_seed_as_dict():
    from_file = load_recipe(REPO_RECIPE)
    from_dict = load_recipe(SEED)
    assert from_file.groups == from_dict.groups
    assert from_dict.source is None


def test_recipe_passes_through():
    recipe = load_recipe(SEED)
    assert load_recipe(recipe) is recipe


# --- round trips -----------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(recipe_dicts())
def test_to_dict_round_trips(data):
    recipe = load_recipe(data)
    assert load_recipe(recipe.to_dict()) == recipe
    assert load_recipe(yaml.safe_load(recipe.to_yaml())) == recipe
    assert recipe.to_dict() == load_recipe(recipe.to_dict()).to_dict()


@settings(max_examples=50, deadline=None)
@given(recipe_dicts())
def test_generated_recipes_keep_order_and_names(data):
    recipe = load_recipe(data)
    items = data["augmenter"]["features"]
    assert [g.namespace for g in recipe.groups] == [i.get("feature_namespace", i.get("namespace")) for i in items]
    assert [list(g.features) for g in recipe.groups] == [i["features"] for i in items]
    assert recipe.qualified_names == tuple(f"{g.namespace}:{f}" for g in recipe.groups for f in g.features)


# --- optional additions ---------------------------------------------------------------------


def test_namespace_key_accepted_like_feature_namespace():
    a = load_recipe(_group(namespace="user_demographics", features=["age"]))
    b = load_recipe(_group(feature_namespace="user_demographics", features=["age"]))
    assert a == b


def test_explicit_entity_column():
    recipe = load_recipe(_group(feature_namespace="user_demographics", features=["age"], entity_column="customer"))
    assert recipe.groups[0].entity_column == "customer"
    assert recipe.entity_columns == ("customer",)


@pytest.mark.parametrize(
    ("namespace", "column"),
    [("session_summary", "session_id"), ("user_demographics", "user_id"), ("product_details", "product_id"),
     ("store", "store_id")],
)
def test_entity_column_is_inferred(namespace, column):
    assert load_recipe(_group(feature_namespace=namespace, features=["x"])).groups[0].entity_column == column


def test_parse_feature_specs_takes_both_spellings():
    groups = parse_feature_specs([{"namespace": "a_b", "features": ["x"]},
                                  {"feature_namespace": "c_d", "features": ["y"]}])
    assert groups == (FeatureGroup("a_b", ("x",), "a_id"), FeatureGroup("c_d", ("y",), "c_id"))


def test_defaults():
    recipe = load_recipe(_group(feature_namespace="user_demographics", features=["age", "country_code"],
                                defaults={"age": 0, "country_code": "unknown"}))
    assert recipe.groups[0].defaults == {"age": 0, "country_code": "unknown"}


@pytest.mark.parametrize(
    ("max_age", "seconds"),
    [("30d", 2592000.0), (3600, 3600.0), (1.5, 1.5), ("12h", 43200.0), ("15m", 900.0), ("45s", 45.0),
     ("2w", 1209600.0), ("90", 90.0), (" 1d ", 86400.0), ("0.5h", 1800.0), (None, None)],
)
def test_max_age(max_age, seconds):
    group = load_recipe(_group(feature_namespace="user_demographics", features=["age"], max_age=max_age)).groups[0]
    assert group.max_age == seconds


def test_timestamp_column():
    assert load_recipe(_recipe(timestamp_column="event_time")).timestamp_column == "event_time"


def test_loader_model_and_evaluation(write):
    path = write({**SEED,
                  "loader": {"sql": "SELECT 1", "entity_columns": ["user_id"], "target_column": "label",
                             "timestamp_column": "ts", "uri": "file://./lake"},
                  "model": {"class": "sklearn.linear_model.LogisticRegression", "params": {"C": 0.5}},
                  "evaluation": {"test_size": 0.3}})
    recipe = load_recipe(path)
    assert recipe.loader.sql == "SELECT 1"
    assert recipe.loader.entity_columns == ("user_id",)
    assert (recipe.loader.target_column, recipe.loader.timestamp_column, recipe.loader.uri) == (
        "label", "ts", "file://./lake")
    assert recipe.model.class_path == "sklearn.linear_model.LogisticRegression"
    assert recipe.model.params == {"C": 0.5}
    assert recipe.evaluation == {"test_size": 0.3}


def test_sql_file_is_read_relative_to_recipe(write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "spine.sql").write_text("SELECT user_id FROM events\n")
    path = write({**SEED, "loader": {"sql_file": "sql/spine.sql"}})
    monkeypatch.chdir(tmp_path / "sql")  # not where the recipe is
    assert load_recipe(path).loader.sql == "SELECT user_id FROM events\n"


def test_sql_file_absolute(write, tmp_path: Path):
    sql = tmp_path / "elsewhere.sql"
    sql.write_text("SELECT 2")
    assert load_recipe(write({**SEED, "loader": {"sql_file": str(sql)}})).loader.sql == "SELECT 2"


# --- bad input ------------------------------------------------------------------------------


def test_malformed_yaml_names_file_and_line(write):
    path = write("augmenter:\n  type: feature_store\n  features:\n    - feature_namespace: [oops\n")
    message = _error(path)
    assert "malformed YAML" in message
    assert "line 5" in message


def test_malformed_yaml_bad_indentation(write):
    message = _error(write("augmenter:\n  type: feature_store\n features: []\n"))
    assert "line 3" in message


def test_missing_file(tmp_path: Path):
    with pytest.raises(RecipeError, match=r"nope\.yaml"):
        load_recipe(tmp_path / "nope.yaml")


@pytest.mark.parametrize("content", [{"model": {"class": "x.Y"}}, {"augmenter": None}, {"augmenter": ["a"]}])
def test_missing_augmenter(write, content):
    assert "augmenter" in _error(write(content))


@pytest.mark.parametrize("content", ["- a\n- b\n", "text\n", ""])
def test_recipe_must_be_a_mapping(write, content):
    assert "augmenter" in _error(write(content))


def test_not_a_recipe():
    with pytest.raises(RecipeError, match="int"):
        load_recipe(5)


def test_wrong_augmenter_type(write):
    assert "augmenter.type" in _error(write(_recipe(type="lookup_table")))


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"feature_namespace": 5, "features": ["a"]}, "namespace 5"),
        ({"feature_namespace": "user_x", "features": [5]}, "feature 5"),
        ({"feature_namespace": "user_x", "features": ["a"], "entity_column": 5}, "entity_column"),
        ({"feature_namespace": "user_x", "features": ["a"], "defaults": ["a"]}, "defaults"),
        ({"feature_namespace": "user_x", "features": ["a"], "defaults": {"a": [1]}}, "default of 'a'"),
        ({"feature_namespace": "user_x", "features": {"a": 1}}, "features must be a non-empty list"),
        ({"feature_namespace": "user_x", "features": 5}, "features must be a non-empty list"),
        ("user_x", "must be a mapping"),
    ],
)
def test_wrong_types_name_file_and_item(write, item, expected):
    message = _error(write({"augmenter": {"type": "feature_store", "features": [{"namespace": "ok_ns",
                                                                                 "features": ["a"]}, item]}}))
    assert "augmenter.features[1]" in message
    assert expected in message


def test_unknown_key_in_item(write):
    message = _error(write(_group(feature_namespace="user_x", features=["a"], entity_col="u")))
    assert "augmenter.features[0]" in message
    assert "entity_col" in message
    assert "entity_column" in message  # the known keys are listed


def test_unknown_key_in_augmenter(write):
    message = _error(write(_recipe(timestamp="ts")))
    assert "timestamp" in message


def test_unknown_section(write):
    message = _error(write({**SEED, "modle": {"class": "x.Y"}}))
    assert "modle" in message


def test_both_namespace_spellings(write):
    message = _error(write(_group(feature_namespace="a_b", namespace="a_b", features=["x"])))
    assert "augmenter.features[0]" in message


def test_namespace_missing(write):
    message = _error(write(_group(features=["x"])))
    assert "augmenter.features[0]" in message
    assert "feature_namespace is missing" in message


@pytest.mark.parametrize(
    ("item", "name"),
    [
        ({"feature_namespace": "user demographics", "features": ["age"]}, "'user demographics'"),
        ({"feature_namespace": "user:demo", "features": ["age"]}, "'user:demo'"),
        ({"feature_namespace": "", "features": ["age"]}, "''"),
        ({"feature_namespace": "user_x", "features": ["country code"]}, "'country code'"),
        ({"feature_namespace": "user_x", "features": ["a:b"]}, "'a:b'"),
        ({"feature_namespace": "user_x", "features": [""]}, "''"),
    ],
)
def test_invalid_names(write, item, name):
    message = _error(write(_group(**item)))
    assert "augmenter.features[0]" in message
    assert name in message


def test_duplicate_features(write):
    message = _error(write(_group(feature_namespace="user_x", features=["age", "ltv", "age"])))
    assert "augmenter.features[0] (user_x)" in message
    assert "age" in message
    assert "twice" in message


def test_duplicate_namespace(write):
    features = [{"feature_namespace": "user_x", "features": ["a"]}, {"namespace": "user_x", "features": ["b"]}]
    message = _error(write({"augmenter": {"type": "feature_store", "features": features}}))
    assert "'user_x'" in message
    assert "twice" in message


@pytest.mark.parametrize("features", [[], None, "age", {"a": 1}])
def test_item_features_must_be_non_empty_list(write, features):
    message = _error(write(_group(feature_namespace="user_x", features=features)))
    assert "augmenter.features[0] (user_x)" in message
    assert "non-empty list" in message


@pytest.mark.parametrize("features", [[], None, "user_demographics", {"feature_namespace": "x"}])
def test_augmenter_features_must_be_non_empty_list(write, features):
    message = _error(write(_recipe(features=features)))
    assert "augmenter.features" in message


def test_defaults_for_unlisted_features(write):
    message = _error(write(_group(feature_namespace="user_x", features=["age"], defaults={"ltv": 0, 7: 1})))
    assert "augmenter.features[0] (user_x)" in message
    assert "ltv" in message


@pytest.mark.parametrize("max_age", ["soon", "-1d", 0, -5, True, "30 days", [1], "1y"])
def test_bad_max_age(write, max_age):
    message = _error(write(_group(feature_namespace="user_x", features=["a"], max_age=max_age)))
    assert "augmenter.features[0] (user_x)" in message
    assert "max_age" in message


@pytest.mark.parametrize(
    ("loader", "expected"),
    [
        ({"sql": "SELECT 1", "sql_file": "a.sql"}, "exactly one of sql or sql_file"),
        ({"entity_columns": ["user_id"]}, "exactly one of sql or sql_file"),
        ({"sql": "   "}, "loader.sql"),
        ({"sql": 5}, "loader.sql"),
        ({"sql_file": "missing.sql"}, "missing.sql"),
        ({"sql": "SELECT 1", "entity_columns": "user_id"}, "loader.entity_columns"),
        ({"sql": "SELECT 1", "entity_columns": 5}, "loader.entity_columns"),
        ({"sql": "SELECT 1", "entity_columns": [1]}, "loader.entity_columns"),
        ({"sql": "SELECT 1", "target_column": 5}, "loader.target_column"),
        ("SELECT 1", "loader must be a mapping"),
    ],
)
def test_bad_loader(write, loader, expected):
    message = _error(write({**SEED, "loader": loader}))
    assert expected in message


@pytest.mark.parametrize("model", [{"params": {"C": 1}}, {"class": 5}, "sklearn.linear_model.LogisticRegression",
                                   {"class": "x.Y", "params": [1]}])
def test_bad_model(write, model):
    assert "model" in _error(write({**SEED, "model": model}))


@pytest.mark.parametrize("test_size", [0, 1, 1.5, -0.1, "half", True])
def test_bad_test_size(write, test_size):
    assert "evaluation.test_size" in _error(write({**SEED, "evaluation": {"test_size": test_size}}))


def test_bad_evaluation(write):
    assert "evaluation" in _error(write({**SEED, "evaluation": [0.2]}))


def test_errors_from_dicts_say_recipe():
    with pytest.raises(RecipeError, match=r"recipe: augmenter.features\[0\]"):
        load_recipe(_group(feature_namespace="user_x", features=[]))


def test_recipe_is_immutable():
    recipe = load_recipe(SEED)
    with pytest.raises(AttributeError):
        recipe.groups = ()  # type: ignore[misc]
    assert isinstance(recipe, Recipe)
