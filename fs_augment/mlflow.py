"""Log a fitted pipeline with MLflow and serve it with online lookups.

``log_model`` logs a **pyfunc** model whose load step unpickles the fitted
pipeline and switches every :class:`~fs_augment.FeatureStoreAugmenter` inside
it to online lookups, so ``mlflow models serve`` answers a request of entity
keys with the features of the serving environment (``FS_AUGMENT_ENV``), read
live, through the same code the pipeline was trained with.

mlflow is imported here only; ``import fs_augment`` never imports it.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import pandas as pd

from fs_augment.errors import FsAugmentError, require

__all__ = ["AugmentedModel", "find_augmenters", "load_model", "log_model", "set_lookup_mode"]

#: Overrides the lookup mode a loaded model uses (``online`` or ``batch``), read where the model is loaded.
SERVING_MODE_VARIABLE = "FS_AUGMENT_SERVING_MODE"
#: The lookup mode of models loaded while :func:`log_model` validates its input example (this thread only).
_MODE_WHILE_LOGGING: ContextVar[str | None] = ContextVar("fs_augment_mode_while_logging", default=None)
_PIPELINE = "pipeline"
_RECIPE = "recipe"
_MANIFEST = "feature_manifest"
_STATS = "feature_stats"
_PREDICT_METHODS = ("predict", "predict_proba", "transform")

mlflow = require("mlflow", "mlflow")
from mlflow.models import ModelSignature  # noqa: E402
from mlflow.types.schema import AnyType, ColSpec, ParamSchema, ParamSpec, Schema  # noqa: E402

_INNER_ESTIMATORS = (("best_estimator_", "estimator"), ("estimator_", "base_estimator"),
                     ("regressor_", "regressor"), ("final_estimator_", "final_estimator"))


def find_augmenters(estimator: Any) -> list[Any]:
    """Every FeatureStoreAugmenter inside an estimator (Pipeline, ColumnTransformer, FeatureUnion ...)."""
    from fs_augment.augmenter import FeatureStoreAugmenter

    found: list[Any] = []
    seen: set[int] = set()

    def walk(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, FeatureStoreAugmenter):
            found.append(obj)
            return
        # the fitted copies where a meta-estimator keeps them (ColumnTransformer.transformers_,
        # GridSearchCV.best_estimator_, ...), the templates only when there are no fitted ones
        lists = [getattr(obj, "steps", None), getattr(obj, "transformer_list", None),
                 getattr(obj, "transformers_", None) or getattr(obj, "transformers", None)]
        for items in lists:
            for item in items or ():
                if isinstance(item, tuple) and len(item) >= 2:
                    walk(item[1])
        for fitted, template in _INNER_ESTIMATORS:
            inner = getattr(obj, fitted, None)
            if inner is None:
                inner = getattr(obj, template, None)
            if inner is not None and hasattr(inner, "get_params"):
                walk(inner)

    walk(estimator)
    return found


def _restore_modes(augmenters: list[Any], modes: list[str]) -> None:
    for augmenter, mode in zip(augmenters, modes, strict=True):
        augmenter.set_params(mode=mode)


def set_lookup_mode(estimator: Any, mode: str) -> None:
    """Set ``mode`` on every augmenter inside ``estimator`` (``online``, ``batch`` or ``auto``)."""
    for augmenter in find_augmenters(estimator):
        augmenter.set_params(mode=mode)


class AugmentedModel(mlflow.pyfunc.PythonModel):
    """The pyfunc model: a fitted pipeline whose augmenters look features up online.

    ``model_config`` keys: ``lookup_mode`` (``online`` by default, ``batch``
    for batch scoring) and ``predict_method``. A request may pass
    ``params={"predict_method": "predict_proba"}``.
    """

    def load_context(self, context: Any) -> None:
        with open(context.artifacts[_PIPELINE], "rb") as fh:
            self.pipeline = pickle.load(fh)
        config = dict(getattr(context, "model_config", None) or {})
        self.lookup_mode = (_MODE_WHILE_LOGGING.get() or os.environ.get(SERVING_MODE_VARIABLE)
                            or config.get("lookup_mode", "online"))
        if self.lookup_mode not in ("online", "batch"):
            raise FsAugmentError(f"lookup_mode must be 'online' or 'batch', got {self.lookup_mode!r}")
        self.predict_method = config.get("predict_method", "predict")
        set_lookup_mode(self.pipeline, self.lookup_mode)
        augmenters = find_augmenters(self.pipeline)
        self.timestamp_columns = [a.recipe_.timestamp_column for a in augmenters if a.recipe_.timestamp_column]

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        method = (params or {}).get("predict_method") or self.predict_method
        if method not in _PREDICT_METHODS:
            raise FsAugmentError(f"predict_method must be one of {', '.join(_PREDICT_METHODS)}, got {method!r}")
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        for column in self.timestamp_columns:
            if column not in frame.columns:  # serving reads the latest values: the time is now
                frame = frame.assign(**{column: pd.Timestamp.now(tz="UTC")})
        return getattr(self.pipeline, method)(frame)


def _manifest(augmenters: list[Any]) -> dict[str, Any]:
    items = []
    for augmenter in augmenters:
        recipe = augmenter.recipe_
        sep = augmenter.feature_name_separator
        items.append({
            "fitted_env": augmenter.fitted_env_,
            "pinned_env": augmenter.env,
            "timestamp_column": recipe.timestamp_column,
            "entity_columns": list(recipe.entity_columns),
            "namespaces": [
                {
                    "namespace": g.namespace,
                    "entity_column": g.entity_column,
                    "features": [
                        {
                            "feature": f,
                            "output_name": f"{g.namespace}{sep}{f}",
                            "dtype": augmenter.feature_dtypes_[f"{g.namespace}{sep}{f}"],
                            "default": g.defaults.get(f),
                        }
                        for f in g.features
                    ],
                    "max_age_seconds": g.max_age,
                }
                for g in recipe.groups
            ],
            "output_columns": list(augmenter.get_feature_names_out()),
        })
    return {"augmenters": items}


def _input_columns(augmenters: list[Any]) -> list[str]:
    columns: dict[str, None] = {}
    for augmenter in augmenters:
        for column in augmenter.feature_names_in_:
            columns[str(column)] = None
    return list(columns)


@contextmanager
def _batch_validation() -> Iterator[None]:
    """Models loaded in this thread inside the block look features up in batch (logging validates with them)."""
    token = _MODE_WHILE_LOGGING.set("batch")
    try:
        yield
    finally:
        _MODE_WHILE_LOGGING.reset(token)


def log_model(
    pipeline: Any,
    name: str,
    *,
    input_example: pd.DataFrame | None = None,
    registered_model_name: str | None = None,
    predict_method: str = "predict",
    pip_requirements: list[str] | None = None,
    **kwargs: Any,
) -> Any:
    """Log a fitted pipeline as a pyfunc model that serves with online lookups.

    Parameters
    ----------
    pipeline : estimator
        A fitted scikit-learn estimator holding one or more fitted
        :class:`~fs_augment.FeatureStoreAugmenter`.
    name : str
        The model's name within the run.
    input_example : DataFrame, optional
        A few rows of entity keys. It is validated (and the output signature
        inferred) with **batch** lookups on the logging machine.
    registered_model_name : str, optional
        Register the model under this name.
    predict_method : {"predict", "predict_proba", "transform"}
        What the served model returns by default.
    pip_requirements : list of str, optional
        Requirements recorded with the model; by default the installed
        versions of fs_augment, scikit-learn, pandas and redis (inference of
        requirements is slow and is not used).
    **kwargs
        Passed on to :func:`mlflow.pyfunc.log_model`.

    Returns
    -------
    mlflow.models.model.ModelInfo

    Examples
    --------
    >>> info = fs_augment.mlflow.log_model(pipeline, "model", input_example=spine.head())  # doctest: +SKIP
    >>> fs_augment.mlflow.load_model(info.model_uri).predict(spine.head())  # doctest: +SKIP
    """
    augmenters = find_augmenters(pipeline)
    if not augmenters:
        raise FsAugmentError("the pipeline holds no FeatureStoreAugmenter; log it with mlflow.sklearn instead")
    for augmenter in augmenters:
        if not hasattr(augmenter, "feature_columns_"):
            raise FsAugmentError("fit the pipeline before logging it: an augmenter in it is not fitted")
    if predict_method not in _PREDICT_METHODS:
        raise FsAugmentError(f"predict_method must be one of {', '.join(_PREDICT_METHODS)}, got {predict_method!r}")

    # a served model fills in a missing timestamp column with "now" (AugmentedModel.predict): optional input
    times = {a.recipe_.timestamp_column for a in augmenters if a.recipe_.timestamp_column}
    inputs = Schema([ColSpec(AnyType(), column, required=column not in times)
                     for column in _input_columns(augmenters)])
    output_schema = None
    for augmenter in augmenters:
        if augmenter.env is not None or augmenter.config_dir is not None:
            warnings.warn(
                f"an augmenter of this pipeline is pinned to env={augmenter.env!r}, "
                f"config_dir={augmenter.config_dir!r}: the served model will read that environment wherever it "
                "runs; leave env and config_dir unset to choose the environment with FS_AUGMENT_ENV where it is "
                "served", UserWarning, stacklevel=2)
    modes = [augmenter.mode for augmenter in augmenters]
    if input_example is not None:
        set_lookup_mode(pipeline, "batch")
        try:
            prediction = getattr(pipeline, predict_method)(input_example)
        finally:
            _restore_modes(augmenters, modes)
        # only the output schema is inferred: the input schema is the entity columns above
        with warnings.catch_warnings():  # class labels are ints; the hint about missing ints is moot here
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            output_schema = mlflow.models.infer_signature(pd.DataFrame({"_": [0]}), prediction).outputs
    signature = ModelSignature(
        inputs=inputs,
        outputs=output_schema,
        params=ParamSchema([ParamSpec("predict_method", "string", predict_method)]),
    )

    manifest = _manifest(augmenters)
    stats = {a.recipe_.source or f"augmenter_{i}": a.feature_stats_ for i, a in enumerate(augmenters)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        set_lookup_mode(pipeline, "auto")  # the pickle leaves the mode to where it is loaded
        try:
            with open(folder / "pipeline.pkl", "wb") as fh:
                pickle.dump(pipeline, fh, protocol=pickle.HIGHEST_PROTOCOL)
        finally:
            _restore_modes(augmenters, modes)
        recipe_text = "\n---\n".join(a.recipe_.to_yaml() for a in augmenters)
        (folder / "recipe.yaml").write_text(recipe_text, encoding="utf-8")
        (folder / "feature_manifest.json").write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
        (folder / "feature_stats.json").write_text(json.dumps(stats, indent=2, default=str), encoding="utf-8")
        with _batch_validation():
            info = mlflow.pyfunc.log_model(
                name=name,
                python_model=AugmentedModel(),
                artifacts={
                    _PIPELINE: str(folder / "pipeline.pkl"),
                    _RECIPE: str(folder / "recipe.yaml"),
                    _MANIFEST: str(folder / "feature_manifest.json"),
                    _STATS: str(folder / "feature_stats.json"),
                },
                signature=signature,
                input_example=input_example,
                registered_model_name=registered_model_name,
                pip_requirements=pip_requirements if pip_requirements is not None else _requirements(),
                model_config={"lookup_mode": "online", "predict_method": predict_method},
                **kwargs,
            )
    features = [name for a in augmenters for name in a.recipe_.qualified_names]
    tags = {
        "fs_augment.features": ",".join(features),
        "fs_augment.trained_envs": ",".join(sorted({a.fitted_env_ for a in augmenters})),
    }
    if info.run_id:
        client = mlflow.MlflowClient()
        for key, value in tags.items():
            client.set_tag(info.run_id, key, value[:5000])
    return info


def load_model(model_uri: str, *, mode: str = "online") -> Any:
    """Load a model logged by :func:`log_model` as a pyfunc model.

    Parameters
    ----------
    model_uri : str
        ``runs:/...``, ``models:/...`` or a local folder.
    mode : {"online", "batch"}
        ``online`` (the default, as served) or ``batch`` for batch scoring.
    """
    return mlflow.pyfunc.load_model(model_uri, model_config={"lookup_mode": mode})


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for package in ("fs_augment", "scikit-learn", "pandas", "numpy", "pyarrow", "redis", "duckdb", "orjson",
                    "pyyaml", "mlflow"):
        try:
            out.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return out
