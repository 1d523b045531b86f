"""Log a fitted pipeline with MLflow and serve it with online lookups.

``log_model`` logs a **pyfunc** model whose load step unpickles the fitted
pipeline and switches every :class:`~fs_augment.FeatureStoreAugmenter` inside
it to online lookups, so ``mlflow models serve`` answers a request of entity
keys with the features of the serving environment (``FS_AUGMENT_ENV``), read
live, through the same code the pipeline was trained with.

The logged model is self-contained: it ships a wheel of the fs_augment code
that pickled the pipeline (``artifacts/wheels/fs_augment-<version>-1-py3-none-any.whl``),
and its ``requirements.txt`` says where to find it (``--find-links
artifacts/wheels``, which pip reads from the requirements file's folder
wherever it runs) beside ``fs_augment==<version>`` and the installed versions
of the libraries the pipeline needs. So ``mlflow models serve
--env-manager virtualenv``, ``mlflow models build-docker`` or ``pip install
-r requirements.txt`` rebuild an environment that loads it, with nothing but
a package index for the libraries; the wheel's build number makes pip prefer
it to an index's file of the same version.

A wheel rather than MLflow's ``code_paths``: pip installs it as the package
it is, with its version, its declared dependencies and its console script, and
where fs_augment is already installed (``--env-manager local`` serving,
loading in process) nothing changes. ``code_paths`` puts a copy of the package
first on ``sys.path`` when the model loads: a process that imported
fs_augment before keeps its own copy, one that did not imports the model's, so
which code runs would depend on import order, and the dependencies would have
to be listed by hand. A path to the wheel in ``requirements.txt`` (what
MLflow's ``add_libraries_to_model`` writes) is read from the folder pip runs
in, which is not the model's in the image ``build-docker`` makes.

mlflow is imported here only; ``import fs_augment`` never imports it.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import pandas as pd

from fs_augment._wheel import build_wheel
from fs_augment.errors import ParameterError, require
from fs_augment.keys import format_event_time

__all__ = ["AugmentedModel", "find_augmenters", "load_model", "log_model", "set_lookup_mode"]

#: Overrides the lookup mode a loaded model uses (``online`` or ``batch``), read where the model is loaded.
SERVING_MODE_VARIABLE = "FS_AUGMENT_SERVING_MODE"
#: The lookup mode of models loaded while :func:`log_model` validates its input example (this thread only).
_MODE_WHILE_LOGGING: ContextVar[str | None] = ContextVar("fs_augment_mode_while_logging", default=None)
_PIPELINE = "pipeline"
_RECIPE = "recipe"
_MANIFEST = "feature_manifest"
_STATS = "feature_stats"
_WHEELS = "wheels"
#: Where the wheel is, relative to the model's folder (MLflow puts a pyfunc model's artifacts in ``artifacts``).
_WHEELS_FOLDER = "artifacts/wheels"
_PREDICT_METHODS = ("predict", "predict_proba", "transform")
_LOOKUP_MODES = ("online", "batch", "auto")

require("mlflow", "mlflow")  # else an error that names the extra to install
import mlflow  # noqa: E402
from mlflow.models import ModelSignature  # noqa: E402
from mlflow.pyfunc import PythonModel  # noqa: E402
from mlflow.types.schema import AnyType, ColSpec, DataType, ParamSchema, ParamSpec, Schema, TensorSpec  # noqa: E402

#: kind of an input column at fit (fs_augment.dtypes.input_kind) -> its type in the model's signature
_SIGNATURE_TYPES = {"str": "string", "int": "long", "float": "double", "bool": "boolean"}
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
    """Set ``mode`` on every augmenter inside ``estimator`` (``online``, ``batch`` or ``auto``).

    Raises
    ------
    ParameterError
        ``mode`` is none of these (a ``ValueError``).
    """
    if mode not in _LOOKUP_MODES:
        raise ParameterError(f"mode must be one of {', '.join(map(repr, _LOOKUP_MODES))}, got {mode!r}")
    for augmenter in find_augmenters(estimator):
        augmenter.set_params(mode=mode)


class AugmentedModel(PythonModel):
    """The pyfunc model: a fitted pipeline whose augmenters look features up online.

    ``model_config`` keys: ``lookup_mode`` (``online`` by default, ``batch``
    for batch scoring), ``predict_method`` and ``drift`` (true by default: every
    augmenter keeps rolling drift statistics, :meth:`drift`). A request may pass
    ``params={"predict_method": "predict_proba"}``.

    Read the drift statistics of a model loaded in process with
    ``model.unwrap_python_model().drift()``; a served model also publishes them
    under ``drift`` in its monitoring payload (``enable_monitoring``).
    """

    def load_context(self, context: Any) -> None:
        """Unpickle the pipeline and switch its augmenters to the lookup mode (MLflow calls this on load)."""
        with open(context.artifacts[_PIPELINE], "rb") as fh:
            self.pipeline = pickle.load(fh)
        config = dict(getattr(context, "model_config", None) or {})
        self.lookup_mode = (_MODE_WHILE_LOGGING.get() or os.environ.get(SERVING_MODE_VARIABLE)
                            or config.get("lookup_mode", "online"))
        if self.lookup_mode not in ("online", "batch"):
            raise ParameterError(f"lookup_mode must be 'online' or 'batch', got {self.lookup_mode!r}")
        self.predict_method = config.get("predict_method", "predict")
        set_lookup_mode(self.pipeline, self.lookup_mode)
        augmenters = find_augmenters(self.pipeline)
        for augmenter in augmenters:  # a loaded model scores new data: the store as it is, not as of training
            augmenter.__dict__["as_of_"] = None
        self.timestamp_columns = [a.recipe_.timestamp_column for a in augmenters if a.recipe_.timestamp_column]
        watch = config.get("drift", True)
        self.drift_monitors = [a.monitor_drift() for a in augmenters] if watch else []

    def drift(self) -> dict[str, dict[str, Any]]:
        """Serving drift of every output feature since the model loaded (the rolling window).

        Returns
        -------
        dict
            Output column → ``{"rows", "missing_rate", "training_missing_rate", "psi",
            "category_shift"}`` (see :mod:`fs_augment.drift`); empty with ``drift`` off.

        Examples
        --------
        >>> model = fs_augment.mlflow.load_model(uri)  # doctest: +SKIP
        >>> model.predict(requests)  # doctest: +SKIP
        >>> model.unwrap_python_model().drift()["user_demographics__age"]["psi"]  # doctest: +SKIP
        0.02
        """
        out: dict[str, dict[str, Any]] = {}
        for monitor in getattr(self, "drift_monitors", ()):
            out.update(monitor.report())
        return out

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        """The pipeline's ``predict_method`` on a frame of entity keys.

        Parameters
        ----------
        context : mlflow.pyfunc.PythonModelContext
            Unused (the pipeline was loaded by :meth:`load_context`).
        model_input : DataFrame
            Entity keys; a missing timestamp column is filled with now (UTC).
        params : dict, optional
            ``{"predict_method": ...}`` overrides the logged method for this call.

        Returns
        -------
        array or DataFrame
            What the pipeline's method returns.
        """
        method = (params or {}).get("predict_method") or self.predict_method
        if method not in _PREDICT_METHODS:
            raise ParameterError(f"predict_method must be one of {', '.join(_PREDICT_METHODS)}, got {method!r}")
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
        as_of = getattr(augmenter, "as_of_", None)  # absent from augmenters pickled before as_of
        items.append({
            "fitted_env": augmenter.fitted_env_,
            "as_of": None if as_of is None else format_event_time(as_of.value),
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


def _input_schema(augmenters: list[Any]) -> Schema:
    """The served model's input columns, each typed as seen at fit where that is unambiguous.

    Text ids are ``string`` and integer ids ``long``, so ``mlflow models serve``
    can read ``text/csv`` requests (its CSV reader needs every column typed) and
    still casts JSON ids of the other kind (``7`` to a ``string`` column, ``"7"``
    to a ``long`` one). Floats are ``double`` and bools ``boolean``. A column is
    ``any`` where its kind was ambiguous (mixed, integers with missing values
    at fit), where augmenters saw it differently, and for the timestamp column
    (optional: a served model fills it with now), whose times neither JSON nor
    MLflow's CSV reader carry as a type: such a model takes JSON requests only.
    """
    kinds: dict[str, set[str]] = {}
    for augmenter in augmenters:
        seen = getattr(augmenter, "input_kinds_", {})  # absent from augmenters pickled before it was recorded
        for column in augmenter.feature_names_in_:
            kinds.setdefault(str(column), set()).add(seen.get(column, "object"))
    times = {a.recipe_.timestamp_column for a in augmenters if a.recipe_.timestamp_column}
    columns: list[ColSpec | TensorSpec] = []
    for column, seen in kinds.items():
        kind = next(iter(seen)) if len(seen) == 1 and column not in times else "object"
        type_ = DataType[_SIGNATURE_TYPES[kind]] if kind in _SIGNATURE_TYPES else AnyType()
        columns.append(ColSpec(type_, column, required=column not in times))
    return Schema(columns)


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
        Requirements recorded with the model. By default fs_augment at its
        version from the wheel the model ships (``--find-links
        artifacts/wheels``) and the installed versions of the libraries it
        needs (scikit-learn, pandas, numpy, pyarrow, redis, hiredis, duckdb,
        orjson, pyyaml, mlflow, and polars when it is imported); inference of
        requirements is slow and is not used. The wheel is shipped either way.
    **kwargs
        Passed on to :func:`mlflow.pyfunc.log_model`.

    Returns
    -------
    mlflow.models.model.ModelInfo

    Raises
    ------
    ParameterError
        ``pipeline`` holds no fitted augmenter, or ``predict_method`` is not
        one of the three (a ``ValueError``, as scikit-learn raises for bad
        parameters).

    Examples
    --------
    >>> info = fs_augment.mlflow.log_model(pipeline, "model", input_example=spine.head())  # doctest: +SKIP
    >>> fs_augment.mlflow.load_model(info.model_uri).predict(spine.head())  # doctest: +SKIP
    """
    augmenters = find_augmenters(pipeline)
    if not augmenters:
        raise ParameterError("pipeline holds no FeatureStoreAugmenter; log it with mlflow.sklearn instead")
    for augmenter in augmenters:
        if not hasattr(augmenter, "feature_columns_"):
            raise ParameterError("pipeline is not fitted (an augmenter in it is not): fit it before logging it")
    if predict_method not in _PREDICT_METHODS:
        raise ParameterError(f"predict_method must be one of {', '.join(_PREDICT_METHODS)}, got {predict_method!r}")

    inputs = _input_schema(augmenters)
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
        (folder / _WHEELS).mkdir()
        build_wheel(folder / _WHEELS)
        with _batch_validation():
            info = mlflow.pyfunc.log_model(
                name=name,
                python_model=AugmentedModel(),
                artifacts={
                    _PIPELINE: str(folder / "pipeline.pkl"),
                    _RECIPE: str(folder / "recipe.yaml"),
                    _MANIFEST: str(folder / "feature_manifest.json"),
                    _STATS: str(folder / "feature_stats.json"),
                    _WHEELS: str(folder / _WHEELS),
                },
                signature=signature,
                input_example=input_example,
                registered_model_name=registered_model_name,
                pip_requirements=pip_requirements if pip_requirements is not None else _requirements(),
                model_config={"lookup_mode": "online", "predict_method": predict_method, "drift": True},
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
        for key, value in _as_of_params(augmenters).items():
            client.log_param(info.run_id, key, value)
    return info


def _as_of_params(augmenters: list[Any]) -> dict[str, str]:
    """``fs_augment.as_of`` (ISO 8601, UTC) of the augmenters that set one; ``fs_augment.as_of.<i>`` if they differ."""
    times = [(i, getattr(a, "as_of_", None)) for i, a in enumerate(augmenters)]
    texts = {i: format_event_time(t.value) for i, t in times if t is not None}
    if len(set(texts.values())) == 1 and len(texts) == len(augmenters):
        return {"fs_augment.as_of": next(iter(texts.values()))}
    return {f"fs_augment.as_of.{i}": text for i, text in texts.items()}


def load_model(model_uri: str, *, mode: str = "online") -> Any:
    """Load a model logged by :func:`log_model` as a pyfunc model.

    Parameters
    ----------
    model_uri : str
        ``runs:/...``, ``models:/...`` or a local folder.
    mode : {"online", "batch"}
        ``online`` (the default, as served) or ``batch`` for batch scoring.

    Raises
    ------
    ParameterError
        ``mode`` is neither (a ``ValueError``).
    """
    if mode not in ("online", "batch"):
        raise ParameterError(f"mode must be 'online' or 'batch', got {mode!r}")
    return mlflow.pyfunc.load_model(model_uri, model_config={"lookup_mode": mode})


def _requirements() -> list[str]:
    """fs_augment from the shipped wheel, and the installed versions of what it needs."""
    from importlib.metadata import PackageNotFoundError, version

    import fs_augment

    # pip reads a relative --find-links from the requirements file's folder, wherever it runs
    out = [f"--find-links {_WHEELS_FOLDER}", f"fs_augment=={fs_augment.__version__}"]
    packages = ["scikit-learn", "pandas", "numpy", "pyarrow", "redis", "hiredis", "duckdb", "orjson", "pyyaml",
                "mlflow"]
    if "polars" in sys.modules:  # the polars extra: set_output("polars") needs it where the model is served
        packages.append("polars")
    for package in packages:
        try:
            out.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return out
