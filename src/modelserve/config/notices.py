"""What loading the configuration found worth telling the user: unknown keys (with the closest
known one) and TorchServe keys modelserve does not use. Logged once logging is up."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import NamedTuple

from modelserve.suggestions import did_you_mean


class ConfigNotice(NamedTuple):
    """A remark on the configuration, for the console once logging is up (``config_notices``)."""

    level: int  # a logging level
    message: str


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


def key_notices(
    source: str,
    noun: str,
    present: Iterable[str],
    setting_keys: Iterable[str],
    spelling: Callable[[str], str] = str,
) -> list[ConfigNotice]:
    """A warning per unknown key, naming the closest known one, and one INFO line for the
    TorchServe keys modelserve does not use. ``spelling`` turns a key into its form in
    ``source`` (``MODELSERVE_JOB_QUEUE_SIZE`` for an environment variable)."""
    settings_keys = {spelling(key) for key in setting_keys}
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
