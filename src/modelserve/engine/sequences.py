"""A stateful model's sequence settings, from TorchServe's model-config YAML or Triton's
``sequence_batching``: one ``SequencePolicy`` that the sequence batcher follows.

* stateful: ``sequenceBatching: true`` (TorchServe); a ``sequence_batching`` section (Triton).
* ``idle_ms``: ``sequenceMaxIdleMSec``, required and > 0; ``max_sequence_idle_microseconds``,
  1 s when left out (Triton's default).
* ``lifetime_ms``: ``sequenceTimeoutMSec`` (0: none); Triton has none.
* ``max_sequences``: ``maxNumSequence``, at least batchSize x maxWorkers (TorchServe's rule);
  ``DEFAULT_MAX_SEQUENCES`` for a Triton model.
* ``queue_per_sequence``: ``maxSequenceJobQueueSize`` (default 1); the model's whole queue for
  a Triton model.

Wrong types are ignored with a warning, as TorchServe ignores them, except that a stateful
model without a usable idle time is refused: TorchServe would accept it and then answer every
request 503.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from modelserve.engine.errors import InvalidModelException
from modelserve.engine.model_config import ModelConfig
from modelserve.engine.settings import VersionSettings

log = logging.getLogger("modelserve.engine")

# Triton's default max_sequence_idle_microseconds.
TRITON_DEFAULT_IDLE_US = 1_000_000
# How many sequences a Triton model keeps at once. Triton parks sequences beyond its batch
# slots in a backlog without bound; modelserve runs every live sequence (one request per
# sequence per batch), so it bounds them instead, with a 503 past the bound.
DEFAULT_MAX_SEQUENCES = 1000
# TorchServe's defaults for the keys a model config may leave out.
TORCHSERVE_DEFAULT_MAX_SEQUENCES = 1
TORCHSERVE_DEFAULT_SEQUENCE_QUEUE = 1


@dataclass(frozen=True, slots=True)
class SequencePolicy:
    """How a stateful model version keeps its sequences."""

    # A sequence with nothing queued or running expires after this long.
    idle_ms: int
    # Live sequences at once; a request that would start one more is a 503.
    max_sequences: int
    # Requests of one sequence that may wait behind the one it has in flight; more are a 503.
    queue_per_sequence: int
    # A sequence ends this long after it started, idle or not (0: never).
    lifetime_ms: int
    # Whether a request must name its sequence (Triton: a 400 otherwise); TorchServe starts
    # a new one, with an id of its own, for a request that names none.
    requires_id: bool
    # The setting that ``idle_ms`` came from, as the user wrote it (errors name it).
    idle_setting: str


def describe_sequences(policy: SequencePolicy | None) -> dict[str, Any]:
    """The fields of TorchServe's describe output that say how a model keeps sequences (all
    zero for a stateless one)."""
    if policy is None:
        return {
            "stateful": False,
            "sequenceMaxIdleMSec": 0,
            "sequenceTimeoutMSec": 0,
            "maxNumSequence": 0,
            "maxSequenceJobQueueSize": 0,
        }
    return {
        "stateful": True,
        "sequenceMaxIdleMSec": policy.idle_ms,
        "sequenceTimeoutMSec": policy.lifetime_ms,
        "maxNumSequence": policy.max_sequences,
        "maxSequenceJobQueueSize": policy.queue_per_sequence,
    }


def sequence_policy(
    model: str, config: ModelConfig, settings: VersionSettings
) -> SequencePolicy | None:
    """The sequence policy the model config asks for (``settings`` resolved), or None for a
    stateless model; InvalidModelException for a stateful one without an idle time."""
    assert settings.batch_size is not None and settings.max_workers is not None
    assert settings.job_queue_size is not None
    slots = settings.batch_size * max(settings.max_workers, 1)
    triton = (config.triton_config or {}).get("sequence_batching")
    if isinstance(triton, dict):
        idle_us = int(triton.get("max_sequence_idle_microseconds") or TRITON_DEFAULT_IDLE_US)
        return SequencePolicy(
            idle_ms=math.ceil(idle_us / 1000),
            max_sequences=max(DEFAULT_MAX_SEQUENCES, slots),
            queue_per_sequence=settings.job_queue_size,
            lifetime_ms=0,
            requires_id=True,
            idle_setting=f"max_sequence_idle_microseconds {idle_us}",
        )
    raw = config.raw
    if _read(model, raw, "sequenceBatching", bool, False) is not True:
        return None
    idle_ms = _read(model, raw, "sequenceMaxIdleMSec", int, 0)
    if idle_ms <= 0:
        raise InvalidModelException(
            f"model {model}: sequenceBatching needs sequenceMaxIdleMSec, a number of "
            "milliseconds > 0 after which an idle sequence expires"
        )
    return SequencePolicy(
        idle_ms=idle_ms,
        max_sequences=max(
            _read(model, raw, "maxNumSequence", int, TORCHSERVE_DEFAULT_MAX_SEQUENCES), slots
        ),
        queue_per_sequence=max(
            1, _read(model, raw, "maxSequenceJobQueueSize", int, TORCHSERVE_DEFAULT_SEQUENCE_QUEUE)
        ),
        lifetime_ms=max(0, _read(model, raw, "sequenceTimeoutMSec", int, 0)),
        requires_id=False,
        idle_setting=f"sequenceMaxIdleMSec {idle_ms}",
    )


def _read(model: str, raw: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    """``raw[key]`` when it is a ``kind`` (a bool is no int), else ``default`` (warned about
    when the key is there)."""
    value = raw.get(key)
    if value is None:
        return default
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    expected = "true or false" if kind is bool else "a whole number"
    log.warning("model %s: ignoring %s=%r (not %s)", model, key, value, expected)
    return default
