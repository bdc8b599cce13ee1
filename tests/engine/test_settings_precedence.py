"""Registration's settings resolution as a pure function: TorchServe 0.12's precedence
(reference §4.5), which tests/test_management_api.py and test_startup_models.py pin end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelserve.engine.model_config import load_model_config
from modelserve.engine.settings import SettingsSources, VersionSettings, resolve_settings

DEFAULT = VersionSettings(
    batch_size=1,
    max_batch_delay=100,
    response_timeout=120,
    startup_timeout=120,
    job_queue_size=100,
    max_retry_timeout=300,
)


def _sources(**given: VersionSettings) -> SettingsSources:
    empty = VersionSettings()
    return SettingsSources(
        api=given.get("api", empty),
        yaml=given.get("yaml", empty),
        startup=given.get("startup", empty),
        default=given.get("default", DEFAULT),
    )


def _every(value: int) -> VersionSettings:
    """A source that sets every knob to ``value`` (device_ids to (value,))."""
    return VersionSettings(
        batch_size=value,
        max_batch_delay=value,
        response_timeout=value,
        startup_timeout=value,
        job_queue_size=value,
        max_retry_timeout=value,
        min_workers=value,
        max_workers=value,
        device_ids=(value,),
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # Batching: the register call beats the YAML, which beats the models property.
        ({"api": 2, "yaml": 3, "startup": 4}, 2),
        ({"yaml": 3, "startup": 4}, 3),
        ({"startup": 4}, 4),
        ({}, None),
    ],
)
def test_batching_knobs_prefer_the_call(given: dict[str, int], expected: int | None) -> None:
    sources = _sources(**{source: _every(value) for source, value in given.items()})
    resolved = resolve_settings(sources, 0)
    assert resolved.batch_size == (expected or DEFAULT.batch_size)
    assert resolved.max_batch_delay == (expected or DEFAULT.max_batch_delay)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # Timeouts: the YAML beats the models property, which beats the register call.
        ({"api": 2, "yaml": 3, "startup": 4}, 3),
        ({"api": 2, "startup": 4}, 4),
        ({"api": 2}, 2),
        ({}, None),
    ],
)
def test_timeouts_prefer_the_yaml(given: dict[str, int], expected: int | None) -> None:
    sources = _sources(**{source: _every(value) for source, value in given.items()})
    resolved = resolve_settings(sources, 0)
    assert resolved.response_timeout == (expected or DEFAULT.response_timeout)
    assert resolved.startup_timeout == (expected or DEFAULT.startup_timeout)


def test_queue_retry_and_devices_come_only_from_the_yaml() -> None:
    ignored = resolve_settings(_sources(api=_every(2), startup=_every(4)), 0)
    assert (ignored.job_queue_size, ignored.max_retry_timeout) == (100, 300)
    assert ignored.device_ids is None
    taken = resolve_settings(_sources(api=_every(2), yaml=_every(3), startup=_every(4)), 0)
    assert (taken.job_queue_size, taken.max_retry_timeout, taken.device_ids) == (3, 3, (3,))


def test_a_source_gives_only_what_it_sets() -> None:
    resolved = resolve_settings(
        _sources(
            api=VersionSettings(batch_size=8),
            yaml=VersionSettings(response_timeout=9),
            startup=VersionSettings(max_batch_delay=7, startup_timeout=6),
        ),
        0,
    )
    assert (resolved.batch_size, resolved.max_batch_delay) == (8, 7)
    assert (resolved.response_timeout, resolved.startup_timeout) == (9, 6)


@pytest.mark.parametrize(
    ("yaml", "startup", "workers"),
    [
        # Nothing else given: the requested count (initial_workers or its default).
        (VersionSettings(), VersionSettings(), 3),
        # A usable YAML range overrides it with its minimum ...
        (VersionSettings(min_workers=2, max_workers=4), VersionSettings(min_workers=5), 2),
        # ... an unusable one (min 0, or max < min) does not, and the models property may.
        (VersionSettings(min_workers=0, max_workers=4), VersionSettings(min_workers=5), 5),
        (VersionSettings(min_workers=4, max_workers=2), VersionSettings(), 3),
        (VersionSettings(min_workers=2), VersionSettings(), 3),
        (VersionSettings(), VersionSettings(min_workers=0), 0),
    ],
)
def test_worker_count(yaml: VersionSettings, startup: VersionSettings, workers: int) -> None:
    api = VersionSettings(min_workers=7, max_workers=7)  # the call asks with initial_workers
    resolved = resolve_settings(_sources(api=api, yaml=yaml, startup=startup), 3)
    assert (resolved.min_workers, resolved.max_workers) == (workers, workers)


def test_the_models_property_and_the_yaml_read_camel_case_keys(tmp_path: Path) -> None:
    entry = {"batchSize": 4, "maxBatchDelay": 20, "minWorkers": 2, "marName": "m.mar"}
    assert VersionSettings.from_torchserve(entry) == VersionSettings(
        batch_size=4, max_batch_delay=20, min_workers=2
    )
    config = tmp_path / "config.yaml"
    config.write_text("batchSize: 4\nresponseTimeout: oops\ndeviceIds: [1, 0]\nhandler: x\n")
    assert load_model_config(config).settings == VersionSettings(batch_size=4, device_ids=(1, 0))


def test_knobs_round_trip_through_torchserve_keys() -> None:
    knobs = VersionSettings(batch_size=4, max_batch_delay=20, min_workers=2, max_workers=2)
    assert knobs.to_torchserve() == {
        "batchSize": 4,
        "maxBatchDelay": 20,
        "minWorkers": 2,
        "maxWorkers": 2,
    }
    assert VersionSettings.from_torchserve(knobs.to_torchserve()) == knobs
