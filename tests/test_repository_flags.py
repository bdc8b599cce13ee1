"""``tritonserver`` and ``tensorflow_model_server`` command lines given to ``modelserve start``
with the word replaced: each flag, in its server's own spelling, sets the setting it means."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelserve.cli import _settings_from, build_parser
from modelserve.config import ConfigError, Settings


def _settings(*flags: str) -> Settings:
    return _settings_from(build_parser().parse_args(["start", "--ts-config", "/dev/null", *flags]))


def _ports(settings: Settings) -> tuple[int, int, int]:
    """The HTTP inference, gRPC inference and metrics ports."""
    return (
        settings.address("inference").port,
        settings.grpc_inference_port,
        settings.address("metrics").port,
    )


def test_a_tritonserver_command_line() -> None:
    settings = _settings(
        "--model-repository=/models",
        "--model-control-mode=poll",
        "--repository-poll-secs=5",
        "--load-model=*",
        "--strict-model-config=false",
        "--http-port=8000",
        "--grpc-port=8001",
        "--metrics-port=8002",
    )
    assert settings.model_repository == [Path("/models")]
    assert (settings.model_control_mode, settings.repository_poll_secs) == ("poll", 5)
    assert settings.load_model == ["*"]
    assert settings.strict_model_config is False
    assert _ports(settings) == (8000, 8001, 8002)


@pytest.mark.parametrize(
    ("flags", "strict"),
    [
        ([], False),
        (["--strict-model-config"], True),
        (["--strict-model-config=true"], True),
        (["--strict-model-config", "off"], False),
        (["--disable-auto-complete-config"], True),
    ],
)
def test_strict_model_config_takes_tritons_booleans(flags: list[str], strict: bool) -> None:
    assert _settings(*flags).strict_model_config is strict


def test_strict_model_config_refuses_what_is_no_boolean() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["start", "--strict-model-config=maybe"])


@pytest.mark.parametrize("spelling", ["_", "-"])
def test_a_tensorflow_model_server_command_line(spelling: str) -> None:
    flags = {
        "port": "8500",
        "rest_api_port": "8501",
        "model_name": "half_plus_two",
        "model_base_path": "/models/half_plus_two",
        "file_system_poll_wait_seconds": "2",
        "model_config_file_poll_wait_seconds": "60",
    }
    settings = _settings(
        *(f"--{flag.replace('_', spelling)}={value}" for flag, value in flags.items())
    )
    assert (settings.model_name, settings.model_base_path) == (
        "half_plus_two",
        Path("/models/half_plus_two"),
    )
    assert settings.file_system_poll_wait_seconds == 2
    assert settings.model_config_file_poll_wait_seconds == 60
    # TF Serving's --port is its gRPC port; --rest_api_port its REST (our inference) port.
    assert _ports(settings)[:2] == (8501, 8500)


def test_tf_servings_poll_waits_default_and_take_zero() -> None:
    settings = _settings("--model_config_file", "/models/models.config")
    assert settings.model_config_file_poll_wait_seconds == 0  # TF Serving's default: once
    assert settings.file_system_poll_wait_seconds == 1
    assert _settings("--file_system_poll_wait_seconds=0").file_system_poll_wait_seconds == 0
    with pytest.raises(ConfigError, match="model_config_file_poll_wait_seconds"):
        _settings("--model_config_file_poll_wait_seconds=-1")


def test_port_is_modelserves_without_rest_api_port() -> None:
    settings = _settings("--model-name", "tiny", "--model-base-path", "/m", "--port", "9080")
    assert _ports(settings)[:2] == (9080, 7070)
    with pytest.raises(ConfigError, match="give it or --grpc-port, not both"):
        _settings("--port", "8500", "--rest_api_port", "8501", "--grpc-port", "8001")
