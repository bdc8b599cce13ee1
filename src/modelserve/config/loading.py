"""Building the settings: config.properties, then the environment, then command-line flags.

Precedence, highest first: CLI flags > environment > config file > built-in defaults.
Environment variables are ``MODELSERVE_<KEY>`` (always honoured) and TorchServe's ``TS_<KEY>``
(honoured only with ``enable_envvars_config=true``, as TorchServe does).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modelserve.config.notices import ConfigNotice, key_notices
from modelserve.config.properties import parse_properties
from modelserve.config.settings import ConfigError, Settings

ENV_PREFIX = "MODELSERVE_"
TORCHSERVE_ENV_PREFIX = "TS_"
DEFAULT_CONFIG_FILE = Path("config.properties")


def cuda_visible_devices(environ: Mapping[str, str] | None = None) -> str | None:
    """``CUDA_VISIBLE_DEVICES``: CUDA's own variable, which narrows the GPUs workers see."""
    return (os.environ if environ is None else environ).get("CUDA_VISIBLE_DEVICES")


def _environment_values(environ: Mapping[str, str], file_values: Mapping[str, str]) -> dict:
    keys = Settings.model_fields
    enable_ts_env = str(
        environ.get(ENV_PREFIX + "ENABLE_ENVVARS_CONFIG")
        or file_values.get("enable_envvars_config", "false")
    ).lower() in ("1", "true", "yes")
    values: dict[str, str] = {}
    for key in keys:
        if enable_ts_env and (TORCHSERVE_ENV_PREFIX + key.upper()) in environ:
            values[key] = environ[TORCHSERVE_ENV_PREFIX + key.upper()]
        if (ENV_PREFIX + key.upper()) in environ:
            values[key] = environ[ENV_PREFIX + key.upper()]
    return values


def _environment_notices(environ: Mapping[str, str]) -> list[ConfigNotice]:
    # Only our own prefix: TS_* variables are TorchServe's, read for a few keys and only when
    # asked (enable_envvars_config), and a host may set others for other reasons.
    present = [name for name in environ if name.startswith(ENV_PREFIX)]
    return key_notices(
        "environment",
        "variable",
        present,
        Settings.model_fields,
        lambda key: ENV_PREFIX + key.upper(),
    )


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from a properties file, the environment and CLI overrides.

    With no ``config_file`` the ``config.properties`` of the working directory is read when
    present, as TorchServe does.
    """
    environ = os.environ if environ is None else environ
    if config_file is None and environ.get("TS_CONFIG_FILE"):
        config_file = Path(environ["TS_CONFIG_FILE"])
    file_values: dict[str, str] = {}
    if config_file is not None:
        try:
            file_values = parse_properties(Path(config_file).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from exc
    elif DEFAULT_CONFIG_FILE.is_file():
        config_file = DEFAULT_CONFIG_FILE
        file_values = parse_properties(DEFAULT_CONFIG_FILE.read_text())
    merged: dict[str, Any] = {**file_values, **_environment_values(environ, file_values)}
    merged.update({key: value for key, value in (overrides or {}).items() if value is not None})
    try:
        settings = Settings(**merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        if not key:  # a check across keys: its message names them
            raise ConfigError(first["msg"].removeprefix("Value error, ")) from exc
        raise ConfigError(f"{key}: {first['msg']} (got {first.get('input')!r})") from exc
    for plane in ("inference", "management", "metrics"):
        settings.address(plane)
    for plane in ("inference", "management"):
        settings.grpc_address(plane)
    settings._config_file = Path(config_file) if config_file is not None else None
    settings._notices = (
        *key_notices(str(config_file), "key", file_values, Settings.model_fields),
        *_environment_notices(environ),
    )
    return settings


def config_notices(settings: Settings) -> list[ConfigNotice]:
    """What ``load_settings`` found worth telling the user, for the console once logging is up:
    a WARNING per unknown key of the config file or ``MODELSERVE_*`` variable (naming the
    closest known key), and an INFO line per source listing the TorchServe keys that modelserve
    does not use. Empty for settings built otherwise."""
    return list(settings._notices)


def log_config_notices(settings: Settings, logger: logging.Logger) -> None:
    """Log each of ``config_notices(settings)`` at its level."""
    for notice in config_notices(settings):
        logger.log(notice.level, "%s", notice.message)
