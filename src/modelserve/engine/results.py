"""What the data plane answers about the server and its models, independent of protocol: the
REST and gRPC adapters render these (``Health`` is in ``engine.health``, the management
calls' ``Outcome`` in ``engine.outcomes``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from modelserve.engine.statistics import Duration, VersionStatistics

# Triton reports these too; modelserve has no response cache, so they stay zero.
NO_CACHE = {"cache_hit": {"count": 0, "ns": 0}, "cache_miss": {"count": 0, "ns": 0}}


@dataclass(frozen=True, slots=True)
class ServerMetadata:
    """The server's name, version and the protocol extensions it implements (KServe v2)."""

    name: str
    version: str
    extensions: tuple[str, ...]


class ServingState(StrEnum):
    """Whether a version serves; the values are TF Serving's ``ModelVersionStatus.State``."""

    AVAILABLE = "AVAILABLE"  # a worker has loaded the model
    LOADING = "LOADING"  # workers are asked for and none is ready (yet)
    END = "END"  # registered with no worker asked for: not serving


# Not frozen: /ping builds one per model, and a frozen dataclass takes twice as long to build.
@dataclass(slots=True)
class VersionStatus:
    """The serving state of one model version."""

    version: str
    state: ServingState
    # Why a LOADING version's workers are not coming up (its last load failure), if known.
    error: str | None = None

    @property
    def ready(self) -> bool:
        """It can take inference requests now."""
        return self.state is ServingState.AVAILABLE


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    """A model version's KServe v2 metadata, plus which version answered (TF Serving names it).

    ``inputs`` and ``outputs`` are ``{name, datatype, shape}`` objects (-1: an open dimension),
    as declared in the model config, else as a worker reported them; empty while unknown.
    """

    name: str
    version: str
    versions: list[str]
    platform: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class RepositoryEntry:
    """One model version in the repository index: Triton's state (READY, LOADING or
    UNAVAILABLE) and, when not ready, why."""

    name: str
    version: str
    state: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ModelStatistics:
    """One version's statistics (live: read them, never keep them), and its queued requests."""

    name: str
    version: str
    statistics: VersionStatistics
    pending: int

    def triton_json(self) -> dict[str, Any]:
        """The statistics as Triton's statistics extension writes them (REST's JSON; gRPC's
        ModelStatistics message has the same field names)."""
        stats = self.statistics
        return {
            "name": self.name,
            "version": self.version,
            "last_inference": stats.last_inference_ms,
            "inference_count": stats.inference_count,
            "execution_count": stats.execution_count,
            "inference_stats": {
                "success": _duration(stats.success),
                "fail": _duration(stats.fail),
                "queue": _duration(stats.queue),
                "compute_input": _duration(stats.compute_input),
                "compute_infer": _duration(stats.compute_infer),
                "compute_output": _duration(stats.compute_output),
                **NO_CACHE,
            },
            "batch_stats": [
                {
                    "batch_size": size,
                    "compute_input": _duration(batch.compute_input),
                    "compute_infer": _duration(batch.compute_infer),
                    "compute_output": _duration(batch.compute_output),
                }
                for size, batch in sorted(stats.batches.items())
            ],
            "memory_usage": [],
        }


def _duration(duration: Duration) -> dict[str, int]:
    return {"count": duration.count, "ns": duration.ns}
