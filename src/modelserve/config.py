"""The one home of configuration: TorchServe's config.properties keys, env vars and CLI flags.

Precedence, highest first: CLI flags > environment > config file > built-in defaults.
Environment variables are ``MODELSERVE_<KEY>`` (always honoured) and TorchServe's ``TS_<KEY>``
(honoured only with ``enable_envvars_config=true``, as TorchServe does).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from modelserve.suggestions import did_you_mean

ENV_PREFIX = "MODELSERVE_"
TORCHSERVE_ENV_PREFIX = "TS_"
DEFAULT_CONFIG_FILE = Path("config.properties")
INSTANCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Where a server's default snapshot directory lies, under the working directory.
SNAPSHOT_ROOT = Path("logs/config")


class ConfigError(ValueError):
    """A configuration value (file, env or flag) is invalid; the message names the key."""


class ConfigNotice(NamedTuple):
    """A remark on the configuration, for the console once logging is up (``config_notices``)."""

    level: int  # a logging level
    message: str


@dataclass(frozen=True)
class Address:
    """A listener address parsed from TorchServe's ``http://host:port`` form."""

    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, key: str, value: str) -> Address:
        """Parse ``http(s)://host:port``; a bare ``host:port`` means http."""
        text = value if "://" in value else f"http://{value}"
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
            raise ConfigError(f"{key}: expected http://host:port, got {value!r}")
        return cls(parts.scheme, parts.hostname, parts.port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


class Settings(BaseModel):
    """Every server setting, under TorchServe's config.properties key names."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    # What load_settings found worth telling (unknown keys ...): see config_notices.
    _notices: tuple[ConfigNotice, ...] = PrivateAttr(default=())

    inference_address: str = "http://127.0.0.1:8080"
    management_address: str = "http://127.0.0.1:8081"
    metrics_address: str = "http://127.0.0.1:8082"
    model_store: Path | None = None
    load_models: list[str] = Field(default_factory=list)
    # Per-model startup settings: {name: {version: {minWorkers, maxWorkers, batchSize, ...}}}
    models: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    default_workers_per_model: int = Field(0, ge=0)
    job_queue_size: int = Field(100, ge=1)
    default_response_timeout: int = Field(120, ge=1)
    default_startup_timeout: int = Field(120, ge=1)
    unregister_model_timeout: int = Field(120, ge=1)
    max_request_size: int = Field(6553500, ge=1)
    max_response_size: int = Field(6553500, ge=1)
    max_archive_size: int = Field(10 * 1024**3, ge=1)
    # TorchServe defaults this to false; a local user must be able to register models out of
    # the box, so modelserve enables it (docs/compatibility.md).
    enable_model_api: bool = True
    enable_envvars_config: bool = False
    runtime_dir: Path | None = None
    log_level: str = "INFO"
    # Where the access, model and server logs go (rotated daily); None = stderr only.
    log_dir: Path | None = None
    log_backup_count: int = Field(30, ge=0)
    log_format: Literal["text", "json"] = "text"
    # One line per HTTP request; it costs about a quarter of the no-op throughput at saturation.
    enable_access_log: bool = True
    # TorchServe's metrics keys. modelserve defaults to prometheus (TorchServe: log) and to
    # keeping handler metrics the config does not declare (TorchServe drops them).
    metrics_mode: Literal["prometheus", "log", "legacy"] = "prometheus"
    metrics_config: Path | None = None
    model_metrics_auto_detect: bool = True
    enable_metrics_api: bool = True
    disable_system_metrics: bool = False
    # GPUs the workers spread over; None = those NVML and CUDA_VISIBLE_DEVICES show.
    number_of_gpu: int | None = Field(None, ge=0)
    # Where every worker runs (cpu, cuda, cuda:N), over any model config; None = auto.
    device: str | None = None
    # pip-install an archive's requirementsFile at registration (TorchServe's key).
    install_py_dep_per_model: bool = False
    # This server's name among the user's running servers (modelserve ps / status / stop);
    # None = the inference port it listens on, e.g. "8080".
    instance_name: str | None = None
    # Snapshots of the registered models; None = logs/config/<instance name> (TorchServe:
    # logs/config), so two servers started in one directory never restore each other's models.
    # --ncs turns them off.
    snapshot_dir: Path | None = None
    enable_snapshots: bool = True
    # Compute threads per worker (OMP/MKL); 0 = share the cores left after the frontend's.
    worker_threads: int = Field(0, ge=0)

    # ----- security (docs/security.md)
    # Token authorization. None (unset) = on exactly when the inference or management plane
    # listens on a non-loopback address; true/false force it (TorchServe: on by default).
    disable_token_authorization: bool | None = None
    token_expiration_min: float = Field(60, gt=0)
    # Where the generated management/inference/API keys are written (mode 0600).
    key_file: Path = Path("key_file.json")
    # A fixed token that never expires, for containers: the value itself, or a file holding it
    # (a mounted secret). Either replaces the generated keys.
    auth_token: str | None = None
    auth_token_file: Path | None = None
    # Regexes a register url must match (whole url, case-insensitive) to be fetched; empty =
    # only archives in the model store (TorchServe allows every file and http(s) url).
    allowed_urls: list[str] = Field(default_factory=list)
    max_download_size: int = Field(10 * 1024**3, ge=1)
    download_timeout: float = Field(600, gt=0)
    # TLS for the planes whose address is https://.
    certificate_file: Path | None = None
    private_key_file: Path | None = None
    # CORS response headers; unset = none sent (as in TorchServe).
    cors_allowed_origin: str | None = None
    cors_allowed_methods: str | None = None
    cors_allowed_headers: str | None = None
    # Request line plus headers, in bytes, on every plane.
    max_header_size: int = Field(64 * 1024, ge=1024)

    # ----- gRPC (docs/protocols.md): TorchServe's keys; the addresses are hosts, the ports
    # separate (0 = any free port). Loopback by default, as in TorchServe (CVE-2024-35199).
    enable_grpc: bool = True
    grpc_inference_address: str = "127.0.0.1"
    grpc_management_address: str = "127.0.0.1"
    grpc_inference_port: int = Field(7070, ge=0, le=65535)
    grpc_management_port: int = Field(7071, ge=0, le=65535)
    # TLS on both gRPC ports with certificate_file / private_key_file.
    enable_grpc_ssl: bool = False

    @field_validator("load_models", mode="before")
    @classmethod
    def _split_model_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("allowed_urls", mode="before")
    @classmethod
    def _split_patterns(cls, value: Any) -> Any:
        # TorchServe's separator is a comma; a regex needing a literal comma cannot be listed.
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("allowed_urls")
    @classmethod
    def _check_patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex {pattern!r}: {exc}") from exc
        return value

    @field_validator("instance_name")
    @classmethod
    def _check_instance_name(cls, value: str | None) -> str | None:
        # It names a file in the runtime directory and is typed on command lines.
        if value is not None and not INSTANCE_NAME.fullmatch(value):
            raise ValueError(
                "expected 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit"
            )
        return value

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"cpu|cuda(:\d+)?", value):
            raise ValueError("expected cpu, cuda or cuda:N")
        return value

    @field_validator("models", mode="before")
    @classmethod
    def _parse_models_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return orjson.loads(value) if value.strip() else {}
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON: {exc}") from exc
        return value

    def address(self, plane: str) -> Address:
        """The parsed listen address of ``plane`` (inference, management or metrics)."""
        key = f"{plane}_address"
        return Address.parse(key, getattr(self, key))

    def grpc_address(self, plane: str) -> Address:
        """The listen address of the gRPC ``plane`` (inference or management)."""
        key = f"grpc_{plane}_address"
        host = getattr(self, key).strip()
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not host or "/" in host or (":" in host and not _is_ipv6(host)):
            raise ConfigError(f"{key}: expected a host name or IP address, got {host!r}")
        scheme = "grpcs" if self.enable_grpc_ssl else "grpc"
        return Address(scheme, host, getattr(self, f"grpc_{plane}_port"))

    def resolved_snapshot_dir(self, instance_name: str) -> Path:
        """Where the snapshots of the server named ``instance_name`` live."""
        return self.snapshot_dir if self.snapshot_dir is not None else SNAPSHOT_ROOT / instance_name

    def resolved_runtime_dir(self) -> Path:
        """Where worker sockets and specs live: private to the server's user."""
        if self.runtime_dir is not None:
            return self.runtime_dir
        return Path(tempfile.gettempdir()) / f"modelserve-{os.getuid()}"


@dataclass(frozen=True)
class PortFlags:
    """``--port``, ``--management-port``, ``--metrics-port``, ``--grpc-port``,
    ``--grpc-management-port`` and ``--no-grpc`` (None / False = as configured)."""

    inference: int | None = None
    management: int | None = None
    metrics: int | None = None
    grpc_inference: int | None = None
    grpc_management: int | None = None
    no_grpc: bool = False

    def apply(self, settings: Settings) -> Settings:
        """``settings`` with these ports; a port flag keeps the plane's configured host."""
        update: dict[str, Any] = {}
        for plane in ("inference", "management", "metrics"):
            port = getattr(self, plane)
            if port is not None:
                moved = dataclasses.replace(settings.address(plane), port=port)
                update[f"{plane}_address"] = str(moved)
        for plane in ("inference", "management"):
            port = getattr(self, f"grpc_{plane}")
            if port is not None:
                update[f"grpc_{plane}_port"] = port
        if self.no_grpc:
            update["enable_grpc"] = False
        return settings.model_copy(update=update)


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def cuda_visible_devices(environ: Mapping[str, str] | None = None) -> str | None:
    """``CUDA_VISIBLE_DEVICES``: CUDA's own variable, which narrows the GPUs workers see."""
    return (os.environ if environ is None else environ).get("CUDA_VISIBLE_DEVICES")


def parse_properties(text: str) -> dict[str, str]:
    """Parse a Java-style properties file (``key=value`` or ``key: value``; # and ! comments)."""
    values: dict[str, str] = {}
    pending = ""
    for raw_line in text.splitlines():
        line = pending + raw_line.strip()
        pending = ""
        if not line or line[0] in "#!":
            continue
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        match = re.match(r"([^=:\s]+)\s*[=:\s]\s*(.*)", line)
        if match:
            values[match.group(1)] = match.group(2)
        else:
            values[line] = ""
    return values


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


# Every key TorchServe 0.12 reads from config.properties (its ConfigManager, plus vmargs and
# plugins_path, which its launcher reads), so that a TorchServe config file loads without
# "unknown key" warnings; the ones modelserve has no setting for are listed once, at INFO.
# fmt: off
TORCHSERVE_KEYS: frozenset[str] = frozenset({
    "allowed_urls", "async_logging", "blacklist_env_vars", "certificate_file",
    "cors_allowed_headers", "cors_allowed_methods", "cors_allowed_origin", "cpp_log_config",
    "cpu_launcher_args", "cpu_launcher_enable", "debug", "decode_input_request",
    "default_response_timeout", "default_service_handler", "default_startup_timeout",
    "default_workers_per_model", "disable_system_metrics", "disable_token_authorization",
    "enable_envvars_config", "enable_grpc_ssl", "enable_metrics_api", "enable_model_api",
    "grpc_inference_address", "grpc_inference_max_connection_age_grace_ms",
    "grpc_inference_max_connection_age_ms", "grpc_inference_port", "grpc_management_address",
    "grpc_management_max_connection_age_grace_ms", "grpc_management_max_connection_age_ms",
    "grpc_management_port", "inference_address", "initial_distribution_port",
    "initial_worker_port", "install_py_dep_per_model", "io_ratio", "ipex_enable",
    "ipex_gpu_enable", "job_queue_size", "keystore", "keystore_pass", "keystore_type",
    "limit_max_image_pixels", "load_models", "management_address", "max_request_size",
    "max_response_size", "metric_time_interval", "metrics_address", "metrics_config",
    "metrics_mode", "model_metrics_auto_detect", "model_server_home", "model_snapshot",
    "model_store", "models", "netty_client_threads", "number_of_gpu", "number_of_netty_threads",
    "plugins_path", "prefer_direct_buffer", "private_key_file", "python", "service_envelope",
    "system_metrics_cmd", "token_expiration_min", "tsConfigFile", "ts_header_key_sequence_end",
    "ts_header_key_sequence_id", "ts_header_key_sequence_start", "ts_open_inference_protocol",
    "unregister_model_timeout", "use_env_allowed_urls", "use_native_io", "version", "vmargs",
    "workflow_store",
})
# fmt: on


def _key_notices(
    source: str, noun: str, present: Iterable[str], spelling: Callable[[str], str]
) -> list[ConfigNotice]:
    """A warning per unknown key, naming the closest known one, and one INFO line for the
    TorchServe keys modelserve does not use. ``spelling`` turns a key into its form in
    ``source`` (``MODELSERVE_JOB_QUEUE_SIZE`` for an environment variable)."""
    settings_keys = {spelling(key) for key in Settings.model_fields}
    torchserve_only = {spelling(key) for key in TORCHSERVE_KEYS} - settings_keys
    known = settings_keys | torchserve_only
    notices = [
        ConfigNotice(
            logging.WARNING,
            f"{source}: unknown {noun} {name!r} is ignored{did_you_mean(name, known)}",
        )
        for name in present
        if name not in known
    ]
    unused = sorted(name for name in present if name in torchserve_only)
    if unused:
        notices.append(
            ConfigNotice(
                logging.INFO,
                f"{source}: ignored, TorchServe settings that modelserve does not use: "
                + ", ".join(unused),
            )
        )
    return notices


def _environment_notices(environ: Mapping[str, str]) -> list[ConfigNotice]:
    # Only our own prefix: TS_* variables are TorchServe's, read for a few keys and only when
    # asked (enable_envvars_config), and a host may set others for other reasons.
    present = [name for name in environ if name.startswith(ENV_PREFIX)]
    return _key_notices("environment", "variable", present, lambda key: ENV_PREFIX + key.upper())


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
        raise ConfigError(f"{key}: {first['msg']} (got {first.get('input')!r})") from exc
    for plane in ("inference", "management", "metrics"):
        settings.address(plane)
    for plane in ("inference", "management"):
        settings.grpc_address(plane)
    settings._notices = (
        *_key_notices(str(config_file), "key", file_values, str),
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
