"""Environment configuration: merge laws, interpolation, validation errors, secrets, shipped files."""

from __future__ import annotations

import copy
import logging
import pickle
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fs_augment.config import Config, Secret, deep_merge, interpolate, load_config, resolve_env_name
from fs_augment.errors import ConfigError, FsAugmentError
from tests.support.strategies import config_trees, env_var_names, json_scalars, passwords, texts_without_placeholder

REPO_CONFIG = Path(__file__).parents[1] / "config"
MakeConfigDir = Callable[..., Path]


def _leaves(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) of every non-mapping value of a tree."""
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def _at(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        tree = tree[part]
    return tree


def _overridden(override: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    """Whether the override replaces the base value at ``path`` (or a map above it)."""
    node: Any = override
    for part in path:
        if part not in node:
            return False
        node = node[part]
        if not isinstance(node, Mapping):
            return True
    return True  # a map where the base has a value replaces it


def _write(folder: Path, **files: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        text = data if isinstance(data, str) else yaml.safe_dump(data)
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return folder


def _info(config: Config):
    return config.feature_store.connection_info


# --- merge laws -------------------------------------------------------------------------


@given(config_trees())
def test_merge_with_empty_override_is_identity(base):
    assert deep_merge(base, {}) == base
    assert deep_merge({}, base) == base


@given(config_trees(), config_trees())
def test_override_leaves_always_win(base, override):
    merged = deep_merge(base, override)
    for path, value in _leaves(override):
        if value is None and isinstance(_at_or_none(base, path), Mapping):
            # an empty section (None, e.g. only comments under "feature_store:") overrides no map
            assert _at(merged, path) == _at(base, path)
            continue
        assert _at(merged, path) == value


def _at_or_none(tree, path):
    try:
        return _at(tree, path)
    except (KeyError, TypeError):
        return None


@given(config_trees(), config_trees())
def test_keys_absent_from_override_survive(base, override):
    merged = deep_merge(base, override)
    for path, value in _leaves(base):
        if not _overridden(override, path):
            assert _at(merged, path) == value


@given(config_trees(), config_trees())
def test_merge_does_not_change_its_inputs(base, override):
    before = copy.deepcopy((base, override))
    deep_merge(base, override)
    assert (base, override) == before


@given(st.lists(json_scalars(), max_size=4), st.lists(json_scalars(), max_size=4))
def test_lists_are_replaced_not_merged(base_list, env_list):
    merged = deep_merge({"a": {"l": base_list, "keep": 1}}, {"a": {"l": env_list}})
    assert merged == {"a": {"l": env_list, "keep": 1}}


def test_merge_replaces_map_with_scalar_and_scalar_with_map():
    assert deep_merge({"a": {"x": 1}}, {"a": 5}) == {"a": 5}
    assert deep_merge({"a": 5}, {"a": {"x": 1}}) == {"a": {"x": 1}}


# --- interpolation ----------------------------------------------------------------------


@given(texts_without_placeholder(), st.dictionaries(env_var_names(), st.text(), max_size=3))
def test_strings_without_placeholder_are_unchanged(text, environ):
    assert interpolate(text, environ) == text
    assert interpolate({"a": {"b": [text, 1]}, "c": text}, environ) == {"a": {"b": [text, 1]}, "c": text}


def _strings(tree: Any) -> Iterator[str]:
    if isinstance(tree, Mapping):
        tree = list(tree.values())
    if isinstance(tree, list):
        for item in tree:
            yield from _strings(item)
    elif isinstance(tree, str):
        yield tree


@given(config_trees())
def test_trees_without_placeholders_are_unchanged(tree):
    assume(not any("${" in s for s in _strings(tree)))
    assert interpolate(tree, {}) == tree


@given(texts_without_placeholder(), env_var_names(), st.text(), texts_without_placeholder())
def test_variable_is_replaced_by_its_value(prefix, name, value, suffix):
    # the value itself is never interpolated again, even when it holds "${...}"
    assert interpolate(f"{prefix}${{{name}}}{suffix}", {name: value}) == prefix + value + suffix


@given(env_var_names(), st.text(), st.text().filter(lambda s: "}" not in s))
def test_default_is_used_when_variable_is_unset_or_empty(name, value, default):
    # as in the shell: ${VAR:-default} gives the default for an unset and for an empty VAR
    template = {"k": f"${{{name}:-{default}}}"}
    assert interpolate(template, {}) == {"k": default}
    assert interpolate(template, {name: ""}) == {"k": default}
    assert interpolate(template, {name: value}) == {"k": value or default}


def test_interpolation_error_names_variable_file_and_key():
    with pytest.raises(ConfigError) as info:
        interpolate({"a": {"b": "x-${NOPE}"}}, {}, where={"a.b": "conf/dev.yaml"})
    assert "NOPE" in str(info.value)
    assert "conf/dev.yaml" in str(info.value)
    assert "a.b" in str(info.value)


def test_interpolated_value_is_typed_like_yaml(make_config_dir: MakeConfigDir):
    folder = make_config_dir(
        dev={"feature_store": {"connection_info": {"redis_db": "${DB:-3}"}, "cache_ttl": "${TTL:-1.5}",
                               "enable_debug_logging": "${DEBUG:-true}", "retry_attempts": "${RETRIES}"}}
    )
    config = load_config("dev", folder, environ={"RETRIES": "7"})
    assert _info(config).redis_db == 3
    assert type(_info(config).redis_db) is int
    assert config.feature_store.cache_ttl == 1.5
    assert config.feature_store.enable_debug_logging is True
    assert config.feature_store.retry_attempts == 7
    assert load_config("dev", folder, environ={"DB": "5", "RETRIES": "0"}).feature_store.connection_info.redis_db == 5


def test_interpolated_text_keys_stay_text(make_config_dir: MakeConfigDir):
    folder = make_config_dir(
        dev={"feature_store": {"connection_info": {"redis_username": "${USER}", "redis_password": "${PW}",
                                                   "redis_host": "${HOST}:6379"}}}
    )
    config = load_config("dev", folder, environ={"USER": "12345", "PW": "0x10", "HOST": "10"})
    assert _info(config).redis_username == "12345"
    assert _info(config).redis_password.get() == "0x10"
    assert _info(config).redis_host == "10:6379"


def test_interpolated_value_of_wrong_type_names_key(make_config_dir: MakeConfigDir):
    folder = make_config_dir(dev={"feature_store": {"connection_info": {"redis_db": "${DB}"}}})
    with pytest.raises(ConfigError) as info:
        load_config("dev", folder, environ={"DB": "three"})
    message = str(info.value)
    assert "dev.yaml" in message
    assert "feature_store.connection_info.redis_db" in message


# --- secrets ----------------------------------------------------------------------------

_PASSWORD_CONFIG = {"feature_store": {"connection_info": {"redis_password": "${PW}", "redis_host": "h:1"}}}


@pytest.fixture(scope="module")
def password_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("secrets")
    wrong_type = copy.deepcopy(_PASSWORD_CONFIG)
    wrong_type["feature_store"]["connection_timeout"] = "fast"
    missing_other = copy.deepcopy(_PASSWORD_CONFIG)
    missing_other["feature_store"]["connection_info"]["redis_username"] = "${NO_SUCH_USER}"
    return {
        "good": _write(root / "good", base={"feature_store": {"provider": "redis"}}, dev=_PASSWORD_CONFIG),
        "wrong_type": _write(root / "wrong_type", dev=wrong_type),
        "missing_other": _write(root / "missing_other", dev=missing_other),
    }


SENTINEL = "sentinel-password-\u2603"


def _observed(folder: Path, password: str, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every text a user could see while loading ``folder`` with this password."""
    caplog.clear()
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        try:
            config = load_config("dev", folder, environ={"PW": password})
        except ConfigError as exc:
            texts += [str(exc), repr(exc), repr(exc.args)]
        else:
            texts += [repr(config), str(config), str(config.to_dict()), repr(config.feature_store),
                      repr(_info(config)), repr(_info(config).redis_password), f"{config}"]
            with pytest.raises(TypeError) as pickled:
                pickle.dumps(config)
            texts.append(str(pickled.value))
    texts += [r.getMessage() for r in caplog.records]
    texts.append(caplog.text)
    return texts


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(password=passwords())
def test_password_never_shows(password, password_dirs, caplog):
    config = load_config("dev", password_dirs["good"], environ={"PW": password})
    assert _info(config).redis_password.get() == password  # kept exactly, whatever YAML would make of it
    assert config.to_dict()["feature_store"]["connection_info"]["redis_password"] == "***"
    assert config.to_dict(mask_secrets=False)["feature_store"]["connection_info"]["redis_password"] == password
    for folder in password_dirs.values():
        seen = _observed(folder, password, caplog)
        reference = _observed(folder, SENTINEL, caplog)
        # nothing observable depends on the password ...
        assert seen == reference
        # ... so it shows nowhere (unless it is text that shows anyway, e.g. "dev")
        for text in seen:
            assert password not in text or any(password in r for r in reference)


def test_wrong_typed_password_error_masks_it(make_config_dir: MakeConfigDir):
    folder = make_config_dir(dev={"feature_store": {"connection_info": {"redis_password": ["hunter2-secret"]}}})
    with pytest.raises(ConfigError) as info:
        load_config("dev", folder)
    assert "hunter2-secret" not in str(info.value)
    assert "feature_store.connection_info.redis_password" in str(info.value)


def test_secret_refuses_pickling_without_showing_value():
    with pytest.raises(TypeError) as info:
        pickle.dumps(Secret("hunter2-secret"))
    assert "hunter2-secret" not in str(info.value)
    assert repr(Secret("hunter2-secret")) == "Secret('***')"


# --- bad input ----------------------------------------------------------------------------


def _error(folder: Path, env: str = "dev", environ: Mapping[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(env, folder, environ=environ or {})
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, FsAugmentError)
    return str(info.value)


def test_malformed_yaml_names_file_and_line(make_config_dir: MakeConfigDir):
    folder = make_config_dir(base={"feature_store": {"provider": "redis"}})
    (folder / "dev.yaml").write_text("feature_store:\n  provider: redis\n  connection_info: [unclosed\n")
    message = _error(folder)
    assert str(folder / "dev.yaml") in message
    assert "line 4" in message  # the stream ends on line 4 with the list still open


def test_malformed_yaml_reports_the_line_of_the_error(make_config_dir: MakeConfigDir):
    folder = make_config_dir()
    (folder / "dev.yaml").write_text("feature_store:\n  provider: redis\n   retry_attempts: 2\n")
    message = _error(folder)
    assert "dev.yaml" in message
    assert "line 3" in message


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"])
def test_top_level_must_be_a_mapping(make_config_dir: MakeConfigDir, text):
    folder = make_config_dir()
    (folder / "dev.yaml").write_text(text)
    message = _error(folder)
    assert "dev.yaml" in message
    assert "top level" in message


def test_section_must_be_a_mapping(make_config_dir: MakeConfigDir):
    message = _error(make_config_dir(dev={"feature_store": {"connection_info": ["a"]}}))
    assert "dev.yaml" in message
    assert "feature_store.connection_info" in message


@pytest.mark.parametrize(
    ("section", "typo", "suggestion"),
    [
        ({"feature_store": {"conection_timeout": 100}}, "feature_store.conection_timeout",
         "feature_store.connection_timeout"),
        ({"feature_store": {"connection_info": {"redis_hots": "h:1"}}}, "feature_store.connection_info.redis_hots",
         "feature_store.connection_info.redis_host"),
        ({"feature_store": {"retry_attemps": 2}}, "feature_store.retry_attemps", "feature_store.retry_attempts"),
        ({"featur_store": {}}, "featur_store", "feature_store"),
    ],
)
def test_unknown_key_suggests_nearest(make_config_dir: MakeConfigDir, section, typo, suggestion):
    message = _error(make_config_dir(base={"feature_store": {"provider": "redis"}}, dev=section))
    assert "dev.yaml" in message
    assert typo in message
    assert f"did you mean {suggestion}?" in message


def test_unknown_key_without_near_match_lists_known_keys(make_config_dir: MakeConfigDir):
    message = _error(make_config_dir(dev={"feature_store": {"zzz": 1}}))
    assert "feature_store.zzz" in message
    assert "connection_timeout" in message


def test_unknown_key_in_base_names_base_file(make_config_dir: MakeConfigDir):
    message = _error(make_config_dir(base={"feature_store": {"redis_hots": "x"}}, dev={}))
    assert "base.yaml" in message
    assert "feature_store.redis_hots" in message


@pytest.mark.parametrize(
    ("store", "key"),
    [
        ({"connection_timeout": "fast"}, "feature_store.connection_timeout"),
        ({"connection_timeout": 0}, "feature_store.connection_timeout"),
        ({"retry_attempts": -1}, "feature_store.retry_attempts"),
        ({"retry_attempts": 1.5}, "feature_store.retry_attempts"),
        ({"enable_debug_logging": "yes"}, "feature_store.enable_debug_logging"),
        ({"enable_monitoring": 1}, "feature_store.enable_monitoring"),
        ({"cache_ttl": -5}, "feature_store.cache_ttl"),
        ({"cache_ttl": True}, "feature_store.cache_ttl"),
        ({"connection_pool_size": "many"}, "feature_store.connection_pool_size"),
        ({"provider": "memcached"}, "feature_store.provider"),
        ({"connection_info": {"redis_host": "nohostport"}}, "feature_store.connection_info.redis_host"),
        ({"connection_info": {"redis_host": "host:port"}}, "feature_store.connection_info.redis_host"),
        ({"connection_info": {"redis_host": "http://h:1"}}, "feature_store.connection_info.redis_host"),
        ({"connection_info": {"redis_db": "1"}}, "feature_store.connection_info.redis_db"),
        ({"connection_info": {"offline_store_uri": "s3://x"}}, "feature_store.connection_info.offline_store_uri"),
        ({"monitoring_endpoint": 5}, "feature_store.monitoring_endpoint"),
    ],
)
def test_wrong_type_names_file_key_and_value(make_config_dir: MakeConfigDir, store, key):
    message = _error(make_config_dir(base={"feature_store": {"provider": "redis"}}, dev={"feature_store": store}))
    assert "dev.yaml" in message
    assert key in message
    assert "must be" in message


def test_wrong_type_in_data_lake(make_config_dir: MakeConfigDir):
    message = _error(make_config_dir(dev={"data_lake": {"uri": "s3://lake"}}))
    assert "dev.yaml" in message
    assert "data_lake.uri" in message


def test_missing_environment_file_lists_environments(make_config_dir: MakeConfigDir):
    folder = make_config_dir(base={}, dev={}, prod={})
    message = _error(folder, env="qa")
    assert "'qa'" in message
    assert str(folder / "qa.yaml") in message
    assert "dev, prod" in message


def test_missing_config_folder(tmp_path: Path):
    message = _error(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in message


def test_missing_variable_names_variable_file_and_key(make_config_dir: MakeConfigDir):
    folder = make_config_dir(
        base={"feature_store": {"connection_info": {"redis_host": "localhost:6379"}}},
        dev={"feature_store": {"connection_info": {"redis_password": "${SECRET_PW}"}}},
    )
    message = _error(folder)
    assert "SECRET_PW" in message
    assert str(folder / "dev.yaml") in message
    assert "feature_store.connection_info.redis_password" in message


def test_missing_variable_in_base_names_base(make_config_dir: MakeConfigDir):
    folder = make_config_dir(base={"feature_store": {"connection_info": {"redis_host": "${REDIS_HOST}"}}}, dev={})
    message = _error(folder)
    assert "REDIS_HOST" in message
    assert "base.yaml" in message
    assert "feature_store.connection_info.redis_host" in message


@pytest.mark.parametrize("name", ["../etc", "a/b", "dev.yaml", "prod env", "..", "dev\n"])
def test_invalid_environment_names(make_config_dir: MakeConfigDir, name):
    folder = make_config_dir(dev={})
    with pytest.raises(ConfigError) as info:
        load_config(name, folder)
    assert repr(name) in str(info.value)


def test_invalid_environment_name_from_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FS_AUGMENT_ENV", "../etc")
    with pytest.raises(ConfigError, match=r"'\.\./etc'"):
        resolve_env_name()


# --- resolution order -------------------------------------------------------------------


@pytest.fixture
def three_envs(make_config_dir: MakeConfigDir) -> Path:
    return make_config_dir(
        base={"feature_store": {"provider": "redis"}},
        **{env: {"feature_store": {"connection_info": {"redis_db": db}}}
           for env, db in (("local", 0), ("dev", 1), ("staging", 2))},
    )


def test_env_argument_wins(three_envs: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FS_AUGMENT_ENV", "staging")
    config = load_config("dev", three_envs)
    assert (config.env, _info(config).redis_db) == ("dev", 1)


def test_env_variable_used_without_argument(three_envs: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FS_AUGMENT_ENV", "staging")
    config = load_config(config_dir=three_envs)
    assert (config.env, _info(config).redis_db) == ("staging", 2)


def test_env_defaults_to_local(three_envs: Path):
    config = load_config(config_dir=three_envs)
    assert (config.env, _info(config).redis_db) == ("local", 0)


def test_config_dir_argument_wins(make_config_dir: MakeConfigDir, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    chosen = make_config_dir(local={"feature_store": {"connection_info": {"redis_db": 1}}})
    from_variable = make_config_dir(local={"feature_store": {"connection_info": {"redis_db": 2}}})
    _write(tmp_path / "cwd" / "config", local={"feature_store": {"connection_info": {"redis_db": 3}}})
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("FS_AUGMENT_CONFIG_DIR", str(from_variable))
    assert _info(load_config(config_dir=chosen)).redis_db == 1
    assert _info(load_config()).redis_db == 2
    monkeypatch.delenv("FS_AUGMENT_CONFIG_DIR")
    config = load_config()
    assert _info(config).redis_db == 3
    assert Path(config.config_dir) == Path("config")


def test_base_file_is_optional(make_config_dir: MakeConfigDir):
    config = load_config("dev", make_config_dir(dev={"feature_store": {"provider": "local"}}))
    assert config.feature_store.provider == "local"
    assert config.feature_store.connection_timeout == 5000


def test_empty_environment_file_gives_base(make_config_dir: MakeConfigDir):
    folder = make_config_dir(base={"feature_store": {"retry_attempts": 9}})
    (folder / "dev.yaml").write_text("# nothing here\n")
    assert load_config("dev", folder).feature_store.retry_attempts == 9


def test_environment_file_merges_over_base(make_config_dir: MakeConfigDir):
    folder = make_config_dir(
        base={"feature_store": {"retry_attempts": 9, "connection_info": {"redis_host": "base:1", "redis_db": 4}}},
        dev={"feature_store": {"connection_info": {"redis_db": 5}}},
    )
    config = load_config("dev", folder)
    assert config.feature_store.retry_attempts == 9
    assert (_info(config).redis_host, _info(config).redis_db) == ("base:1", 5)


# --- the repository's config folder -----------------------------------------------------


def test_shipped_local_loads_without_variables():
    config = load_config("local", REPO_CONFIG, environ={})
    assert config.env == "local"
    assert config.feature_store.provider == "local"
    assert _info(config).offline_store_uri == "file://./local_features"
    assert _info(config).redis_password is None
    assert config.data_lake_uri == "file://./local_data_lake"


@pytest.mark.parametrize(
    ("env", "variable"),
    [("dev", "DEV_REDIS_PASSWORD"), ("staging", "STAGING_REDIS_PASSWORD"), ("prod", "PROD_REDIS_PASSWORD")],
)
def test_shipped_environments_load_with_their_password(env, variable):
    config = load_config(env, REPO_CONFIG, environ={variable: "s3cr3t:$x"})
    assert config.env == env
    assert config.feature_store.provider == "redis"
    assert _info(config).redis_password.get() == "s3cr3t:$x"
    assert "s3cr3t" not in repr(config)
    assert config.feature_store.connection_timeout == 5000
    assert config.feature_store.retry_attempts == 3


@pytest.mark.parametrize(
    ("env", "variable"),
    [("dev", "DEV_REDIS_PASSWORD"), ("staging", "STAGING_REDIS_PASSWORD"), ("prod", "PROD_REDIS_PASSWORD")],
)
def test_shipped_environments_fail_without_their_password(env, variable):
    message = _error(REPO_CONFIG, env=env)
    assert variable in message
    assert f"{env}.yaml" in message
    assert "feature_store.connection_info.redis_password" in message


def test_shipped_dev_values():
    config = load_config("dev", REPO_CONFIG, environ={"DEV_REDIS_PASSWORD": "pw"})
    store = config.feature_store
    assert store.cache_ttl == 3600
    assert store.enable_debug_logging is True
    assert store.connection_info.redis_db == 1
    assert store.connection_info.redis_host == "dev-redis.company.com:6379"
    assert store.connection_info.offline_store_uri == "bq://dev-project.feature_mart"


def test_shipped_prod_values():
    config = load_config("prod", REPO_CONFIG, environ={"PROD_REDIS_PASSWORD": "pw"})
    store = config.feature_store
    assert store.connection_pool_size == 100
    assert store.cache_ttl == 7200
    assert store.enable_monitoring is True
    assert store.monitoring_endpoint == "https://monitoring.company.com/features"
    assert store.enable_debug_logging is False
    assert store.connection_info.redis_db == 0
    assert store.connection_info.offline_store_uri == "bq://prod-project.feature_mart"


def test_shipped_staging_values():
    config = load_config("staging", REPO_CONFIG, environ={"STAGING_REDIS_PASSWORD": "pw"})
    assert config.feature_store.connection_info.offline_store_uri == "bq://staging-project.feature_mart"
    assert config.feature_store.enable_monitoring is True


def test_shipped_config_found_from_project_root(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(REPO_CONFIG.parent)
    assert load_config().env == "local"


def test_a_section_left_empty_in_an_env_file_overrides_nothing(make_config_dir: MakeConfigDir):
    folder = make_config_dir(base={"feature_store": {"connection_timeout": 200,
                                                     "connection_info": {"redis_db": 7}}})
    (folder / "dev.yaml").write_text("feature_store:\n  # nothing for dev yet\n", encoding="utf-8")
    store = load_config("dev", folder).feature_store
    assert store.connection_timeout == 200 and store.connection_info.redis_db == 7


def test_a_password_in_the_redis_url_becomes_the_secret(make_config_dir: MakeConfigDir):
    folder = make_config_dir(dev={"feature_store": {"connection_info": {
        "redis_host": "redis://reader:${PW}@cache.internal:6379/3"}}})
    config = load_config("dev", folder, environ={"PW": "p@ss:word"})
    info = config.feature_store.connection_info
    assert info.redis_host == "redis://reader@cache.internal:6379/3"
    assert info.redis_password.get() == "p@ss:word"
    for shown in (repr(config), str(config), str(config.to_dict())):
        assert "p@ss:word" not in shown


def test_a_url_password_and_redis_password_together_are_an_error(make_config_dir: MakeConfigDir):
    folder = make_config_dir(dev={"feature_store": {"connection_info": {
        "redis_host": "redis://u:one@h:6379", "redis_password": "two"}}})
    with pytest.raises(ConfigError, match=r"dev\.yaml: give the Redis password either in .*redis_host") as info:
        load_config("dev", folder)
    assert "one" not in str(info.value).replace("either", "") and "two" not in str(info.value)


def test_tokens_in_monitoring_urls_are_masked_for_display(make_config_dir: MakeConfigDir):
    folder = make_config_dir(dev={"feature_store": {"monitoring_endpoint": "https://svc:tok3n@m.internal/push?k=x"}})
    config = load_config("dev", folder)
    assert config.feature_store.monitoring_endpoint == "https://svc:tok3n@m.internal/push?k=x"
    assert "tok3n" not in repr(config) and "tok3n" not in str(config.to_dict())


@pytest.mark.parametrize(("key", "value"), [("connection_pool_size", 10**9), ("connection_timeout", 10**15),
                                            ("retry_attempts", 10**9)])
def test_settings_no_client_can_use_are_refused_when_loading(make_config_dir: MakeConfigDir, key, value):
    folder = make_config_dir(dev={"feature_store": {key: value}})
    with pytest.raises(ConfigError, match=rf"dev\.yaml: feature_store\.{key} must be at most"):
        load_config("dev", folder)


# --- settings declared once, backends checked when the config loads ----------------------------

def test_a_malformed_bigquery_uri_names_the_file_and_the_key(make_config_dir: MakeConfigDir):
    folder = make_config_dir(dev={"feature_store": {"connection_info": {"offline_store_uri": "bq://bad"}}})
    assert _error(folder) == (f"{folder / 'dev.yaml'}: feature_store.connection_info.offline_store_uri must look "
                              "like 'bq://PROJECT.DATASET', got 'bq://bad'")


def test_a_bad_monitoring_endpoint_fails_when_the_config_loads_if_monitoring_is_on(make_config_dir: MakeConfigDir):
    store = {"enable_monitoring": True, "monitoring_endpoint": "ftp://svc:tok3n@metrics.internal/push"}
    folder = make_config_dir(base={"feature_store": {"provider": "redis"}}, dev={"feature_store": store})
    message = _error(folder)
    assert message.startswith(f"{folder / 'dev.yaml'}: feature_store.monitoring_endpoint of environment 'dev' must")
    assert "http:// or https://" in message and "'dev'" in message and "tok3n" not in message
    store["enable_monitoring"] = False  # an endpoint that is not used is not checked
    assert load_config("dev", make_config_dir(dev={"feature_store": store})).feature_store.enable_monitoring is False


def test_providers_and_uri_schemes_are_those_of_the_registry(make_config_dir: MakeConfigDir,
                                                             monkeypatch: pytest.MonkeyPatch):
    from fs_augment import backends

    assert "feature_store.provider must be one of 'redis', 'local', got 'memory'" in _error(
        make_config_dir(dev={"feature_store": {"provider": "memory"}}))
    monkeypatch.setitem(backends.ONLINE_PROVIDERS, "memory", backends.Backend(
        "memory", "online", "m:open", "m:Store", "an in-memory store"))
    folder = make_config_dir(dev={"feature_store": {"provider": "memory", "connection_info": {
        "offline_store_uri": "s3://bucket/features"}}})
    message = _error(folder)
    assert "offline_store_uri must be a URI of an offline store: 'file://FOLDER' or 'bq://PROJECT.DATASET'" in message
    monkeypatch.setitem(backends.OFFLINE_SCHEMES, "s3", backends.Backend(
        "s3", "offline", "m:open", "m:Store", "parquet on S3", example="s3://BUCKET/PATH"))
    config = load_config("dev", folder)
    assert (config.feature_store.provider, _info(config).offline_store_uri) == ("memory", "s3://bucket/features")


def test_describe_settings_lists_every_key_a_config_file_takes():
    from dataclasses import fields

    from fs_augment.config import ConnectionInfo, FeatureStoreConfig, describe_settings

    described = {s.key: s for s in describe_settings()}
    store_keys = {f"feature_store.{f.name}" for f in fields(FeatureStoreConfig) if f.name != "connection_info"}
    info_keys = {f"feature_store.connection_info.{f.name}" for f in fields(ConnectionInfo)}
    assert set(described) == store_keys | info_keys | {"data_lake.uri"}
    assert all(s.help and s.type for s in described.values())
    assert described["feature_store.connection_timeout"][1:3] == ("int", 5000)
    assert described["feature_store.connection_pool_size"].bounds == "1 to 10000"
    assert described["feature_store.connection_info.redis_password"].type == "Secret | None"
    assert described["feature_store.connection_info.bigquery_location"].backend == "bq"


def test_every_described_default_written_out_loads_as_the_default_config(make_config_dir: MakeConfigDir):
    from fs_augment.config import FeatureStoreConfig, describe_settings

    tree: dict[str, Any] = {}
    for described in describe_settings():
        *sections, key = described.key.split(".")
        node = tree
        for name in sections:
            node = node.setdefault(name, {})
        node[key] = described.default
    config = load_config("dev", make_config_dir(dev=tree))
    assert config.feature_store == FeatureStoreConfig() and config.data_lake_uri is None


def test_backend_settings_are_declared_with_their_backend():
    from dataclasses import fields

    from fs_augment import backends
    from fs_augment.config import ConnectionInfo

    declared = {f.name for entry in [*backends.ONLINE_PROVIDERS.values(), *backends.OFFLINE_SCHEMES.values()]
                if entry.settings is not None for f in fields(entry.settings)}
    assert {f.name for f in fields(ConnectionInfo)} == declared | {"offline_store_uri"}


def test_redis_options_default_to_the_declared_settings():
    from fs_augment.config import FeatureStoreConfig
    from fs_augment.stores.redis import RedisOptions

    store = FeatureStoreConfig()
    options = RedisOptions()
    info = store.connection_info
    assert (options.host, options.db, options.mode, options.pool_size, options.timeout, options.retry_attempts,
            options.batch_chunk_size) == (info.redis_host, info.redis_db, info.redis_mode, store.connection_pool_size,
                                          store.connection_timeout / 1000, store.retry_attempts,
                                          store.batch_chunk_size)
