"""Settings: config.properties parsing and CLI > env > file > default precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelserve.config import ConfigError, load_settings, parse_properties


def test_properties_syntax() -> None:
    text = (
        "# comment\n! also\ninference_address=http://0.0.0.0:9090\n"
        "job_queue_size : 7\nmodels={\\\n}\n"
    )
    assert parse_properties(text) == {
        "inference_address": "http://0.0.0.0:9090",
        "job_queue_size": "7",
        "models": "{}",
    }


def test_precedence_cli_over_env_over_file(tmp_path: Path) -> None:
    config = tmp_path / "config.properties"
    config.write_text("job_queue_size=7\ndefault_response_timeout=30\nload_models=a.mar,b=b.mar\n")
    settings = load_settings(config, {}, {})
    assert settings.job_queue_size == 7
    assert settings.load_models == ["a.mar", "b=b.mar"]
    env = {"MODELSERVE_JOB_QUEUE_SIZE": "9", "MODELSERVE_DEFAULT_RESPONSE_TIMEOUT": "40"}
    settings = load_settings(config, {"job_queue_size": 11}, env)
    assert settings.job_queue_size == 11
    assert settings.default_response_timeout == 40


def test_torchserve_env_only_with_enable_envvars_config(tmp_path: Path) -> None:
    env = {"TS_JOB_QUEUE_SIZE": "5"}
    assert load_settings(None, {}, env).job_queue_size == 100
    env["MODELSERVE_ENABLE_ENVVARS_CONFIG"] = "true"
    assert load_settings(None, {}, env).job_queue_size == 5


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("job_queue_size=lots", "job_queue_size"),
        ("job_queue_size=0", "job_queue_size"),
        ("inference_address=ftp://x:1", "inference_address"),
        ("models={broken", "models"),
    ],
)
def test_invalid_values_name_the_key(tmp_path: Path, line: str, fragment: str) -> None:
    config = tmp_path / "config.properties"
    config.write_text(line + "\n")
    with pytest.raises(ConfigError, match=fragment):
        load_settings(config, {}, {})


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "absent.properties", {}, {})
