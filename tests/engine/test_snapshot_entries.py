"""Snapshot entries carry a version's settings: from a registered version to the file and
back, and restored through the engine's register call."""

from __future__ import annotations

from pathlib import Path

from in_process import run_engine

from modelserve.engine.dataplane import DataPlane
from modelserve.engine.engine import Engine, RegisterOptions
from modelserve.engine.model_snapshots import SnapshotKeeper, snapshot_of
from modelserve.engine.settings import VersionSettings
from modelserve.engine.snapshot import VersionSnapshot, read_snapshot, write_snapshot


def test_a_registered_version_round_trips_through_its_entry(
    model_store: Path, tmp_path: Path
) -> None:
    async def scenario(engine: Engine) -> list[VersionSnapshot]:
        knobs = VersionSettings(batch_size=3, max_batch_delay=40, response_timeout=7)
        await engine.register(RegisterOptions(url="probe.mar", settings=knobs))
        return snapshot_of(engine.registry)

    [entry] = run_engine(model_store, tmp_path / "run", scenario, job_queue_size=17)
    assert (entry.name, entry.version, entry.mar_name, entry.default) == (
        "probe",
        "1.0",
        "probe.mar",
        True,
    )
    # The resolved knobs a snapshot records; the others (job_queue_size …) it does not.
    assert entry.settings == VersionSettings(
        batch_size=3,
        max_batch_delay=40,
        response_timeout=7,
        startup_timeout=120,
        min_workers=0,
        max_workers=0,
    )
    assert VersionSnapshot.from_json("probe", "1.0", entry.to_json()) == entry
    path = write_snapshot(tmp_path / "snapshots", [entry], {})
    assert read_snapshot(path) == [entry]


def test_an_entry_missing_knobs_reads_torchserve_defaults() -> None:
    entry = VersionSnapshot.from_json("m", "1", {"marName": "m.mar", "minWorkers": 2})
    assert entry.default is False
    assert entry.settings == VersionSettings(
        min_workers=2,
        max_workers=2,  # maxWorkers defaults to minWorkers
        batch_size=1,
        max_batch_delay=100,
        response_timeout=120,
        startup_timeout=120,
    )


def test_restore_registers_with_the_entry_settings(model_store: Path, tmp_path: Path) -> None:
    def entry(version: str, mar_name: str, default: bool) -> VersionSnapshot:
        knobs = VersionSettings(
            min_workers=0,
            max_workers=0,
            batch_size=5,
            max_batch_delay=9,
            response_timeout=11,
            startup_timeout=13,
        )
        return VersionSnapshot("probe", version, mar_name, default, knobs)

    entries = [
        entry("1.0", "probe.mar", False),
        entry("2.0", "probe_v2.mar", True),
        VersionSnapshot("gone", "1.0", "gone.mar", True, VersionSettings(min_workers=0)),
    ]
    path = write_snapshot(tmp_path / "written", entries, {})

    async def scenario(engine: Engine) -> tuple[list[str], dict[str, str], str, list[dict]]:
        keeper = SnapshotKeeper(tmp_path / "kept", model_store)
        report = await keeper.restore(engine, path)
        await engine.settle()
        default = engine.registry.get("probe").version
        return report.restored, report.failed, default, DataPlane(engine).describe("probe", "all")

    restored, failed, default, described = run_engine(model_store, tmp_path / "run", scenario)
    assert restored == ["probe 1.0", "probe 2.0"]
    assert list(failed) == ["gone 1.0"]
    assert default == "2.0"
    for description in described:
        knobs = (description["batchSize"], description["maxBatchDelay"])
        timeouts = (description["responseTimeout"], description["startupTimeout"])
        assert (knobs, timeouts) == ((5, 9), (11, 13)), description
