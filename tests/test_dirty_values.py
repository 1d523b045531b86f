"""Values a data engineer writes by hand with ``redis-cli``, read through the augmenter and ``fs-augment check``.

Every value here is written by the real ``redis-cli`` binary into the suite's database, exactly as it
would be typed at a shell: the bytes the augmenter reads are the bytes ``redis-cli`` stores.
"""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
import yaml

from fs_augment import FeatureStoreAugmenter
from fs_augment.checks import lookup_features
from fs_augment.cli import main
from fs_augment.connections import close_all, get_adapter
from fs_augment.errors import FeatureQualityWarning
from fs_augment.keys import NOT_FINITE, NOT_UTF8, InvalidValue, feature_key
from tests.support.redis_servers import require_redis_server_binary
from tests.support.stores import redis_host_and_db

NAMESPACE = "user_profile"
FEATURES = ["score", "is_vip", "zip_code", "country", "nickname"]
RECIPE = {"augmenter": {"features": [{"feature_namespace": NAMESPACE, "features": FEATURES}]}}
#: what the reference writer would store: JSON of one kind a feature
CLEAN = {
    "u1": {"score": "9.5", "is_vip": "true", "zip_code": "12345", "country": '"KR"', "nickname": '"kim"'},
    "u2": {"score": "3", "is_vip": "false", "zip_code": "54321", "country": '"US"', "nickname": '"lee"'},
    "u3": {"score": "0.25", "is_vip": "true", "zip_code": "10001", "country": '"JP"', "nickname": '"park"'},
}


class RedisCli:
    """The real ``redis-cli`` binary against the suite's database (``-n DB``)."""

    def __init__(self, client: redis.Redis) -> None:
        _, self.binary = require_redis_server_binary()
        host, db = redis_host_and_db(client)
        self.host, self.port = host.rsplit(":", 1)
        self.db = db

    def __call__(self, *args: str, stdin: bytes | None = None) -> bytes:
        command = [self.binary, "-h", self.host, "-p", self.port, "-n", str(self.db), *args]
        done = subprocess.run(command, input=stdin, capture_output=True, check=True, timeout=30)
        return done.stdout.strip()

    def set(self, feature: str, entity: str, value: str) -> None:
        """``redis-cli SET key value``: the value as typed, no shell quoting left in it."""
        assert self("SET", feature_key(NAMESPACE, feature, entity), value) == b"OK"

    def set_from_stdin(self, feature: str, entity: str, data: bytes) -> None:
        """``... | redis-cli -x SET key``: the value is the piped bytes, a trailing newline included."""
        assert self("-x", "SET", feature_key(NAMESPACE, feature, entity), stdin=data) == b"OK"


@pytest.fixture
def cli(redis_client: redis.Redis) -> Iterator[RedisCli]:
    close_all()
    yield RedisCli(redis_client)
    close_all()


@pytest.fixture
def project(make_config_dir: Callable[..., Path], redis_client: redis.Redis, tmp_path: Path) -> dict[str, Any]:
    """Environment ``test``: the suite's Redis online, a parquet folder of the same entities offline; per-feature
    metrics on (no endpoint), where a transform's invalid counts go."""
    features = tmp_path / "features"
    features.mkdir()
    pd.DataFrame({
        "user_id": ["u1", "u2", "u3"],
        "score": [9.5, 3.0, 0.25], "is_vip": [True, False, True], "zip_code": [12345, 54321, 10001],
        "country": ["KR", "US", "JP"], "nickname": ["kim", "lee", "park"],
    }).to_parquet(features / f"{NAMESPACE}.parquet", index=False)
    host, db = redis_host_and_db(redis_client)
    config_dir = make_config_dir(test={"feature_store": {
        "provider": "redis", "connection_timeout": 2000, "retry_attempts": 1, "enable_monitoring": True,
        "connection_info": {"redis_host": host, "redis_db": db, "redis_mode": "standalone",
                            "offline_store_uri": f"file://{features}"}}})
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE), encoding="utf-8")
    return {"config_dir": str(config_dir), "recipe": str(recipe)}


def write_clean(cli: RedisCli, skip: dict[str, set[str]] | None = None) -> None:
    for entity, values in CLEAN.items():
        for feature, value in values.items():
            if feature not in (skip or {}).get(entity, set()):
                cli.set(feature, entity, value)


def augmenter(project: dict[str, Any], mode: str = "batch") -> FeatureStoreAugmenter:
    return FeatureStoreAugmenter(project["recipe"], env="test", config_dir=project["config_dir"], mode=mode)


SPINE = pd.DataFrame({"user_id": ["u1", "u2", "u3"]})


def fit_recording(aug: FeatureStoreAugmenter, X: pd.DataFrame = SPINE) -> tuple[pd.DataFrame, list[str]]:
    """``fit_transform`` and the messages of the quality warnings it gave (each one, no deduplication)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = aug.fit_transform(X)
    return out, [str(w.message) for w in caught if issubclass(w.category, FeatureQualityWarning)]


def transform_recording(aug: FeatureStoreAugmenter, X: pd.DataFrame) -> tuple[pd.DataFrame, list[str], dict[str, int]]:
    """``transform``, its quality warnings, and the invalid values it added to the adapter's metrics, by feature.

    A transform changes no fitted state (``invalid_count_`` is the training lookup's): its counts go to the metrics.
    """
    metrics = get_adapter(aug.env, aug.config_dir).metrics
    before = metrics.snapshot()["invalid_by_feature"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = aug.transform(X)
    after = metrics.snapshot()["invalid_by_feature"]
    added = {name.replace(":", "__", 1): n - before.get(name, 0) for name, n in after.items()
             if n != before.get(name, 0)}
    return out, [str(w.message) for w in caught if issubclass(w.category, FeatureQualityWarning)], added


def check(capsys: pytest.CaptureFixture[str], project: dict[str, Any]) -> tuple[int, dict[tuple[str, str], str]]:
    """Run ``fs-augment check``; its exit code and ``(check, target) -> (status, detail)``."""
    code = main(["check", project["recipe"], "--env", "test", "--config-dir", project["config_dir"]])
    lines = capsys.readouterr().out.splitlines()
    header = lines[0]
    starts = [header.index(name) for name in ("check", "target", "status", "detail")]
    rows = {}
    for line in lines[2:]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        if cells[2] in ("PASS", "FAIL", "WARN", "SKIP"):
            rows[cells[0], cells[1]] = (cells[2], cells[3])
    return code, rows


def qualified(feature: str) -> str:
    return f"{NAMESPACE}:{feature}"


def column(feature: str) -> str:
    return f"{NAMESPACE}__{feature}"


# --- clean values: nothing to say ---------------------------------------------------------------------------------

def test_clean_values_give_no_warning_and_pass_the_value_check(cli, project, capsys):
    write_clean(cli)
    out, quality = fit_recording(augmenter(project))
    assert quality == []
    assert out[column("is_vip")].tolist() == [1.0, 0.0, 1.0]
    code, rows = check(capsys, project)
    assert code == 0, rows
    assert {rows["values", qualified(f)][0] for f in FEATURES} == {"PASS"}


# --- 1e400: a number beyond float64 is invalid, not infinity ------------------------------------------------------

@pytest.mark.parametrize("typed", ["1e400", "-1e400", "1E400"])
@pytest.mark.parametrize("mode", ["batch", "online"])
def test_a_number_beyond_float64_is_invalid_in_transform(cli, project, typed, mode):
    write_clean(cli)
    aug = augmenter(project, mode)
    aug.fit(SPINE)
    assert aug.feature_kinds_[column("score")] == "float"
    cli.set("score", "u2", typed)
    for X in (SPINE, SPINE.iloc[[1]]):  # batch of rows, and the served one-row path
        out, quality, invalid = transform_recording(aug, X)
        score = out[column("score")]
        assert score.dtype == np.float64 and not np.isinf(score.to_numpy()).any()
        assert pd.isna(score.loc[1])
        assert invalid == {column("score"): 1}
        assert len(quality) == 1 and f"{column('score')} (1)" in quality[0]


def test_a_number_beyond_float64_in_training_is_invalid_and_keeps_the_kind(cli, project):
    write_clean(cli)
    cli.set("score", "u3", "1e400")
    aug = augmenter(project)
    out, quality = fit_recording(aug)
    assert aug.feature_kinds_[column("score")] == "float"  # not pinned object because of one bad value
    assert out[column("score")].tolist()[:2] == [9.5, 3.0] and pd.isna(out[column("score")].iloc[2])
    assert aug.invalid_count_[column("score")] == 1
    assert [m for m in quality if column("score") in m] == [quality[0]] and "(1)" in quality[0]


def test_the_check_fails_a_number_beyond_float64(cli, project, capsys):
    write_clean(cli)
    cli.set("score", "u1", "-1e400")
    code, rows = check(capsys, project)
    assert code == 1
    status, detail = rows["values", qualified("score")]
    assert status == "FAIL" and f"1 {NOT_FINITE}" in detail
    assert rows["type", qualified("score")][0] == "PASS"  # the other values are numbers, as offline


def test_lookup_shows_an_invalid_value_as_invalid(cli, project):
    write_clean(cli)
    cli.set("score", "u1", "1e400")
    rows = {r.feature: r for r in lookup_features(project["recipe"], {"user_id": "u1"}, env="test",
                                                  config_dir=project["config_dir"])}
    assert rows[qualified("score")].value == InvalidValue(b"1e400", NOT_FINITE)
    assert rows[qualified("score")].note == f"invalid: {NOT_FINITE}"


# --- mixed kinds: True typed by hand beside JSON true, 01234 beside 12345 ---------------------------------------

def test_mixed_kinds_in_training_warn_once_a_feature_naming_the_kinds(cli, project):
    write_clean(cli)
    cli.set("is_vip", "u2", "True")  # Python's spelling: no JSON, read as the text "True"
    cli.set("zip_code", "u3", "01234")  # a leading zero: no JSON number, read as the text "01234"
    aug = augmenter(project)
    out, quality = fit_recording(aug)
    assert aug.feature_kinds_[column("is_vip")] == "object"
    assert aug.feature_kinds_[column("zip_code")] == "object"
    assert out[column("is_vip")].tolist() == [True, "True", True]  # kept as read: the warning says so
    assert out[column("zip_code")].tolist() == [12345, 54321, "01234"]
    vip = [m for m in quality if column("is_vip") in m]
    zips = [m for m in quality if column("zip_code") in m]
    assert len(vip) == 1 and len(zips) == 1  # one warning a feature, not one a row
    assert "bool 2 (e.g. True), str 1 (e.g. 'True')" in vip[0]
    assert "int 2 (e.g. 12345), str 1 (e.g. '01234')" in zips[0]
    assert "pinned object" in vip[0] and "numbers without leading zeros" in zips[0]
    assert not [m for m in quality if column("score") in m or column("country") in m]


def test_mixed_kinds_warn_once_however_many_rows_mix(cli, project):
    write_clean(cli)
    spine = pd.DataFrame({"user_id": [f"m{i}" for i in range(40)]})
    for i in range(40):
        cli.set("is_vip", f"m{i}", "True" if i % 2 else "true")
    _, quality = fit_recording(augmenter(project), spine)
    vip = [m for m in quality if column("is_vip") in m]
    assert len(vip) == 1 and "bool 20" in vip[0] and "str 20" in vip[0]


def test_arrays_of_one_kind_are_object_without_a_warning(cli, project):
    write_clean(cli)
    for entity, tags in (("u1", '["a"]'), ("u2", '["b", "c"]'), ("u3", "[]")):
        cli.set("nickname", entity, tags)
    aug = augmenter(project)
    _, quality = fit_recording(aug)
    assert aug.feature_kinds_[column("nickname")] == "object"
    assert quality == []


# --- text: "" and a trailing newline are kept as values, warned at fit, counted in check ------------------------

def test_empty_and_padded_text_are_kept_and_warned_once_at_fit(cli, project):
    write_clean(cli, skip={"u1": {"country"}, "u2": {"country"}})
    cli.set_from_stdin("country", "u1", b"KR\n")  # echo KR | redis-cli -x SET ...
    cli.set("country", "u2", "")
    assert cli("STRLEN", feature_key(NAMESPACE, "country", "u1")) == b"3"  # the newline is part of the value
    aug = augmenter(project)
    out, quality = fit_recording(aug)
    assert aug.feature_kinds_[column("country")] == "str"
    assert out[column("country")].tolist() == ["KR\n", "", "JP"]  # real values: not trimmed, not missing
    assert aug.missing_rate_[column("country")] == 0.0
    country = [m for m in quality if column("country") in m]
    assert len(country) == 1
    assert "of its 3 training text values, 1 is empty and 1 has surrounding whitespace (e.g. 'KR\\n')" in country[0]
    assert not [m for m in quality if column("nickname") in m]


def test_the_check_counts_empty_and_padded_text(cli, project, capsys):
    write_clean(cli)
    cli.set("nickname", "u1", "")
    cli.set("nickname", "u2", "")
    cli.set_from_stdin("country", "u3", b"JP\n")
    code, rows = check(capsys, project)
    assert code == 0  # kept as values: a warning, not a failure
    status, detail = rows["values", qualified("nickname")]
    assert status == "WARN" and "3 sampled: 2 empty text" in detail
    status, detail = rows["values", qualified("country")]
    assert status == "WARN" and "1 with surrounding whitespace (e.g. 'JP\\n')" in detail
    assert rows["values", qualified("score")][0] == "PASS"


def test_padded_text_in_a_transform_is_a_value(cli, project):
    write_clean(cli)
    aug = augmenter(project, "online")
    aug.fit(SPINE)
    cli.set_from_stdin("country", "u1", b"KR\n")
    out, quality, invalid = transform_recording(aug, SPINE.iloc[[0]])
    assert out[column("country")].tolist() == ["KR\n"] and quality == [] and invalid == {}


# --- invalid UTF-8: counted as invalid, not replaced ------------------------------------------------------------

@pytest.mark.parametrize("mode", ["batch", "online"])
def test_invalid_utf8_is_invalid_in_every_kind(cli, project, mode):
    write_clean(cli)
    aug = augmenter(project, mode)
    aug.fit(SPINE)
    for feature in ("score", "is_vip", "zip_code", "country"):
        cli.set_from_stdin(feature, "u2", b"K\xffR")  # Latin-1 bytes piped in from a file, say
    for X in (SPINE, SPINE.iloc[[1]]):
        out, quality, invalid = transform_recording(aug, X)
        assert len(quality) == 1
        assert invalid == {column(feature): 1 for feature in ("score", "is_vip", "zip_code", "country")}
        for feature in ("score", "is_vip", "zip_code", "country"):
            assert pd.isna(out[column(feature)].loc[1]), feature
            assert "\ufffd" not in str(out[column(feature)].loc[1])
            assert f"{column(feature)} (1)" in quality[0]


def test_invalid_utf8_in_training_is_invalid_and_keeps_the_kind(cli, project):
    write_clean(cli)
    cli.set_from_stdin("country", "u3", b"\xc4\xe9")
    aug = augmenter(project)
    out, quality = fit_recording(aug)
    assert aug.feature_kinds_[column("country")] == "str"
    assert out[column("country")].tolist()[:2] == ["KR", "US"] and pd.isna(out[column("country")].iloc[2])
    assert aug.invalid_count_[column("country")] == 1
    assert len([m for m in quality if column("country") in m]) == 1


def test_the_check_fails_invalid_utf8(cli, project, capsys):
    write_clean(cli)
    cli.set_from_stdin("nickname", "u1", b"\xffkim")
    code, rows = check(capsys, project)
    assert code == 1
    status, detail = rows["values", qualified("nickname")]
    assert status == "FAIL" and f"1 {NOT_UTF8}" in detail


# --- the same rules on the embedded store (parquet written by other tools) ---------------------------------------

@pytest.mark.parametrize("mode", ["batch", "online"])
def test_the_embedded_store_counts_infinities_and_invalid_utf8(make_config_dir, tmp_path, mode):
    features = tmp_path / "features"
    features.mkdir()
    frame = pd.DataFrame({"user_id": ["u1", "u2", "u3"], "score": [9.5, np.inf, -np.inf],
                          "raw_name": [b"kim", b"l\xffe", b"park"]})
    frame.to_parquet(features / f"{NAMESPACE}.parquet", index=False)
    config_dir = make_config_dir(local={"feature_store": {
        "provider": "local", "enable_monitoring": True, "connection_info": {"offline_store_uri": f"file://{features}"}}})
    recipe = {"augmenter": {"features": [{"feature_namespace": NAMESPACE, "features": ["score", "raw_name"]}]}}
    aug = FeatureStoreAugmenter(recipe, env="local", config_dir=str(config_dir), mode=mode)
    out, quality = fit_recording(aug)
    assert aug.feature_kinds_ == {column("score"): "float", column("raw_name"): "str"}
    assert out[column("score")].tolist()[0] == 9.5 and out[column("score")].iloc[1:].isna().all()
    assert out[column("raw_name")].tolist()[::2] == ["kim", "park"] and pd.isna(out[column("raw_name")].iloc[1])
    assert aug.invalid_count_ == {column("score"): 2, column("raw_name"): 1}
    assert len(quality) == 1 and f"{column('score')} (2)" in quality[0]
    one, quality, invalid = transform_recording(aug, SPINE.iloc[[2]])
    assert pd.isna(one[column("score")].iloc[0]) and invalid == {column("score"): 1}
    assert len(quality) == 1
