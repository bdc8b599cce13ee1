"""The one home of configuration: TorchServe's config.properties keys, env vars and CLI flags.

Precedence, highest first: CLI flags > environment > config file > built-in defaults.
Environment variables are ``MODELSERVE_<KEY>`` (always honoured) and TorchServe's ``TS_<KEY>``
(honoured only with ``enable_envvars_config=true``, as TorchServe does).
"""

from __future__ import annotations

import ipaddress
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_PREFIX = "MODELSERVE_"
TORCHSERVE_ENV_PREFIX = "TS_"
DEFAULT_CONFIG_FILE = Path("config.properties")


class ConfigError(ValueError):
    """A configuration value (file, env or flag) is invalid; the message names the key."""


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
    # Snapshots of the registered models (TorchServe's logs/config); --ncs turns them off.
    snapshot_dir: Path = Path("logs/config")
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

    def resolved_runtime_dir(self) -> Path:
        """Where worker sockets and specs live: private to the server's user."""
        if self.runtime_dir is not None:
            return self.runtime_dir
        return Path(tempfile.gettempdir()) / f"modelserve-{os.getuid()}"


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
    return settings
