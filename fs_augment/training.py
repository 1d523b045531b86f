"""The training job: Loader SQL → augmented spine → fitted, evaluated, logged model.

:func:`train` runs the contract's training flow (CONTRACT 6) for one recipe:

1. the spine and target from the environment's data lake (:mod:`fs_augment.loader`);
2. a held-out split: by time when the spine has a timestamp column (the latest
   rows are the test set), else a random split, stratified for classifiers;
3. a :class:`~sklearn.pipeline.Pipeline` of
   :class:`~fs_augment.FeatureStoreAugmenter` (batch lookups, point in time
   when the recipe names a ``timestamp_column``), a
   :class:`~sklearn.compose.ColumnTransformer` (text features one-hot encoded,
   numbers as floats, imputed only for models that cannot take NaN) and the
   recipe's estimator;
4. metrics on the test split, then the pipeline logged with
   :func:`fs_augment.mlflow.log_model`, ready for ``mlflow models serve``.

The training set can be rebuilt: when the environment has an offline store,
the augmenter's ``as_of`` is fixed to the moment the job starts (unless given),
so every lookup of the run reads the offline store as it was then, and it is
logged (MLflow param ``fs_augment.as_of`` and the feature manifest). Rows
appended or backfilled later do not change a frame rebuilt with that ``as_of``.

The augmenter is not pinned to the training environment: the served model
reads the store of the environment it runs in (``FS_AUGMENT_ENV``).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import shlex
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fs_augment.config import CONFIG_DIR_VARIABLE, ENV_VARIABLE, Config, load_config, mask_url
from fs_augment.connections import get_adapter, use
from fs_augment.errors import RecipeError, SpineError
from fs_augment.keys import format_event_time, parse_as_of
from fs_augment.recipe import Recipe, load_recipe

if TYPE_CHECKING:
    import pyarrow as pa

    from fs_augment.adapter import FeatureStoreAdapter

__all__ = ["TrainResult", "as_float", "build_estimator", "build_pipeline", "split", "train"]

#: Rows of the logged input example.
_EXAMPLE_ROWS = 5
_TEXT_DTYPES = [object, "string", "category"]


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes
    ----------
    metrics : dict
        Test-split metrics (``accuracy``, ``roc_auc``, ``log_loss`` for
        classifiers; ``r2``, ``rmse``, ``mae`` for regressors).
    model_uri : str
        The logged model (``models:/...``).
    run_id : str
        The MLflow run.
    serve_command : str
        The shell command that serves the model on port 5001.
    tracking_uri : str
        The MLflow tracking store the run was logged to.
    env : str
        The environment the training lookups read.
    curl_command : str
        A request to the served model for the first test entities.
    pipeline : Pipeline
        The fitted pipeline (as logged).
    as_of : str or None
        The time the training lookups read the offline store as of (ISO 8601,
        UTC), None when the environment has no offline store.
    """

    metrics: dict[str, float]
    model_uri: str
    run_id: str
    serve_command: str
    tracking_uri: str = ""
    env: str = ""
    curl_command: str = ""
    pipeline: Any = field(default=None, repr=False)
    as_of: str | None = None


def as_float(frame: Any) -> np.ndarray:
    """Numeric and boolean columns as a float64 array; missing values (NA, None) become NaN.

    Used inside the pipeline for the augmenter's nullable ``Int64`` and
    ``boolean`` features, which scikit-learn estimators do not take as they are.

    Examples
    --------
    >>> as_float(pd.DataFrame({"n": pd.array([1, None], dtype="Int64"), "b": pd.array([True, None])}))
    array([[ 1.,  1.],
           [nan, nan]])
    """
    if isinstance(frame, pd.DataFrame):
        return frame.astype("float64").to_numpy(dtype="float64", na_value=np.nan)
    return np.asarray(frame, dtype="float64")


def build_estimator(recipe: Recipe) -> Any:
    """The recipe's model: its class imported by dotted path and built with its parameters.

    Parameters
    ----------
    recipe : Recipe
        A recipe with a ``model`` section (``class`` and ``params``).

    Returns
    -------
    estimator
        An unfitted scikit-learn classifier or regressor.

    Raises
    ------
    RecipeError
        No model section, the class cannot be imported, is not a scikit-learn
        classifier or regressor, or does not take the parameters.

    Examples
    --------
    >>> recipe = load_recipe({"augmenter": {"features": [{"namespace": "user_stats", "features": ["n"]}]},
    ...                       "model": {"class": "sklearn.linear_model.LogisticRegression", "params": {"C": 0.5}}})
    >>> build_estimator(recipe)
    LogisticRegression(C=0.5)
    """
    from sklearn.base import BaseEstimator, is_classifier, is_regressor

    source = recipe.source or "recipe"
    if recipe.model is None:
        raise RecipeError(f"{source} has no model section: add model.class (e.g. "
                          "sklearn.ensemble.HistGradientBoostingClassifier) and model.params")
    path = recipe.model.class_path
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise RecipeError(f"{source}: model.class must be a dotted path such as "
                          f"sklearn.ensemble.HistGradientBoostingClassifier, got {path!r}")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise RecipeError(f"{source}: model.class {path!r} cannot be imported ({exc})") from None
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        raise RecipeError(f"{source}: model.class {path!r} is not a scikit-learn estimator class")
    try:
        estimator = cls(**dict(recipe.model.params))
    except TypeError as exc:
        raise RecipeError(f"{source}: model.params do not fit {path}: {exc}") from None
    if not (is_classifier(estimator) or is_regressor(estimator)):
        raise RecipeError(f"{source}: model.class {path!r} is neither a classifier nor a regressor")
    return estimator


def build_pipeline(recipe: Recipe, estimator: Any) -> Any:
    """The unfitted training pipeline: augmenter → encoding → ``estimator``.

    Text and categorical features are one-hot encoded (unknown categories are
    ignored at serving); numeric and boolean features become floats, imputed
    with their median only when ``estimator`` does not accept NaN.

    Examples
    --------
    >>> from sklearn.ensemble import HistGradientBoostingClassifier
    >>> recipe = load_recipe({"augmenter": {"features": [{"namespace": "user_stats", "features": ["n"]}]}})
    >>> list(build_pipeline(recipe, HistGradientBoostingClassifier()).named_steps)
    ['features', 'encode', 'model']
    """
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder
    from sklearn.utils import get_tags

    from fs_augment.augmenter import FeatureStoreAugmenter

    numbers: Any = FunctionTransformer(as_float, feature_names_out="one-to-one")
    if not get_tags(estimator).input_tags.allow_nan:
        numbers = make_pipeline(numbers, SimpleImputer(strategy="median", keep_empty_features=True))
    encode = ColumnTransformer(
        [
            ("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
             make_column_selector(dtype_include=_TEXT_DTYPES)),
            ("numbers", numbers, make_column_selector(dtype_exclude=_TEXT_DTYPES)),
        ],
        verbose_feature_names_out=False,
    )
    return Pipeline([
        ("features", FeatureStoreAugmenter(recipe, drop_entity_columns=True)),
        ("encode", encode),
        ("model", estimator),
    ])


def split(
    X: pd.DataFrame,
    y: pd.Series,
    *,
    test_size: float,
    time_column: str | None = None,
    stratify: bool = False,
    random_state: int | None = 0,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Row positions of the train and test splits, and how they were split.

    With ``time_column`` in ``X`` the split is by time: the latest
    ``test_size`` of the rows are the test set (rows without a time count as
    the earliest). Otherwise the split is random, stratified by ``y`` when
    asked and every class has at least two rows.

    Examples
    --------
    >>> X = pd.DataFrame({"t": pd.to_datetime(["2024-01-03", "2024-01-01", "2024-01-04", "2024-01-02"])})
    >>> train_rows, test_rows, how = split(X, pd.Series([0, 1, 0, 1]), test_size=0.25, time_column="t")
    >>> train_rows.tolist(), test_rows.tolist(), how
    ([1, 3, 0], [2], 'time')
    """
    n = len(X)
    n_test = max(1, math.ceil(n * test_size))
    if n - n_test < 1:
        raise SpineError(f"the spine has {n} row(s): too few for a train/test split with test_size={test_size}")
    if time_column is not None and time_column in X.columns:
        from fs_augment.adapter import to_utc

        times = to_utc(X[time_column], time_column).reset_index(drop=True)
        order = times.sort_values(kind="stable", na_position="first").index.to_numpy()
        return order[:-n_test], order[-n_test:], "time"
    from sklearn.model_selection import train_test_split

    labels = None
    if stratify:
        counts = pd.Series(y).value_counts()
        if len(counts) > 1 and counts.min() >= 2 and n_test >= len(counts):
            labels = np.asarray(y)
    train_rows, test_rows = train_test_split(
        np.arange(n), test_size=n_test, random_state=random_state, stratify=labels)
    return np.sort(train_rows), np.sort(test_rows), "stratified" if labels is not None else "random"


def _metrics(pipeline: Any, X: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    from sklearn import metrics as skm
    from sklearn.base import is_classifier

    predicted = pipeline.predict(X)
    if not is_classifier(pipeline):
        error = np.asarray(y, dtype="float64") - np.asarray(predicted, dtype="float64")
        return {"r2": float(skm.r2_score(y, predicted)), "rmse": float(np.sqrt(np.mean(error**2))),
                "mae": float(np.mean(np.abs(error)))}
    out = {"accuracy": float(skm.accuracy_score(y, predicted))}
    if not hasattr(pipeline, "predict_proba"):
        return out
    proba = pipeline.predict_proba(X)
    classes = pipeline.classes_
    out["log_loss"] = float(skm.log_loss(y, proba, labels=classes))
    if pd.Series(y).nunique() > 1:
        if len(classes) == 2:
            out["roc_auc"] = float(skm.roc_auc_score(y, proba[:, 1]))
        else:
            out["roc_auc_ovr"] = float(skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes))
    return out


class _Steps:
    """A progress bar over the job's steps (tqdm, if installed and wanted)."""

    def __init__(self, names: list[str], enabled: bool) -> None:
        self._bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=len(names), desc="train", unit="step", leave=True, disable=None,  # not on pipes
                             bar_format="{desc}{n_fmt}/{total_fmt} steps |{bar:20}| {elapsed}")

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        if self._bar is not None:
            self._bar.set_description(name)
        yield
        if self._bar is not None:
            self._bar.update(1)

    def close(self, *, failed: bool = False) -> None:
        """End the bar; a failed job keeps the name of the step that failed."""
        if self._bar is not None:
            if not failed:
                self._bar.set_description("done")
            self._bar.close()


@contextmanager
def _tracking(uri: str) -> Iterator[Any]:
    """Use ``uri`` as MLflow's tracking store, then restore the previous one.

    MLflow keeps its choice in ``MLFLOW_TRACKING_URI`` too (for its subprocesses), so restoring
    the previous URI restores a variable the caller had set.
    """
    import mlflow

    previous = mlflow.get_tracking_uri() if mlflow.tracking.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield mlflow
    finally:
        # mlflow hints str | Path, but its code takes None, which unsets the URI as it was before
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else a sqlite store ``mlflow.db`` in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def _artifact_location(tracking_uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: ``mlruns`` beside a sqlite store, else MLflow's default.

    MLflow's default for a sqlite store is ``./mlruns`` in the working directory of the
    process that creates the experiment; beside the database, store and artifacts stay together.

    Examples
    --------
    >>> _artifact_location("sqlite:////srv/ml/mlflow.db")
    'file:///srv/ml/mlruns'
    >>> _artifact_location("http://mlflow.example.com") is None
    True
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri[len("sqlite:///"):])
    return (database.resolve().parent / "mlruns").as_uri()


def _entity_request(example: pd.DataFrame) -> str:
    records = json.loads(example.head(1).to_json(orient="records", date_format="iso"))
    return json.dumps({"dataframe_records": records})


def _commands(model_uri: str, tracking_uri: str, config: Config, example: pd.DataFrame) -> tuple[str, str]:
    prefix = " ".join(f"{name}={shlex.quote(value)}" for name, value in (
        ("MLFLOW_TRACKING_URI", mask_url(tracking_uri)),  # printed: a password in it stays out
        (ENV_VARIABLE, config.env),
        (CONFIG_DIR_VARIABLE, str(Path(config.config_dir).resolve())),
    ))
    serve = f"{prefix} mlflow models serve -m {shlex.quote(model_uri)} --env-manager local -p 5001"
    curl = ("curl -s http://127.0.0.1:5001/invocations -H 'Content-Type: application/json' "
            f"-d {shlex.quote(_entity_request(example))}")
    return serve, curl


def _load_training_spine(
    recipe: Recipe, config: Config, adapter: FeatureStoreAdapter, data_lake: str, as_of: Any = None,
) -> tuple[pd.DataFrame, pd.Series | None, pa.Table | None]:
    """The spine, the target and, when the offline store joined the Loader SQL in place, the features.

    A point-in-time recipe whose Loader SQL runs where the offline store is (BigQuery and BigQuery)
    is joined in one query (:func:`fs_augment.spine_query.run_spine_query`): the spine never
    leaves the data lake. Otherwise the spine is loaded and the values are None.
    """
    from fs_augment.loader import split_target
    from fs_augment.spine_query import SpineQuery, run_spine_query

    assert recipe.loader is not None
    frame, values = run_spine_query(SpineQuery(recipe.loader.sql, data_lake), adapter, recipe.groups,
                                    recipe.timestamp_column, config, as_of=as_of)
    X, y = split_target(frame, recipe)
    return X, y, values


def _check_target(y: pd.Series | None, source: str) -> pd.Series:
    if y is None:
        raise RecipeError(f"{source}: loader.target_column is not set: name the column the model learns")
    missing = int(y.isna().sum())
    if missing:
        raise SpineError(f"{source}: the target column {y.name!r} has {missing} missing value(s); "
                         "filter them out in loader.sql")
    return y


def _model_inputs(X: pd.DataFrame, recipe: Recipe) -> pd.DataFrame:
    """The spine the pipeline takes: without a loader-only timestamp column, and no other times."""
    assert recipe.loader is not None
    split_only = recipe.loader.timestamp_column
    if split_only is not None and split_only != recipe.timestamp_column and split_only in X.columns:
        X = X.drop(columns=[split_only])  # it orders the split; the lookups read the latest values
    keys = {*recipe.entity_columns, recipe.timestamp_column}
    for column in X.columns:
        if column not in keys and X[column].dtype.kind in "mM":
            raise SpineError(
                f"{recipe.source or 'recipe'}: loader.sql returns column {column!r} of times, which a model "
                "cannot take as a feature; name it loader.timestamp_column (to split by time) or "
                "augmenter.timestamp_column (for point-in-time lookups), or leave it out of the SQL")
    return X


def _params(recipe: Recipe, config: Config, uri: str, sizes: Mapping[str, int], how: str) -> dict[str, Any]:
    assert recipe.model is not None and recipe.loader is not None
    params: dict[str, Any] = {
        "recipe": recipe.source or "recipe",
        "env": config.env,
        "data_lake": uri,
        "model_class": recipe.model.class_path,
        "features": len(recipe.qualified_names),
        "timestamp_column": recipe.timestamp_column,
        "split": how,
        "test_size": recipe.evaluation.get("test_size", 0.25),
        **sizes,
    }
    params.update({f"model.{k}": v for k, v in recipe.model.params.items()})
    return {k: str(v)[:500] for k, v in params.items()}


def train(
    recipe_path: str | os.PathLike[str],
    *,
    env: str | None = None,
    config_dir: str | os.PathLike[str] | None = None,
    tracking_uri: str | None = None,
    experiment: str = "fs_augment",
    progress: bool = True,
    as_of: Any = None,
) -> TrainResult:
    """Train, evaluate and log the model a recipe describes.

    Parameters
    ----------
    recipe_path : path-like
        A recipe with ``augmenter``, ``loader`` (with ``target_column``) and
        ``model`` sections; ``evaluation.test_size`` (default 0.25) and
        ``evaluation.random_state`` (default 0) set the held-out split.
    env : str, optional
        The environment whose data lake and feature store are read (default
        ``$FS_AUGMENT_ENV``, else ``local``).
    config_dir : path-like, optional
        Its config folder (default ``$FS_AUGMENT_CONFIG_DIR``, else ``./config``).
    tracking_uri : str, optional
        MLflow tracking store; default ``$MLFLOW_TRACKING_URI``, else
        ``sqlite:///<working directory>/mlflow.db``.
    experiment : str
        MLflow experiment, created if needed.
    progress : bool
        Show a progress bar over the steps (if tqdm is installed).
    as_of : datetime or str, optional
        Read the offline store as of this time (ISO 8601 text or a datetime,
        naive meaning UTC), e.g. a logged run's ``fs_augment.as_of`` to rebuild
        its training set. By default the moment the job starts, when the
        environment has an offline store (see
        :class:`~fs_augment.FeatureStoreAugmenter`'s ``as_of``).

    Returns
    -------
    TrainResult

    Raises
    ------
    FsAugmentError
        Any configuration, recipe, data lake or store problem, with a message
        naming what and where (see :mod:`fs_augment.errors`).

    Notes
    -----
    With an ``augmenter.timestamp_column``, a ``bq://`` data lake and a BigQuery offline store,
    the Loader SQL is joined point in time inside BigQuery as one query
    (:class:`~fs_augment.SpineQuery`): the spine is neither downloaded nor uploaded, and the
    split, the fit and the evaluation use the joined rows. ``--debug`` logs the query.

    Examples
    --------
    >>> from fs_augment.demo import write_demo_data
    >>> project = write_demo_data("demo")  # doctest: +SKIP
    >>> result = train(project.recipe, env="local", config_dir=project.config_dir)  # doctest: +SKIP
    >>> sorted(result.metrics)  # doctest: +SKIP
    ['accuracy', 'log_loss', 'roc_auc']
    """
    from sklearn.base import is_classifier

    from fs_augment.loader import resolve_data_lake_uri
    from fs_augment.stores._conversion import aligned_values

    started = pd.Timestamp.now(tz="UTC")
    recipe = load_recipe(recipe_path)
    config = load_config(env, config_dir)
    if as_of is not None:
        parse_as_of(as_of, "as_of")  # fail fast, before any data is read
    # the store as it was when the job started, when there is an offline store to read it from: rebuildable
    fixed_as_of = as_of if as_of is not None else (
        started if config.feature_store.connection_info.offline_store_uri is not None else None)
    source = recipe.source or "recipe"
    estimator = build_estimator(recipe)  # fail fast, before any data is read
    data_lake = resolve_data_lake_uri(recipe, config)
    uri = tracking_uri or default_tracking_uri()
    from fs_augment import mlflow as fs_mlflow  # needs the mlflow extra: check before the long steps

    steps = _Steps(["load spine", "look up features", "fit model", "evaluate", "log to MLflow"], progress)
    try:
        adapter = get_adapter(config.env, config.config_dir)
        with steps.step("load spine"):
            X, y, values = _load_training_spine(recipe, config, adapter, data_lake, fixed_as_of)
            y = _check_target(y, source)
        assert recipe.loader is not None
        random_state = recipe.evaluation.get("random_state", 0)
        train_rows, test_rows, how = split(
            X, y, test_size=float(recipe.evaluation.get("test_size", 0.25)),
            time_column=recipe.loader.timestamp_column or recipe.timestamp_column,
            stratify=is_classifier(estimator), random_state=random_state)
        X = _model_inputs(X, recipe)
        X_train, y_train = X.iloc[train_rows], y.iloc[train_rows]
        X_test, y_test = X.iloc[test_rows], y.iloc[test_rows]
        if is_classifier(estimator) and y_train.nunique() < 2:
            raise SpineError(f"{source}: the training split has a single class of {y.name!r} "
                             f"({y_train.iloc[0]!r}); the model needs at least two")

        pipeline = build_pipeline(recipe, estimator)
        features = pipeline.named_steps["features"]
        features.set_params(as_of=fixed_as_of)
        with use(adapter), _tracking(uri) as mlflow:
            with steps.step("look up features"):
                if values is None:
                    augmented = features.fit_transform(X_train)
                else:  # joined with the spine already: the rows' values, split as the rows are
                    augmented = features._fit_transform_values(X_train, aligned_values(values, train_rows))
                train_missing = dict(features.missing_rate_)
            with steps.step("fit model"):
                pipeline[1:].fit(augmented, y_train)
            with steps.step("evaluate"):
                if values is None:
                    metrics = _metrics(pipeline, X_test, y_test)
                else:
                    tested = features._transform_values(X_test, aligned_values(values, test_rows))
                    metrics = _metrics(pipeline[1:], tested, y_test)
            with steps.step("log to MLflow"):
                client = mlflow.MlflowClient()
                found = client.get_experiment_by_name(experiment)
                experiment_id = found.experiment_id if found is not None else client.create_experiment(
                    experiment, artifact_location=_artifact_location(uri))
                example = X_test.head(_EXAMPLE_ROWS)
                run_name = f"{Path(source).stem}-{config.env}"
                with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
                    sizes = {"rows": len(X), "train_rows": len(X_train), "test_rows": len(X_test)}
                    mlflow.log_params(_params(recipe, config, data_lake, sizes, how))
                    mlflow.log_metrics(metrics)
                    mlflow.log_metrics({f"train_missing_rate.{k}": v for k, v in train_missing.items()})
                    info = fs_mlflow.log_model(pipeline, "model", input_example=example)
    except BaseException:
        steps.close(failed=True)
        raise
    steps.close()
    request = example.drop(columns=[c for c in (recipe.timestamp_column,) if c in example.columns])
    serve, curl = _commands(info.model_uri, uri, config, request)  # a served model looks features up "now"
    fixed = features.as_of_
    return TrainResult(metrics=metrics, model_uri=info.model_uri, run_id=run.info.run_id, serve_command=serve,
                       tracking_uri=uri, env=config.env, curl_command=curl, pipeline=pipeline,
                       as_of=None if fixed is None else format_event_time(fixed.value))
