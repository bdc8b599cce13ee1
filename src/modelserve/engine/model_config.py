"""An archive's model-config YAML (``--config-file``): the keys the frontend acts on.

Wrong types are ignored with a warning, as TorchServe does; the whole document is also handed
to the handler as ``context.model_yaml_config``. Parsing uses ``yaml.safe_load`` only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelserve.engine.devices import DEVICE_TYPES
from modelserve.engine.errors import InvalidModelException

log = logging.getLogger("modelserve.engine")

_INT_KEYS = {
    "minWorkers": "min_workers",
    "maxWorkers": "max_workers",
    "batchSize": "batch_size",
    "maxBatchDelay": "max_batch_delay",
    "responseTimeout": "response_timeout",
    "startupTimeout": "startup_timeout",
    "jobQueueSize": "job_queue_size",
    "maxRetryTimeoutInSec": "max_retry_timeout",
}


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Frontend settings from the model YAML; None where the YAML is silent or invalid."""

    raw: dict[str, Any]
    min_workers: int | None = None
    max_workers: int | None = None
    batch_size: int | None = None
    max_batch_delay: int | None = None
    response_timeout: int | None = None
    startup_timeout: int | None = None
    job_queue_size: int | None = None
    max_retry_timeout: int | None = None
    device_type: str | None = None
    device_ids: tuple[int, ...] | None = None

    def worker_range(self) -> tuple[int, int] | None:
        """(min, max) when the YAML sets a usable pair (min > 0 and max >= min)."""
        if (
            self.min_workers
            and self.max_workers is not None
            and self.max_workers >= self.min_workers
        ):
            return self.min_workers, self.max_workers
        return None


def load_model_config(path: Path | None) -> ModelConfig:
    """Read the YAML at ``path`` (an absent path gives an empty config)."""
    if path is None:
        return ModelConfig(raw={})
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidModelException(f"cannot read model config {path.name}: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidModelException(f"model config {path.name} is not a YAML mapping")
    values: dict[str, Any] = {}
    for yaml_key, field_name in _INT_KEYS.items():
        value = document.get(yaml_key)
        if value is None:
            continue
        if _is_whole_number(value):
            values[field_name] = value
        else:
            _ignore(path, yaml_key, value, "not a whole number")
    device_type = document.get("deviceType")
    if device_type is not None:
        if device_type in DEVICE_TYPES:
            values["device_type"] = device_type
        else:
            _ignore(path, "deviceType", device_type, f"not one of {', '.join(DEVICE_TYPES)}")
    device_ids = document.get("deviceIds")
    if device_ids is not None:
        if isinstance(device_ids, list) and device_ids and all(map(_is_whole_number, device_ids)):
            values["device_ids"] = tuple(device_ids)
        else:
            _ignore(path, "deviceIds", device_ids, "not a list of GPU numbers")
    return ModelConfig(raw=document, **values)


def _is_whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _ignore(path: Path, key: str, value: Any, reason: str) -> None:
    log.warning("model config %s: ignoring %s=%r (%s)", path.name, key, value, reason)
