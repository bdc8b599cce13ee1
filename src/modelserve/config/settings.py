"""The settings object: every server setting under TorchServe's config.properties key names,
validated, plus the listen addresses parsed from them and the port flags that move them."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from modelserve.config.notices import ConfigNotice

INSTANCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Where a server's default snapshot directory lies, under the working directory.
SNAPSHOT_ROOT = Path("logs/config")


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
    # What load_settings found worth telling (unknown keys ...): see config_notices.
    _notices: tuple[ConfigNotice, ...] = PrivateAttr(default=())
    # The config file the settings were read from, if any.
    _config_file: Path | None = PrivateAttr(default=None)

    inference_address: str = "http://127.0.0.1:8080"
    management_address: str = "http://127.0.0.1:8081"
    metrics_address: str = "http://127.0.0.1:8082"
    model_store: Path | None = None
    load_models: list[str] = Field(default_factory=list)
    # TorchServe's snapshot JSON ({"models": {name: {version: {marName, defaultVersion,
    # minWorkers, ...}}}}): the model versions restored at start, instead of the newest
    # snapshot (a snapshot file given as --ts-config; KServe's config.properties).
    model_snapshot: str | None = None
    # Per-model startup settings: {name: {version: {minWorkers, maxWorkers, batchSize, ...}}}
    models: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    default_workers_per_model: int = Field(0, ge=0)
    job_queue_size: int = Field(100, ge=1)
    # Inference requests in the models at once, the server over (grps's max_concurrency; more
    # wait their turn), and in flight in all, waiting included (grps's max_connections; more
    # are answered 503). 0 = no limit.
    max_concurrency: int = Field(0, ge=0)
    max_connections: int = Field(0, ge=0)
    default_response_timeout: int = Field(120, ge=1)
    default_startup_timeout: int = Field(120, ge=1)
    unregister_model_timeout: int = Field(120, ge=1)
    # Seconds a stopping server (SIGTERM, Ctrl-C) gives the requests in flight before it stops
    # its workers: below Docker's 10 s stop timeout and Kubernetes' 30 s grace period, so a
    # container exits 0 instead of being killed mid-request (docs/deploy.md).
    drain_timeout: float = Field(8, gt=0)
    max_request_size: int = Field(6553500, ge=1)
    max_response_size: int = Field(6553500, ge=1)
    # Answers in parts (docs/streaming.md): parts a worker may send ahead of a slow client
    # (its send blocks beyond), the seconds a stream waits for its next part or for its
    # client to take one, and the seconds a whole answer may take. Past a timeout the stream
    # ends with a 504 and the request is cancelled in its worker.
    stream_window: int = Field(16, ge=1, le=1024)
    stream_chunk_timeout: float = Field(60, gt=0)
    stream_timeout: float = Field(600, gt=0)
    max_archive_size: int = Field(10 * 1024**3, ge=1)
    # Keep large freed buffers (request bodies, tensors) for reuse in the frontend and the
    # workers, instead of glibc handing them back and faulting fresh pages in (allocator.py).
    reuse_large_buffers: bool = True
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
    # What the server was started to serve, for modelserve ps (serve: the model file).
    deploy_path: Path | None = None
    # Also serve the dashboard at / of the inference plane, where grps users look for it
    # (the grps commands: torch_serve, tf_serve, trt_serve).
    inference_dashboard: bool = False
    # Snapshots of the registered models; None = logs/config/<instance name> (TorchServe:
    # logs/config), so two servers started in one directory never restore each other's models.
    # --ncs turns them off.
    snapshot_dir: Path | None = None
    enable_snapshots: bool = True
    # Compute threads per worker (OMP/MKL); 0 = share the cores left after the frontend's.
    worker_threads: int = Field(0, ge=0)
    # One worker process that has done its imports (torch) and waits for a model, so that a
    # registration loads the model at once instead of starting an interpreter first
    # (engine/spare_worker.py). It costs the memory of one idle worker.
    spare_worker: bool = True

    # ----- security (docs/security.md)
    # Token authorization. None (unset) = on exactly when the inference or management plane
    # listens on a non-loopback address; true/false force it (TorchServe: on by default).
    disable_token_authorization: bool | None = None
    # /ping and /v2/health/live|ready (HTTP) and ServerLive/ServerReady (gRPC) answer without a
    # key, for the HTTP probes of Kubernetes and load balancers, which cannot send one. They
    # tell nothing but whether the server serves; every other route stays keyed.
    open_health_checks: bool = False
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

    # ----- Triton model repositories (docs/model-repositories.md), Triton's flag names.
    model_repository: list[Path] = Field(default_factory=list)
    # none: load every model at start; poll: also follow the repositories' changes every
    # repository_poll_secs; explicit: load load_model at start, the rest on request.
    model_control_mode: Literal["none", "poll", "explicit"] = "none"
    repository_poll_secs: float = Field(15, gt=0)
    load_model: list[str] = Field(default_factory=list)
    # Refuse a model without config.pbtxt (Triton's --strict-model-config).
    strict_model_config: bool = False
    # Read <model>/configs/<name> instead of config.pbtxt where it exists.
    model_config_name: str | None = None

    # ----- TensorFlow Serving's model layout (docs/model-repositories.md), its flag names.
    # One model (model_name, model_base_path), or TF Serving's ModelServerConfig text file.
    model_name: str | None = None
    model_base_path: Path | None = None
    model_config_file: Path | None = None
    # How often the base paths are read again for new versions (0: once, at start).
    file_system_poll_wait_seconds: float = Field(1, ge=0)
    # How often model_config_file is read again (0, TF Serving's default: once, at start).
    model_config_file_poll_wait_seconds: float = Field(0, ge=0)

    @field_validator("load_models", "load_model", "model_repository", mode="before")
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

    @model_validator(mode="after")
    def _check_limits(self) -> Settings:
        # As grps: the requests in flight include those running.
        if 0 < self.max_connections < self.max_concurrency:
            raise ValueError(
                f"max_connections ({self.max_connections}) must be at least max_concurrency "
                f"({self.max_concurrency})"
            )
        return self

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

    @property
    def config_file(self) -> Path | None:
        """The config file these settings were read from (None: defaults and environment)."""
        return self._config_file

    def resolved_snapshot_dir(self, instance_name: str) -> Path:
        """Where the snapshots of the server named ``instance_name`` live."""
        return self.snapshot_dir if self.snapshot_dir is not None else SNAPSHOT_ROOT / instance_name

    def resolved_runtime_dir(self) -> Path:
        """Where worker sockets and specs live: private to the server's user."""
        if self.runtime_dir is not None:
            return self.runtime_dir
        try:
            temporary = tempfile.gettempdir()
        except FileNotFoundError as exc:  # a read-only root file system with no tmpfs
            raise ConfigError(
                "runtime_dir: no writable temporary directory ($TMPDIR, /tmp, /var/tmp): set "
                "runtime_dir (MODELSERVE_RUNTIME_DIR) or mount a tmpfs at /tmp"
            ) from exc
        return Path(temporary) / f"modelserve-{os.getuid()}"


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
