"""The one home of configuration: TorchServe's config.properties keys, environment variables
and command-line flags, merged into one validated ``Settings`` (see loading.py for the
precedence)."""

from modelserve.config.loading import (
    config_notices,
    cuda_visible_devices,
    load_settings,
    log_config_notices,
)
from modelserve.config.notices import ConfigNotice
from modelserve.config.properties import parse_properties
from modelserve.config.settings import Address, ConfigError, PortFlags, Settings

__all__ = [
    "Address",
    "ConfigError",
    "ConfigNotice",
    "PortFlags",
    "Settings",
    "config_notices",
    "cuda_visible_devices",
    "load_settings",
    "log_config_notices",
    "parse_properties",
]
