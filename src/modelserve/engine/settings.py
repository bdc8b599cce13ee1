"""The serving knobs of a model version: one type from the API to the snapshot.

A register call, the archive's model-config YAML, the ``models`` server property, a snapshot
and ``modelserve serve`` each give some knobs (a ``VersionSettings`` with the others None);
registration resolves them into one with every field set, with TorchServe's precedence
(reference §4.5), which ``resolve_settings`` implements as a pure function.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_BATCH_SIZE = 1
DEFAULT_MAX_BATCH_DELAY_MS = 100
DEFAULT_MAX_RETRY_TIMEOUT_S = 300

# Each knob's key in TorchServe's camelCase documents: the model-config YAML, the ``models``
# property and snapshot entries all use these names.
TORCHSERVE_KEYS = {
    "min_workers": "minWorkers",
    "max_workers": "maxWorkers",
    "batch_size": "batchSize",
    "max_batch_delay": "maxBatchDelay",
    "response_timeout": "responseTimeout",
    "startup_timeout": "startupTimeout",
    "job_queue_size": "jobQueueSize",
    "max_retry_timeout": "maxRetryTimeoutInSec",
    "device_ids": "deviceIds",
}

# Where each knob is taken from, the first source that sets it winning: TorchServe 0.12 as
# it behaves (reference §4.5), not as documented: the API's batching beats the YAML, the
# YAML's timeouts beat the API. Knobs a source does not appear for are ignored from it.
PRECEDENCE = {
    "batch_size": ("api", "yaml", "startup", "default"),
    "max_batch_delay": ("api", "yaml", "startup", "default"),
    "response_timeout": ("yaml", "startup", "api", "default"),
    "startup_timeout": ("yaml", "startup", "api", "default"),
    "job_queue_size": ("yaml", "default"),
    "max_retry_timeout": ("yaml", "default"),
    "device_ids": ("yaml",),
}


@dataclass(slots=True)
class VersionSettings:
    """The serving knobs of a model version. None = not given (resolved at registration
    with TorchServe's precedence); after registration every field is set, except
    ``device_ids``, which stays None unless the model config names GPUs."""

    batch_size: int | None = None
    max_batch_delay: int | None = None
    response_timeout: int | None = None
    startup_timeout: int | None = None
    job_queue_size: int | None = None
    max_retry_timeout: int | None = None
    min_workers: int | None = None
    max_workers: int | None = None
    device_ids: tuple[int, ...] | None = None

    @classmethod
    def from_torchserve(cls, entry: Mapping[str, Any]) -> VersionSettings:
        """The knobs of a ``models`` property entry (camelCase keys; others are ignored)."""
        return cls(**{name: entry[key] for name, key in TORCHSERVE_KEYS.items() if key in entry})

    def to_torchserve(self, names: Iterable[str] = TORCHSERVE_KEYS) -> dict[str, Any]:
        """The given knobs that are set, under their camelCase keys."""
        values = ((TORCHSERVE_KEYS[name], getattr(self, name)) for name in names)
        return {key: value for key, value in values if value is not None}

    def only(self, names: Iterable[str]) -> VersionSettings:
        """A copy with just ``names`` kept (the others not given)."""
        return VersionSettings(**{name: getattr(self, name) for name in names})

    def worker_range(self) -> tuple[int, int] | None:
        """(min, max) when min > 0 and max >= min: the only range a model config may set."""
        low, high = self.min_workers, self.max_workers
        if low and high is not None and high >= low:
            return low, high
        return None


@dataclass(frozen=True, slots=True)
class SettingsSources:
    """Everything that may set a version's knobs, for ``resolve_settings``."""

    # The register call (a REST or gRPC request, a snapshot being restored, a startup entry).
    api: VersionSettings
    # The archive's model-config YAML.
    yaml: VersionSettings
    # The server's ``models`` property entry for this name and version.
    startup: VersionSettings
    # The server-wide defaults; sets every knob but device_ids.
    default: VersionSettings


def resolve_settings(sources: SettingsSources, requested_workers: int) -> VersionSettings:
    """Every knob from the first source that sets it (``PRECEDENCE``), and the worker count:
    ``requested_workers`` (initial_workers or its default), unless the YAML sets a usable
    range or the ``models`` property a minWorkers. The API's min/max workers are not read:
    a register call asks for workers with initial_workers.
    """
    resolved = VersionSettings()
    for name, order in PRECEDENCE.items():
        values = (getattr(getattr(sources, source), name) for source in order)
        setattr(resolved, name, next((value for value in values if value is not None), None))
    workers = requested_workers
    yaml_range = sources.yaml.worker_range()
    if yaml_range is not None:
        workers = yaml_range[0]
    elif sources.startup.min_workers is not None:
        workers = sources.startup.min_workers
    # The asked count is the registration's range (describe, snapshots) from the start.
    resolved.min_workers = resolved.max_workers = workers
    return resolved
