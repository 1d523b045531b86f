"""``fs-augment``: every command's success path and error paths, in process; the README's first command as a
subprocess of the real console script."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from threadpoolctl import threadpool_limits

from fs_augment.cli import format_table, main
from fs_augment.connections import close_all
from fs_augment.demo import write_demo_data
from fs_augment.keys import feature_key
from tests.support.redis_servers import free_port
from tests.support.stores import redis_host_and_db

COMMANDS = [[], ["quickstart"], ["train"], ["lookup"], ["check"], ["config"], ["config", "show"], ["materialize"]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A small demo project (environment ``local`` in its config folder)."""
    return write_demo_data(tmp_path_factory.mktemp("demo"), users=150, products=30, rows=600)


@pytest.fixture(scope="module")
def tracking(tmp_path_factory) -> str:
    """One MLflow sqlite store for the module's training runs (creating one takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def _fresh_adapters():
    close_all()
    yield
    close_all()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> str:
    """The stderr of a failed command: exactly one line, ``error: ...``."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


def local(demo) -> list[str]:
    return ["--env", "local", "--config-dir", str(demo.config_dir)]


def recipe_variant(demo, folder: Path, name: str, change) -> Path:
    data = yaml.safe_load(demo.recipe.read_text())
    change(data)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def unknown_age(data) -> None:
    data["augmenter"]["features"][0]["features"] = ["age_typo", "country_code"]


@pytest.fixture
def down_config(make_config_dir, demo) -> Path:
    """Environment ``down``: Redis on a closed port (200 ms timeout, no retries), the demo's parquet offline."""
    return make_config_dir(down={
        "feature_store": {"provider": "redis", "connection_timeout": 200, "retry_attempts": 0,
                          "connection_info": {"redis_host": f"127.0.0.1:{free_port()}", "redis_mode": "standalone",
                                              "offline_store_uri": f"file://{demo.features}"}},
        "data_lake": {"uri": f"file://{demo.data_lake}"},
    })


@pytest.fixture
def redis_config(make_config_dir, redis_client, demo) -> Path:
    """Environment ``test``: the suite's Redis database online, the demo's parquet folder offline."""
    host, db = redis_host_and_db(redis_client)
    return make_config_dir(
        base={"feature_store": {"provider": "redis", "connection_timeout": 2000, "retry_attempts": 1}},
        test={"feature_store": {"connection_info": {"redis_host": host, "redis_db": db, "redis_mode": "standalone",
                                                     "offline_store_uri": f"file://{demo.features}"}},
              "data_lake": {"uri": f"file://{demo.data_lake}"}},
    )


# --- the parser --------------------------------------------------------------------------

@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "fs-augment")
def test_every_command_has_help(capsys, command):
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0
    assert out.startswith(f"usage: fs-augment {' '.join(command)}".rstrip())


@pytest.mark.parametrize("argv", [
    [], ["frobnicate"], ["lookup", "r.yaml"], ["lookup", "r.yaml", "--entity", "user_id"],
    ["check", "r.yaml", "--sample", "0"], ["check", "r.yaml", "--max-staleness", "soon"], ["config"],
])
def test_usage_errors_exit_2(capsys, argv):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "usage: fs-augment" in err


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and re.fullmatch(r"fs-augment \d+\.\d+\.\d+\S*\n", out)


def test_format_table_aligns_columns():
    assert format_table(["a", "bb"], [["xyz", 1], [None, "long value"]]).splitlines() == [
        "a    bb", "---  ----------", "xyz  1", "     long value"]


# --- quickstart -------------------------------------------------------------------------------

def test_quickstart_without_training_is_idempotent(capsys, tmp_path):
    target = tmp_path / "demo"
    code, out, _ = run(capsys, "quickstart", "--dir", target, "--no-train")
    assert code == 0 and "fs-augment train" in out
    first = {p: p.read_bytes() for p in target.rglob("*") if p.is_file()}
    assert {p.relative_to(target).as_posix() for p in first} >= {
        "config/base.yaml", "config/local.yaml", "recipes/quickstart.yaml", "local_data_lake/product_views.parquet",
        "local_features/user_demographics.parquet", "local_features/user_purchase_summary.parquet",
        "local_features/product_details.parquet"}
    assert run(capsys, "quickstart", "--dir", target, "--no-train")[0] == 0
    assert {p: p.read_bytes() for p in target.rglob("*") if p.is_file()} == first


def test_quickstart_as_the_readme_runs_it(tmp_path):
    """``fs-augment quickstart`` in a fresh folder, no Redis: a logged model whose pyfunc predicts."""
    script = Path(sys.executable).parent / "fs-augment"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FS_AUGMENT_", "MLFLOW_TRACKING"))}
    env.update(FS_AUGMENT_ENV="local", MLFLOW_DISABLE_TELEMETRY="true", OMP_NUM_THREADS="1")
    done = subprocess.run([str(script), "quickstart", "--dir", str(tmp_path / "demo"), "--no-progress"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    model_uri = re.search(r"^model:\s+(models:/\S+)", done.stdout, re.M).group(1)
    assert re.search(r"roc_auc\s+0\.\d+", done.stdout)
    serve = next(line.strip() for line in done.stdout.splitlines() if "mlflow models serve" in line)
    assert serve.endswith(f"mlflow models serve -m {model_uri} --env-manager local -p 5001")
    assert f"FS_AUGMENT_CONFIG_DIR={tmp_path / 'demo' / 'config'}" in serve
    assert "curl -s http://127.0.0.1:5001/invocations" in done.stdout
    assert (tmp_path / "mlflow.db").is_file()

    predict = (
        "import pandas as pd, fs_augment.mlflow as m\n"
        f"model = m.load_model({model_uri!r})\n"
        "print(model.predict(pd.DataFrame({'user_id': ['user1', 'user2', 'nobody'],"
        " 'product_id': ['prod1', 'prod2', 'prod3']})).tolist())\n"
    )
    env.update(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
               FS_AUGMENT_CONFIG_DIR=str(tmp_path / "demo" / "config"))
    done = subprocess.run([sys.executable, "-c", predict], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"\[[01], [01], [01]\]\n", done.stdout), done.stdout


# --- train --------------------------------------------------------------------------------------

def test_train_prints_metrics_model_and_serve_command(capsys, demo, tracking):
    with threadpool_limits(1):
        code, out, err = run(capsys, "train", demo.recipe, *local(demo), "--tracking-uri", tracking, "--no-progress")
    assert code == 0, err
    assert re.search(r"accuracy\s+0\.\d+", out) and re.search(r"roc_auc\s+0\.\d+", out)
    model_uri = re.search(r"^model:\s+(models:/\S+)", out, re.M).group(1)
    assert f"MLFLOW_TRACKING_URI={tracking} FS_AUGMENT_ENV=local" in out
    assert f"mlflow models serve -m {model_uri} --env-manager local -p 5001" in out
    assert os.environ.get("FS_AUGMENT_ENV") is None  # the training environment does not leak


def test_train_a_regressor_that_cannot_take_missing_values(capsys, demo, tmp_path, tracking):
    recipe = recipe_variant(demo, tmp_path, "ridge", lambda d: d.update(
        model={"class": "sklearn.linear_model.Ridge", "params": {"alpha": 1.0}}))
    code, out, err = run(capsys, "train", recipe, *local(demo), "--tracking-uri", tracking, "--no-progress")
    assert code == 0, err
    assert all(re.search(rf"{name}\s+-?\d+\.\d+", out) for name in ("r2", "rmse", "mae"))


def test_train_refuses_times_as_model_features(capsys, demo, tmp_path):
    recipe = recipe_variant(demo, tmp_path, "times", lambda d: (d["augmenter"].pop("timestamp_column"),
                                                                d["loader"].pop("timestamp_column")))
    code, _, err = run(capsys, "train", recipe, *local(demo))
    assert code == 1
    assert "column 'event_timestamp' of times" in one_error_line(err)


def test_train_rejects_a_model_that_is_not_an_estimator(capsys, demo, tmp_path):
    recipe = recipe_variant(demo, tmp_path, "bad_model", lambda d: d["model"].update({"class": "collections.Counter"}))
    code, _, err = run(capsys, "train", recipe, *local(demo))
    assert code == 1
    assert "collections.Counter' is not a scikit-learn estimator" in one_error_line(err)


def test_train_unreachable_store(capsys, demo, tmp_path, make_config_dir):
    def latest_values(data):  # without a timestamp and without an offline store the training lookup reads online
        del data["augmenter"]["timestamp_column"]

    recipe = recipe_variant(demo, tmp_path, "latest", latest_values)
    online_only = make_config_dir(down={
        "feature_store": {"provider": "redis", "connection_timeout": 200, "retry_attempts": 0,
                          "connection_info": {"redis_host": f"127.0.0.1:{free_port()}", "redis_mode": "standalone"}},
        "data_lake": {"uri": f"file://{demo.data_lake}"},
    })
    code, _, err = run(capsys, "train", recipe, "--env", "down", "--config-dir", online_only, "--no-progress")
    assert code == 1
    line = one_error_line(err)
    assert "127.0.0.1:" in line and "'down'" in line


def test_train_reads_the_offline_store_as_of_its_start_and_prints_it(capsys, demo, tmp_path, down_config, tracking):
    def latest_values(data):
        del data["augmenter"]["timestamp_column"]

    recipe = recipe_variant(demo, tmp_path, "latest", latest_values)
    code, out, err = run(capsys, "train", recipe, "--env", "down", "--config-dir", down_config, "--no-progress",
                         "--tracking-uri", tracking, "--as-of", "2030-01-01T00:00:00Z")
    assert code == 0, err  # the online store is down: every training lookup read the offline store
    assert re.search(r"^as of:\s+2030-01-01T00:00:00Z", out, re.M), out
    code, _, err = run(capsys, "train", recipe, *local(demo), "--as-of", "next tuesday")
    assert code == 1 and "as_of must be a datetime or ISO 8601 text" in one_error_line(err)


# --- lookup --------------------------------------------------------------------------------------

def test_lookup_prints_each_feature_value_and_whether_found(capsys, demo):
    code, out, _ = run(capsys, "lookup", demo.recipe, *local(demo), "--entity", "user_id=user1",
                       "--entity", "product_id=nosuchproduct")
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert list(rows) == ["user_demographics:age", "user_demographics:country_code", "user_demographics:gender",
                          "user_purchase_summary:ltv", "user_purchase_summary:total_purchase_count",
                          "product_details:price", "product_details:category", "product_details:brand"]
    assert rows["user_demographics:age"][-1] == "yes" and rows["user_demographics:age"][1].isdigit()
    assert rows["product_details:price"][1:] == ["-", "no"]


def test_lookup_unknown_entity_column(capsys, demo):
    code, _, err = run(capsys, "lookup", demo.recipe, *local(demo), "--entity", "userid=user1")
    assert code == 1
    assert "userid is not an entity column" in one_error_line(err)


def test_lookup_unknown_feature(capsys, demo, tmp_path):
    recipe = recipe_variant(demo, tmp_path, "typo", unknown_age)
    code, _, err = run(capsys, "lookup", recipe, *local(demo), "--entity", "user_id=user1")
    assert code == 1
    line = one_error_line(err)
    assert "'age_typo'" in line and "age, country_code, gender" in line


def test_lookup_unreachable_store(capsys, demo, down_config):
    code, _, err = run(capsys, "lookup", demo.recipe, "--env", "down", "--config-dir", down_config,
                       "--entity", "user_id=user1")
    assert code == 1
    assert "127.0.0.1:" in one_error_line(err)


# --- errors shared by every command -------------------------------------------------------------------

@pytest.mark.parametrize("command", [["train"], ["lookup", "--entity", "user_id=1"], ["check"], ["materialize"]])
def test_missing_recipe(capsys, demo, tmp_path, command):
    missing = tmp_path / "nope.yaml"
    code, _, err = run(capsys, command[0], missing, *command[1:], *local(demo))
    assert code == 1
    assert f"recipe {missing} cannot be read" in one_error_line(err)


@pytest.mark.parametrize("command", [["train", "R"], ["lookup", "R", "--entity", "user_id=1"], ["check", "R"],
                                     ["materialize", "R"], ["config", "show"]])
def test_bad_environment_names_the_environments(capsys, demo, command):
    argv = [str(demo.recipe) if a == "R" else a for a in command]
    code, _, err = run(capsys, *argv, "--env", "nosuch", "--config-dir", demo.config_dir)
    assert code == 1
    line = one_error_line(err)
    assert "environment 'nosuch'" in line and "environments in" in line and "local" in line


def test_debug_shows_the_traceback(capsys, demo, tmp_path):
    code, _, err = run(capsys, "--debug", "check", tmp_path / "nope.yaml", *local(demo))
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1].startswith("error: recipe")


# --- check ----------------------------------------------------------------------------------------

def check_rows(out: str) -> dict[tuple[str, str], str]:
    """``(check, target) -> status`` from the table ``check`` prints (columns found from its header)."""
    lines = out.splitlines()
    header = lines[0]
    starts = [header.index(name) for name in ("check", "target", "status", "detail")]
    rows = {}
    for line in lines[2:]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        if cells[2] in ("PASS", "FAIL", "WARN", "SKIP"):
            rows[cells[0], cells[1]] = cells[2]
    return rows


def test_check_passes_on_the_demo_store(capsys, demo):
    code, out, err = run(capsys, "check", demo.recipe, *local(demo), "--sample", "200")
    assert code == 0, out + err
    rows = check_rows(out)
    assert {check for check, _ in rows} == {"connection", "online", "offline", "coverage", "type", "values",
                                            "freshness", "event times"}
    assert set(rows.values()) == {"PASS"}
    assert rows["type", "user_demographics:age"] == "PASS"
    assert out.strip().endswith("checks passed")


def test_check_fails_on_stale_data(capsys, demo):
    code, out, err = run(capsys, "check", demo.recipe, *local(demo), "--max-staleness", "30d")
    assert code == 1
    assert check_rows(out)["freshness", "product_details"] == "FAIL"
    assert re.fullmatch(r"error: \d+ of \d+ checks failed", one_error_line(err))


def test_check_reports_event_times_and_what_max_age_would_answer_as_missing(capsys, demo, tmp_path):
    recipe = yaml.safe_load(Path(demo.recipe).read_text())
    ages = {"user_demographics": "100000d", "product_details": "30d"}  # demo data: newest rows over 30 days old
    for group in recipe["augmenter"]["features"]:
        if group["feature_namespace"] in ages:
            group["max_age"] = ages[group["feature_namespace"]]
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    code, out, err = run(capsys, "check", path, *local(demo), "--sample", "50")
    assert code == 0, out + err
    lines = {line.split()[2]: line for line in out.splitlines() if line.startswith("event times")}
    assert "older than max_age 100000d" in lines["user_demographics"] and " 0 (0%)" in lines["user_demographics"]
    assert "median" in lines["user_demographics"] and "p95" in lines["user_demographics"]
    assert check_rows(out)["event times", "product_details"] == "WARN"  # every sampled product is stale
    assert "(100%) older than max_age 30d" in lines["product_details"]


def test_check_fails_when_a_feature_is_absent(capsys, make_config_dir, tmp_path):
    features = tmp_path / "features"
    features.mkdir()
    pd.DataFrame({"user_id": ["u1", "u2"], "age": [30, 41]}).to_parquet(features / "user_demographics.parquet")
    config_dir = make_config_dir(local={"feature_store": {
        "provider": "local", "connection_info": {"offline_store_uri": f"file://{features}"}}})
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"augmenter": {"features": [
        {"feature_namespace": "user_demographics", "features": ["age", "gender"]}]}}))
    code, out, _ = run(capsys, "check", recipe, "--env", "local", "--config-dir", config_dir)
    assert code == 1
    rows = check_rows(out)
    assert rows["online", "user_demographics:gender"] == "FAIL"
    assert rows["offline", "user_demographics:gender"] == "FAIL"
    assert rows["online", "user_demographics:age"] == "PASS"
    assert rows["coverage", "user_demographics:age"] == "PASS"
    assert "the namespace has: age" in out


def test_check_fails_when_online_and_offline_types_differ(capsys, make_config_dir, redis_client, tmp_path):
    features = tmp_path / "features"
    features.mkdir()
    pd.DataFrame({"user_id": ["u1", "u2"], "event_timestamp": pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True),
                  "age": [30, 41], "country_code": ["KR", "US"]}).to_parquet(features / "user_demographics.parquet")
    for user, age, country in (("u1", "abc", "KR"), ("u2", "forty", "US")):  # age written by hand, as text
        redis_client.set(feature_key("user_demographics", "age", user), age)
        redis_client.set(feature_key("user_demographics", "country_code", user), country)
    host, db = redis_host_and_db(redis_client)
    config_dir = make_config_dir(test={"feature_store": {"provider": "redis", "connection_info": {
        "redis_host": host, "redis_db": db, "redis_mode": "standalone", "offline_store_uri": f"file://{features}"}}})
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"augmenter": {"features": [
        {"feature_namespace": "user_demographics", "features": ["age", "country_code"]}]}}))
    code, out, _ = run(capsys, "check", recipe, "--env", "test", "--config-dir", config_dir)
    assert code == 1
    rows = check_rows(out)
    assert rows["type", "user_demographics:age"] == "FAIL"
    assert "online str, offline int: they differ" in out
    assert rows["type", "user_demographics:country_code"] == "PASS"
    assert rows["coverage", "user_demographics:age"] == "PASS"


def test_check_unknown_feature(capsys, demo, tmp_path):
    recipe = recipe_variant(demo, tmp_path, "typo", unknown_age)
    code, out, _ = run(capsys, "check", recipe, *local(demo), "--sample", "50")
    assert code == 1
    assert check_rows(out)["online", "user_demographics:age_typo"] == "FAIL"


def test_check_unreachable_store(capsys, demo, down_config):
    code, out, err = run(capsys, "check", demo.recipe, "--env", "down", "--config-dir", down_config)
    assert code == 1
    (check, target), status = next(iter(check_rows(out).items()))
    assert (check, status) == ("connection", "FAIL") and "127.0.0.1:" in target
    assert len(check_rows(out)) == 1
    one_error_line(err)


# --- config show -----------------------------------------------------------------------------------

def test_config_show_masks_secrets(capsys, make_config_dir, monkeypatch):
    monkeypatch.setenv("TEST_REDIS_PASSWORD", "hunter2-secret")
    config_dir = make_config_dir(
        base={"feature_store": {"provider": "redis"}},
        dev={"feature_store": {"connection_info": {"redis_password": "${TEST_REDIS_PASSWORD}"}}},
    )
    code, out, _ = run(capsys, "config", "show", "--env", "dev", "--config-dir", config_dir)
    assert code == 0
    assert "hunter2" not in out
    shown = yaml.safe_load(out)
    assert shown["feature_store"]["connection_info"]["redis_password"] == "***"
    assert shown["feature_store"]["provider"] == "redis"


def test_config_show_uses_fs_augment_env(capsys, demo, monkeypatch):
    monkeypatch.setenv("FS_AUGMENT_ENV", "local")
    code, out, _ = run(capsys, "config", "show", "--config-dir", demo.config_dir)
    assert code == 0
    assert yaml.safe_load(out)["data_lake"] == {"uri": "file://./local_data_lake"}
    assert out.startswith("# environment 'local'")


# --- materialize ------------------------------------------------------------------------------------

def test_materialize_then_lookup_and_check_against_redis(capsys, demo, redis_config, redis_client):
    env = ["--env", "test", "--config-dir", str(redis_config)]
    code, out, err = run(capsys, "materialize", demo.recipe, *env, "--no-progress")
    assert code == 0, err
    written = {line.split()[0]: int(line.split()[1]) for line in out.splitlines()[2:]}
    assert set(written) == {"user_demographics", "user_purchase_summary", "product_details"}
    assert all(n > 0 for n in written.values())
    assert redis_client.get(feature_key("product_details", "category", "prod1")) is not None

    code, out, _ = run(capsys, "lookup", demo.recipe, *env, "--entity", "user_id=user2", "--entity", "product_id=prod1")
    assert code == 0
    assert [line.split()[-1] for line in out.splitlines()[2:]].count("yes") >= 6

    code, out, err = run(capsys, "check", demo.recipe, *env, "--sample", "200")
    assert code == 0, out + err
    rows = check_rows(out)
    assert set(rows.values()) == {"PASS"}
    assert any(check == "connection" and target.startswith("redis") for check, target in rows)


def test_materialize_needs_a_redis_environment(capsys, demo):
    code, _, err = run(capsys, "materialize", demo.recipe, *local(demo))
    assert code == 1
    assert "provider 'local'" in one_error_line(err)


def test_materialize_unknown_feature(capsys, demo, tmp_path, redis_config):
    recipe = recipe_variant(demo, tmp_path, "typo", unknown_age)
    code, _, err = run(capsys, "materialize", recipe, "--env", "test", "--config-dir", redis_config, "--no-progress")
    assert code == 1
    assert "'age_typo'" in one_error_line(err)


def test_materialize_unreachable_store(capsys, demo, down_config):
    code, _, err = run(capsys, "materialize", demo.recipe, "--env", "down", "--config-dir", down_config,
                       "--no-progress")
    assert code == 1
    assert "127.0.0.1:" in one_error_line(err)
