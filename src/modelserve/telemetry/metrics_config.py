"""Which metrics exist: TorchServe's metrics.yaml format, and ``metrics_mode``.

The file has ``ts_metrics`` (the frontend's) and ``model_metrics`` (handlers'), each with
``counter``, ``gauge`` and ``histogram`` lists of ``{name, unit, dimensions}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_METRICS_FILE = Path(__file__).with_name("default_metrics.yaml")
# libyaml's parser where PyYAML was built with it: the metrics file is read at every start,
# and the pure-Python parser takes tens of milliseconds for it.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
KINDS = ("counter", "gauge", "histogram")
# In legacy mode TorchServe exports only these three to Prometheus.
LEGACY_METRICS = frozenset(
    {
        "ts_inference_requests_total",
        "ts_inference_latency_microseconds",
        "ts_queue_latency_microseconds",
    }
)


class MetricsConfigError(ValueError):
    """The metrics config file is unreadable or malformed; the message says where."""


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One declared metric."""

    name: str
    kind: str
    unit: str
    dimensions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Declared frontend and model metrics, by name."""

    frontend: dict[str, MetricSpec]
    model: dict[str, MetricSpec]


def _section(document: dict[str, Any], key: str, origin: Path) -> dict[str, MetricSpec]:
    section = document.get(key) or {}
    if not isinstance(section, dict):
        raise MetricsConfigError(f"{origin}: {key} must be a mapping of metric types")
    specs: dict[str, MetricSpec] = {}
    for kind in KINDS:
        for entry in section.get(kind) or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise MetricsConfigError(f"{origin}: {key}.{kind} entries need a name: {entry!r}")
            dimensions = entry.get("dimensions") or []
            if not isinstance(dimensions, list) or not all(isinstance(d, str) for d in dimensions):
                raise MetricsConfigError(
                    f"{origin}: {key}.{kind}.{entry['name']}: dimensions must be a list of names"
                )
            specs[entry["name"]] = MetricSpec(
                entry["name"], kind, str(entry.get("unit", "")), tuple(dimensions)
            )
    return specs


def load_metrics_config(path: Path | None, mode: str) -> MetricsConfig:
    """Read the metrics file (the built-in one when ``path`` is None) for ``metrics_mode``."""
    origin = path or DEFAULT_METRICS_FILE
    try:
        document = yaml.load(origin.read_text(), Loader=SAFE_LOADER) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise MetricsConfigError(f"cannot read metrics config {origin}: {exc}") from exc
    if not isinstance(document, dict):
        raise MetricsConfigError(f"{origin}: expected a YAML mapping")
    frontend = _section(document, "ts_metrics", origin)
    model = _section(document, "model_metrics", origin)
    if mode == "legacy":
        frontend = {name: spec for name, spec in frontend.items() if name in LEGACY_METRICS}
    return MetricsConfig(frontend, model)
