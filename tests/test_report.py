"""``fs-augment report``: a logged model's training statistics against what is served, in one HTML page
that a real headless Chromium renders without loading anything."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

import fs_augment.mlflow as fs_mlflow
from fs_augment import FeatureStoreAugmenter, load_config, load_recipe
from fs_augment.cli import main
from fs_augment.demo import write_demo_data
from fs_augment.loader import load_spine_for_recipe
from fs_augment.report import build_report, distribution_shift
from fs_augment.training import as_float
from tests.support.browser import open_page

pytestmark = pytest.mark.mlflow

FEATURES = ["user_demographics:age", "user_demographics:country_code", "user_demographics:gender",
            "user_purchase_summary:ltv", "user_purchase_summary:total_purchase_count",
            "product_details:price", "product_details:category", "product_details:brand"]


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """The demo project (embedded ``local`` store), a fitted pipeline logged to a sqlite tracking store."""
    import mlflow

    root = tmp_path_factory.mktemp("report")
    project = write_demo_data(root / "demo", users=200, products=30, rows=800)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FS_AUGMENT_ENV", "local")
        mp.setenv("FS_AUGMENT_CONFIG_DIR", str(project.config_dir))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        recipe = load_recipe(project.recipe)
        X, y = load_spine_for_recipe(recipe, load_config())
        pipe = Pipeline([
            ("features", FeatureStoreAugmenter(recipe, drop_entity_columns=True)),
            ("encode", ColumnTransformer([
                ("text", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                 make_column_selector(dtype_include=[object, "string"])),
                ("numbers", FunctionTransformer(as_float, feature_names_out="one-to-one"),
                 make_column_selector(dtype_exclude=[object, "string"]))])),
            ("model", HistGradientBoostingClassifier(max_iter=5, random_state=0)),
        ]).fit(X, y)
        with mlflow.start_run():
            info = fs_mlflow.log_model(pipe, "model", input_example=X.head(2))
        yield {"uri": info.model_uri, "project": project, "root": root, "tracking": f"sqlite:///{root / 'mlflow.db'}"}


@pytest.fixture
def served(logged, monkeypatch):
    monkeypatch.setenv("FS_AUGMENT_ENV", "local")
    monkeypatch.setenv("FS_AUGMENT_CONFIG_DIR", str(logged["project"].config_dir))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged["tracking"])
    return logged


def sections(text: str) -> list[str]:
    return re.findall(r'<section class="feature" id="([^"]+)"><h2>([^<]+) ', text)


def test_the_report_has_a_summary_worst_first_and_a_chart_per_feature(served):
    text = build_report(served["uri"], sample=150)
    assert text.startswith("<!DOCTYPE html>")
    assert [name for _, name in sections(text)] == FEATURES  # recipe order
    assert text.count('<svg class="chart"') == len(FEATURES)
    summary = text.split('<table class="summary">')[1].split("</table>")[0]
    rows = re.findall(r"<tr[^>]*><td><a href=\"#[^\"]+\">([^<]+)</a>", summary)
    assert sorted(rows) == sorted(FEATURES)
    shifts = [float(s) if s != "–" else 0.0 for s in re.findall(r"<td>([0-9.]+|–)</td><td>[^<]*</td></tr>", summary)]
    assert len(shifts) == len(FEATURES)
    # nothing from elsewhere: no script, no link, no src; the policy forbids any load but data:
    assert "<script" not in text and "<link" not in text and " src=" not in text
    assert "default-src 'none'" in text


def test_text_from_data_is_escaped(served, tmp_path):
    from fs_augment.report import FeatureReport, render

    evil = FeatureReport(feature="ns:<b>x</b>", output_name='ns__"x', kind="str",
                         training={"missing_rate": 0.0, "top_values": {"<script>alert(1)</script>": 1.0}},
                         served={"missing_rate": 0.5, "top_values": {"&amp;": 1.0}}, sampled=2)
    text = render("runs:/<x>/model", "local", [evil], now=pd.Timestamp("2026-01-01", tz="UTC"))
    assert "<script>" not in text and "<b>x</b>" not in text and "&amp;amp;" in text
    assert "&lt;script&gt;" in text


def test_distribution_shift_of_numbers_and_categories():
    assert distribution_shift({"p05": 0, "p50": 5, "p95": 10}, {"p50": 5}, "float") == 0.0
    assert distribution_shift({"top_values": {"a": 1.0}}, {"top_values": {"b": 1.0}}, "str") == 1.0
    assert distribution_shift({"top_values": {}}, {"top_values": {"b": 1.0}}, "str") is None


def test_bad_sample_is_an_error_naming_it(served):
    with pytest.raises(ValueError, match="sample must be a positive integer"):
        build_report(served["uri"], sample=0)


def test_the_cli_writes_a_page_that_chromium_renders_without_loading_anything(served, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", served["uri"], "--sample", "150", "-o", str(out)]) == 0
    assert f"report written to {out}" in capsys.readouterr().out
    url = out.as_uri()
    with open_page(url) as page:
        charts = page.evaluate("document.querySelectorAll('section.feature svg.chart').length")
        drawn = page.evaluate("[...document.querySelectorAll('svg.chart')]"
                              ".filter(s => s.getBoundingClientRect().width > 100 && "
                              "s.querySelectorAll('rect').length > 0).length")
        titles = page.evaluate("[...document.querySelectorAll('section.feature h2')]"
                               ".map(h => h.firstChild.textContent.trim())")
        rows = page.evaluate("document.querySelectorAll('table.summary tr').length")
        styled = page.evaluate("getComputedStyle(document.body).maxWidth")  # the style sheet applies by its hash
        shot = page.screenshot(tmp_path / "report.png")
        requested, failed, messages = page.requested_urls(), page.failed_loads(), page.messages()
    assert charts == drawn == len(FEATURES)
    assert titles == FEATURES
    assert rows == len(FEATURES) + 1
    assert styled == "1150px"
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', out.read_text()).group(1)
    assert "unsafe" not in policy and "'sha256-" in policy
    assert [u for u in requested if u != url and not u.startswith("data:")] == []
    assert failed == []
    assert [m for m in messages if m.get("level") in ("error", "warning") or "exceptionDetails" in m] == []
    assert shot.stat().st_size > 10_000 and Path(shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_browser_check_sees_a_blocked_load(tmp_path):
    """The check above is not vacuous: a page that tries to load a stylesheet is caught."""
    page_file = tmp_path / "bad.html"
    page_file.write_text('<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
                         "content=\"default-src 'none'\"><link rel=\"stylesheet\" href=\"http://127.0.0.1:9/x.css\">"
                         "</head><body>x</body></html>")
    with open_page(page_file.as_uri()) as page:
        blocked = page.failed_loads() + page.messages()
    assert blocked


def test_a_planted_disagreement_in_redis_is_the_first_row_of_the_summary(served, redis_client):
    """The online store is Redis, filled by ``materialize``; a tenth of the users' ages then differ online."""
    from fs_augment.keys import encode_value, feature_key
    from fs_augment.writer import materialize
    from tests.support.stores import redis_host_and_db

    host, db = redis_host_and_db(redis_client)
    config_dir = served["project"].config_dir
    (config_dir / "redisenv.yaml").write_text(
        f"feature_store:\n  provider: redis\n  connection_timeout: 2000\n  retry_attempts: 1\n"
        f"  connection_info:\n    redis_host: '{host}'\n    redis_db: {db}\n    redis_mode: standalone\n")
    materialize(served["project"].recipe, env="redisenv", config_dir=config_dir)
    users = sorted(k.decode().rpartition(":")[2] for k in redis_client.scan_iter("user_demographics:age:*"))
    for user in users[::10]:
        redis_client.set(feature_key("user_demographics", "age", user), encode_value(150))
    text = build_report(served["uri"], env="redisenv", sample=len(users))
    summary = text.split('<table class="summary">')[1].split("</table>")[0]
    first = re.findall(r"<tr[^>]*><td><a [^>]+>([^<]+)</a></td><td>[^<]*</td><td>[^<]*</td><td>[^<]*</td>"
                       r"<td>([^<]*)</td>", summary)
    assert first[0][0] == "user_demographics:age"
    assert abs(float(first[0][1].rstrip("%")) / 100 - 0.1) < 0.02
    assert all(rate == "0.0%" for _, rate in first[1:])
    assert "environment redisenv" in text


def test_freshness_counts_entities_older_than_max_age_and_they_are_served_missing(served):
    """Demo rows are years old: under a 30-day ``max_age`` every sampled user is stale online."""
    from fs_augment.report import collect, render

    project = served["project"]
    recipe = {"augmenter": {"timestamp_column": "event_timestamp", "features": [
        {"feature_namespace": "user_demographics", "features": ["age"], "max_age": "30d"},
        {"feature_namespace": "product_details", "features": ["price"]}]}}
    spine = pd.DataFrame({"user_id": ["user1", "user2", "user3"], "product_id": ["prod1", "prod2", "prod3"],
                          "event_timestamp": pd.Timestamp("2030-01-01", tz="UTC")})
    augmenter = FeatureStoreAugmenter(recipe, env="local", config_dir=project.config_dir).fit(spine)
    age, price = collect(augmenter, sample=50)
    assert age.max_age == 30 * 86400 and age.with_time == age.sampled == 50
    assert age.stale_rate == 1.0 and age.served["missing_rate"] == 1.0
    assert price.max_age is None and price.stale_rate is None and price.served["missing_rate"] == 0.0
    text = render("runs:/r/model", "local", [price, age], now=pd.Timestamp.now(tz="UTC"))
    assert "50 (100.0%) older than max_age 30.0d, served as missing" in text
    assert sections(text)[0][1] == "product_details:price"  # sections keep the given order; the summary sorts
    summary = text.split('<table class="summary">')[1]
    assert summary.index("user_demographics:age") < summary.index("product_details:price")
