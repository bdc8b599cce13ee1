"""An archive's model-config YAML (``--config-file``): the keys the frontend acts on.

Wrong types are ignored with a warning, as TorchServe does; the whole document is also handed
to the handler as ``context.model_yaml_config``. Parsing uses ``yaml.safe_load`` only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelserve.engine.devices import DEVICE_TYPES
from modelserve.engine.errors import InvalidModelException
from modelserve.engine.settings import TORCHSERVE_KEYS, VersionSettings
from modelserve.protocol_contract import TENSOR_DATATYPES

log = logging.getLogger("modelserve.engine")

TENSOR_KEYS = ("inputs", "outputs")
# TF Serving's version labels: ``versionLabels: {label: version}``.
LABELS_KEY = "versionLabels"
TRITON_CONFIG_KEY = "tritonConfig"

# The knobs that are whole numbers (deviceIds, the other one, is a list).
_INT_KNOBS = tuple(name for name in TORCHSERVE_KEYS if name != "device_ids")


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Frontend settings from the model YAML; None where the YAML is silent or invalid."""

    raw: dict[str, Any]
    # The knobs the YAML sets (minWorkers, batchSize, deviceIds …); None where it is silent.
    settings: VersionSettings = field(default_factory=VersionSettings)
    device_type: str | None = None
    # Declared tensor metadata (top-level ``inputs:`` / ``outputs:``), KServe v2 style:
    # [{name, datatype, shape}], overriding what the handler reports.
    inputs: list[dict[str, Any]] | None = None
    outputs: list[dict[str, Any]] | None = None
    # ``versionLabels``: TF Serving label -> the version it names.
    version_labels: dict[str, str] = field(default_factory=dict)
    # ``tritonConfig``: the Triton model configuration (config.pbtxt as JSON) of a model served
    # from a Triton repository, answered by the model config API.
    triton_config: dict[str, Any] | None = None


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
    settings = VersionSettings()
    for name in _INT_KNOBS:
        yaml_key = TORCHSERVE_KEYS[name]
        value = document.get(yaml_key)
        if value is None:
            continue
        if _is_whole_number(value):
            setattr(settings, name, value)
        else:
            _ignore(path, yaml_key, value, "not a whole number")
    values: dict[str, Any] = {}
    device_type = document.get("deviceType")
    if device_type is not None:
        if device_type in DEVICE_TYPES:
            values["device_type"] = device_type
        else:
            _ignore(path, "deviceType", device_type, f"not one of {', '.join(DEVICE_TYPES)}")
    device_ids = document.get("deviceIds")
    if device_ids is not None:
        if isinstance(device_ids, list) and device_ids and all(map(_is_whole_number, device_ids)):
            settings.device_ids = tuple(device_ids)
        else:
            _ignore(path, "deviceIds", device_ids, "not a list of GPU numbers")
    for key in TENSOR_KEYS:
        if document.get(key) is not None:
            values[key] = _tensor_list(path, key, document[key])
    labels = document.get(LABELS_KEY)
    if isinstance(labels, dict):
        values["version_labels"] = {
            str(label): str(version)
            for label, version in labels.items()
            if version is not None and not isinstance(version, (dict, list))
        }
    elif labels is not None:
        _ignore(path, LABELS_KEY, labels, "not a mapping of label to version")
    triton_config = document.get(TRITON_CONFIG_KEY)
    if isinstance(triton_config, dict):
        values["triton_config"] = triton_config
    elif triton_config is not None:
        _ignore(path, TRITON_CONFIG_KEY, triton_config, "not a mapping")
    return ModelConfig(raw=document, settings=settings, **values)


def _tensor_list(path: Path, key: str, value: Any) -> list[dict[str, Any]]:
    """Declared tensors, checked: unlike a bad knob, wrong metadata would mislead clients."""
    problem = f"model config {path.name}: {key} must be a list of {{name, datatype, shape}}"
    if not isinstance(value, list):
        raise InvalidModelException(problem)
    tensors = []
    for index, entry in enumerate(value):
        where = f"model config {path.name}: {key}[{index}]"
        if not isinstance(entry, dict):
            raise InvalidModelException(problem)
        name, datatype, shape = entry.get("name"), entry.get("datatype"), entry.get("shape")
        if not isinstance(name, str) or not name:
            raise InvalidModelException(f"{where}: name must be a non-empty string")
        if datatype not in TENSOR_DATATYPES:
            raise InvalidModelException(
                f"{where}: datatype {datatype!r} is not one of {', '.join(TENSOR_DATATYPES)}"
            )
        if not isinstance(shape, list) or not all(
            isinstance(dim, int) and not isinstance(dim, bool) and dim >= -1 for dim in shape
        ):
            raise InvalidModelException(f"{where}: shape must be a list of integers (-1: any)")
        if any(tensor["name"] == name for tensor in tensors):
            raise InvalidModelException(f"{where}: {name!r} is declared twice")
        tensors.append({"name": name, "datatype": datatype, "shape": shape})
    return tensors


def _is_whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _ignore(path: Path, key: str, value: Any, reason: str) -> None:
    log.warning("model config %s: ignoring %s=%r (%s)", path.name, key, value, reason)
