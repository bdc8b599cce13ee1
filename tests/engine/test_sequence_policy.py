"""A model config's sequence settings: TorchServe's YAML keys with its defaults and its
maxNumSequence rule, Triton's sequence_batching with its default idle time, stateless models,
wrong types ignored, and a stateful model without an idle time refused."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from modelserve.engine.errors import InvalidModelException
from modelserve.engine.model_config import ModelConfig
from modelserve.engine.sequences import SequencePolicy, describe_sequences, sequence_policy
from modelserve.engine.settings import VersionSettings

# Resolved settings: batches of 4 on 2 workers, 100 requests queued at most.
SETTINGS = VersionSettings(batch_size=4, max_workers=2, job_queue_size=100)


def _policy(raw: dict[str, Any], triton: dict[str, Any] | None = None) -> SequencePolicy | None:
    return sequence_policy("m", ModelConfig(raw=raw, triton_config=triton), SETTINGS)


def test_a_model_without_sequence_settings_is_stateless() -> None:
    assert _policy({}) is None
    assert _policy({"sequenceMaxIdleMSec": 100}) is None  # TorchServe: sequenceBatching decides
    assert describe_sequences(None)["stateful"] is False


def test_torchserve_keys_with_its_defaults_and_bounds() -> None:
    policy = _policy({"sequenceBatching": True, "sequenceMaxIdleMSec": 500})
    assert policy == SequencePolicy(
        idle_ms=500,
        max_sequences=8,  # maxNumSequence 1, but never fewer than batchSize x maxWorkers
        queue_per_sequence=1,
        lifetime_ms=0,
        requires_id=False,
        idle_setting="sequenceMaxIdleMSec 500",
    )
    given = _policy(
        {
            "sequenceBatching": True,
            "sequenceMaxIdleMSec": 500,
            "sequenceTimeoutMSec": 9000,
            "maxNumSequence": 20,
            "maxSequenceJobQueueSize": 5,
        }
    )
    assert given is not None
    assert (given.max_sequences, given.queue_per_sequence, given.lifetime_ms) == (20, 5, 9000)
    assert describe_sequences(given) == {
        "stateful": True,
        "sequenceMaxIdleMSec": 500,
        "sequenceTimeoutMSec": 9000,
        "maxNumSequence": 20,
        "maxSequenceJobQueueSize": 5,
    }


def test_wrong_types_are_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "modelserve.engine"):
        policy = _policy(
            {"sequenceBatching": True, "sequenceMaxIdleMSec": 500, "maxNumSequence": "many"}
        )
    assert policy is not None and policy.max_sequences == 8
    assert "ignoring maxNumSequence='many' (not a whole number)" in caplog.text


@pytest.mark.parametrize("idle", [None, 0, -5, "soon", True])
def test_a_stateful_model_needs_an_idle_time(idle: Any) -> None:
    raw = {"sequenceBatching": True, "sequenceMaxIdleMSec": idle}
    with pytest.raises(InvalidModelException, match="sequenceBatching needs sequenceMaxIdleMSec"):
        _policy(raw)


def test_tritons_sequence_batching() -> None:
    assert _policy({}, {"sequence_batching": {}}) == SequencePolicy(
        idle_ms=1000,  # Triton's default idle time
        max_sequences=1000,
        queue_per_sequence=100,
        lifetime_ms=0,
        requires_id=True,
        idle_setting="max_sequence_idle_microseconds 1000000",
    )
    policy = _policy({}, {"sequence_batching": {"max_sequence_idle_microseconds": 2500}})
    assert policy is not None and policy.idle_ms == 3  # rounded up to whole milliseconds
