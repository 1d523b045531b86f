"""``fs-augment``: the command line, a thin layer over the library.

Every command's work is done by a library function (:mod:`fs_augment.demo`,
:mod:`fs_augment.training`, :mod:`fs_augment.checks`,
:mod:`fs_augment.writer`); this module parses arguments and prints.

Exit codes: 0 success, 1 an error (printed as one line ``error: ...`` on
stderr; ``--debug`` shows the traceback) or a failed ``check``, 2 a usage error.

Examples
--------
>>> main(["--version"])  # doctest: +ELLIPSIS
fs-augment ...
0
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from fs_augment import __version__
from fs_augment.errors import FsAugmentError

__all__ = ["build_parser", "main"]

_DEMO_DIR = "./fs_augment_demo"


# --- output -------------------------------------------------------------------

def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as a plain text table with a header line.

    Examples
    --------
    >>> print(format_table(["feature", "value"], [["user_demographics:age", 34]]))
    feature                value
    ---------------------  -----
    user_demographics:age  34
    """
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _show_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value) if isinstance(value, str) and value.strip() != value else str(value)


class _QuietPickleWarning(logging.Filter):
    """Drop MLflow's note that a python_model object is cloudpickled (fs_augment's model is a class)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "python_model" not in record.getMessage()


def _quiet_mlflow() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.getLogger("mlflow.pyfunc").addFilter(_QuietPickleWarning())


def _print_training(result: Any) -> None:
    from fs_augment.config import mask_url

    print("metrics (held-out split):")
    for name, value in result.metrics.items():
        print(f"  {name:<10} {value:.4f}")
    print(f"model:    {result.model_uri}  (run {result.run_id})")
    print(f"tracking: {mask_url(result.tracking_uri)}")
    if result.as_of is not None:
        print(f"as of:    {result.as_of}  (rebuild the training set with --as-of {result.as_of})")
    print("serve it (the features are looked up online, in the environment it runs in):")
    print(f"  {result.serve_command}")
    print("then ask it for a prediction:")
    print(f"  {result.curl_command}")


# --- commands -------------------------------------------------------------------

def _quickstart(args: argparse.Namespace) -> int:
    from fs_augment.demo import write_demo_data

    project = write_demo_data(args.dir)
    print(f"demo project written to {project.root}")
    print(f"  data lake:     {project.data_lake}")
    print(f"  feature store: {project.features}  (environment 'local', no server)")
    print(f"  recipe:        {project.recipe}")
    print(f"  config:        {project.config_dir}")
    if args.no_train:
        print(f"train it with: fs-augment train {project.recipe} --env local --config-dir {project.config_dir}")
        return 0
    from fs_augment.training import train

    _quiet_mlflow()
    result = train(project.recipe, env="local", config_dir=project.config_dir, tracking_uri=args.tracking_uri,
                   experiment=args.experiment, progress=not args.no_progress)
    _print_training(result)
    print("look up one entity's features:")
    print(f"  fs-augment lookup {project.recipe} --env local --config-dir {project.config_dir} "
          "--entity user_id=user1 --entity product_id=prod1")
    return 0


def _train(args: argparse.Namespace) -> int:
    from fs_augment.training import train

    _quiet_mlflow()
    result = train(args.recipe, env=args.env, config_dir=args.config_dir, tracking_uri=args.tracking_uri,
                   experiment=args.experiment, progress=not args.no_progress, as_of=args.as_of)
    _print_training(result)
    return 0


def _lookup(args: argparse.Namespace) -> int:
    from fs_augment.checks import lookup_features

    rows = lookup_features(args.recipe, dict(args.entity), env=args.env, config_dir=args.config_dir)
    table = [[r.feature, _show_value(r.value), ("yes" if r.found else "no") + (f" ({r.note})" if r.note else "")]
             for r in rows]
    print(format_table(["feature", "value", "found"], table))
    return 0


def _skew(args: argparse.Namespace) -> int:
    from fs_augment.skew import check_skew

    table = check_skew(args.recipe, env=args.env, config_dir=args.config_dir, sample=args.sample)
    records: list[Any] = list(table.itertuples(index=False))  # named tuples of the SKEW_COLUMNS
    rows = [[r.feature, r.sampled, r.compared, r.mismatched, r.missing_online, r.lagging,
             "-" if r.mismatch_rate != r.mismatch_rate else f"{r.mismatch_rate:.4f}", ", ".join(r.examples)]
            for r in records]
    print(format_table(["feature", "sampled", "compared", "mismatched", "missing online", "lagging",
                        "mismatch rate", "examples"], rows))
    over = table[table["mismatch_rate"] > args.max_skew]
    empty = int((table["compared"] == 0).sum())
    if empty:
        print(f"warning: {empty} of {len(table)} features had nothing to compare (no offline rows, or none "
              "online)", file=sys.stderr)
    if len(over):
        print(f"error: {len(over)} of {len(table)} features disagree online/offline beyond a mismatch rate of "
              f"{args.max_skew:g}: {', '.join(over['feature'])}", file=sys.stderr)
        return 1
    print(f"all {len(table)} features agree within a mismatch rate of {args.max_skew:g}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from fs_augment.checks import run_checks

    if args.skew:
        return _skew(args)

    rows = run_checks(args.recipe, env=args.env, config_dir=args.config_dir, sample=args.sample,
                      min_coverage=args.min_coverage, max_staleness=args.max_staleness)
    print(format_table(["check", "target", "status", "detail"], [[r.check, r.target, r.status, r.detail]
                                                                 for r in rows]))
    failed = sum(r.failed for r in rows)
    if failed:
        print(f"error: {failed} of {len(rows)} checks failed", file=sys.stderr)
        return 1
    print(f"all {len(rows)} checks passed")
    return 0


def _report(args: argparse.Namespace) -> int:
    from fs_augment.report import write_report

    _quiet_mlflow()
    path = write_report(args.model_uri, args.output, env=args.env, config_dir=args.config_dir, sample=args.sample)
    print(f"report written to {path}")
    return 0


def _config_show(args: argparse.Namespace) -> int:
    import yaml

    from fs_augment.config import load_config

    config = load_config(args.env, args.config_dir)
    print(f"# environment {config.env!r}, from {config.config_dir} (secrets masked)")
    print(yaml.safe_dump(config.to_dict(mask_secrets=True), sort_keys=False, allow_unicode=True), end="")
    return 0


def _materialize(args: argparse.Namespace) -> int:
    from fs_augment.writer import materialize

    written = materialize(args.recipe, env=args.env, config_dir=args.config_dir, progress=not args.no_progress)
    print(format_table(["namespace", "keys written"], sorted(written.items())))
    return 0


# --- parser ---------------------------------------------------------------------------

def _entity(text: str) -> tuple[str, str]:
    column, sep, value = text.partition("=")
    if not sep or not column.strip():
        raise argparse.ArgumentTypeError(f"expected COLUMN=VALUE (e.g. user_id=user123), got {text!r}")
    return column.strip(), value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _duration(text: str) -> float:
    from fs_augment.recipe import _parse_duration

    try:
        seconds = _parse_duration(text.strip(), "--max-staleness")
    except FsAugmentError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    assert seconds is not None
    return seconds


def build_parser() -> argparse.ArgumentParser:
    """The ``fs-augment`` argument parser (every command has ``--help``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")
    environment = argparse.ArgumentParser(add_help=False)
    environment.add_argument("--env", help="environment name (default: $FS_AUGMENT_ENV, else local)")
    environment.add_argument("--config-dir", help="config folder (default: $FS_AUGMENT_CONFIG_DIR, else ./config)")
    tracking = argparse.ArgumentParser(add_help=False)
    tracking.add_argument("--tracking-uri",
                          help="MLflow tracking store (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)")
    tracking.add_argument("--experiment", default="fs_augment", help="MLflow experiment (default: %(default)s)")
    tracking.add_argument("--no-progress", action="store_true", help="no progress bars")

    parser = argparse.ArgumentParser(
        prog="fs-augment",
        description="Feature-store augmentation for scikit-learn: train, check and look up recipes.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"fs-augment {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("quickstart", parents=[common, tracking], help="write demo data and train on it (no server)",
                       description="Write a demo project (data lake, feature store, config, recipe) and train "
                                   "the recipe on it with the embedded 'local' environment. Rerunning overwrites "
                                   "the demo files identically.")
    p.add_argument("--dir", default=_DEMO_DIR, help="where to write the demo project (default: %(default)s)")
    p.add_argument("--no-train", action="store_true", help="only write the demo project")
    p.set_defaults(handler=_quickstart)

    p = sub.add_parser("train", parents=[common, environment, tracking], help="train, evaluate and log a recipe",
                       description="Load the spine with the recipe's loader SQL, augment it from the feature store "
                                   "(point in time when it has times), fit the recipe's model, evaluate it on a "
                                   "held-out split and log it with MLflow.")
    p.add_argument("recipe", help="recipe YAML file with loader and model sections")
    p.add_argument("--as-of", default=None, metavar="TIME",
                   help="read the offline store as of this ISO 8601 time, e.g. a logged run's fs_augment.as_of to "
                        "rebuild its training set (default: when the job starts, if the environment has an "
                        "offline store)")
    p.set_defaults(handler=_train)

    p = sub.add_parser("lookup", parents=[common, environment], help="one online lookup of a recipe's features",
                       description="Look up the recipe's features for one entity row in the online store.")
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument("--entity", action="append", type=_entity, required=True, metavar="COLUMN=VALUE",
                   help="an entity key, e.g. user_id=user123 (repeat for several entity columns)")
    p.set_defaults(handler=_lookup)

    p = sub.add_parser("check", parents=[common, environment], help="check a store against a recipe",
                       description="Check the environment's feature store against a recipe: connection, every "
                                   "feature present online and offline, coverage over a sample of the spine, "
                                   "online/offline type consistency and freshness. Exits 1 if a check fails. With "
                                   "--skew, compares online values with the latest offline rows instead and "
                                   "exits 1 when a feature's mismatch rate exceeds --max-skew.")
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument("--sample", type=_positive, default=1000,
                   help="spine rows (with --skew: offline entities per namespace) to sample (default: %(default)s)")
    p.add_argument("--min-coverage", type=_fraction, default=0.0,
                   help="fail a feature found for a smaller share of the sample (default: %(default)s)")
    p.add_argument("--max-staleness", type=_duration, default=None, metavar="DURATION",
                   help="fail a namespace whose newest offline row is older, e.g. 36h or 7d")
    p.add_argument("--skew", action="store_true",
                   help="instead, compare the online values of a sample of offline entities with their latest "
                        "offline rows, feature by feature")
    p.add_argument("--max-skew", type=_fraction, default=0.0, metavar="RATE",
                   help="with --skew: fail a feature whose mismatch rate exceeds RATE (default: %(default)s)")
    p.set_defaults(handler=_check)

    p = sub.add_parser("report", parents=[common, environment], help="an HTML report of a model's served features",
                       description="Write one self-contained HTML page: the training statistics a logged model "
                                   "carries against the features served online for a sample of entities "
                                   "(distributions, missing rates, online/offline skew, freshness), worst first.")
    p.add_argument("model_uri", help="a model logged by fs_augment.mlflow.log_model (runs:/..., models:/...)")
    p.add_argument("--sample", type=_positive, default=1000, help="entities to sample (default: %(default)s)")
    p.add_argument("-o", "--output", default="report.html", help="the HTML file to write (default: %(default)s)")
    p.set_defaults(handler=_report)

    p = sub.add_parser("config", parents=[common], help="show configuration",
                       description="Configuration commands.")
    config_sub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    p = config_sub.add_parser("show", parents=[common, environment], help="the merged config, secrets masked",
                              description="Print the merged configuration of an environment as YAML, with "
                                          "passwords masked.")
    p.set_defaults(handler=_config_show)

    p = sub.add_parser("materialize", parents=[common, environment],
                       help="copy the latest offline rows into the online store",
                       description="Copy each namespace's latest offline rows into the environment's online "
                                   "(Redis) store.")
    p.add_argument("recipe", help="recipe YAML file (its namespaces and features are copied)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_materialize)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``fs-augment`` with ``argv`` (default: the process's arguments) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else 2
    debug = getattr(args, "debug", False)
    if debug:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("fs_augment").setLevel(logging.DEBUG)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except FsAugmentError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an unexpected library error: still one line, unless --debug
        if debug:
            traceback.print_exc()
        print(f"error: unexpected {type(exc).__name__}: {_one_line(exc)} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
