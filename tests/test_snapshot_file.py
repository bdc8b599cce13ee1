"""Snapshot files: TorchServe's format, atomic writes, pruning, clear errors."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from modelserve.config import parse_properties
from modelserve.engine import snapshot
from modelserve.engine.settings import VersionSettings
from modelserve.engine.snapshot import SnapshotError, VersionSnapshot


def _version(name: str, version: str, default: bool) -> VersionSnapshot:
    knobs = VersionSettings(
        min_workers=2,
        max_workers=3,
        batch_size=8,
        max_batch_delay=5,
        response_timeout=60,
        startup_timeout=90,
    )
    return VersionSnapshot(name, version, f"{name}.mar", default, knobs)


def test_round_trip_in_torchserve_format(tmp_path: Path) -> None:
    versions = [_version("a", "1.0", True), _version("a", "2.0", False), _version("b", "1", True)]
    path = snapshot.write_snapshot(tmp_path, versions, {"model_store": "/models"})
    assert path.name.endswith("-snapshot.cfg") and len(path.name) == len("x" * 17) + 13
    values = parse_properties(path.read_text())
    assert values["model_store"] == "/models"
    document = orjson.loads(values["model_snapshot"])
    assert document["modelCount"] == 3
    assert document["models"]["a"]["2.0"] == {
        "defaultVersion": False,
        "marName": "a.mar",
        "minWorkers": 2,
        "maxWorkers": 3,
        "batchSize": 8,
        "maxBatchDelay": 5,
        "responseTimeout": 60,
        "startupTimeout": 90,
        "runtimeType": "python",
    }
    assert snapshot.read_snapshot(path) == versions
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_latest_wins_and_old_files_are_pruned(tmp_path: Path) -> None:
    assert snapshot.latest_snapshot(tmp_path / "absent") is None
    written = [
        snapshot.write_snapshot(tmp_path, [_version("m", str(i), True)], {})
        for i in range(snapshot.KEEP + 3)
    ]
    assert snapshot.latest_snapshot(tmp_path) == written[-1]
    assert sorted(tmp_path.glob("*-snapshot.cfg")) == written[-snapshot.KEEP :]
    assert snapshot.read_snapshot(written[-1])[0].version == str(snapshot.KEEP + 2)


@pytest.mark.parametrize(
    "content",
    [
        "no snapshot here\n",
        "model_snapshot={broken\n",
        'model_snapshot={"models": {"m": {"1": {}}}}\n',
    ],
)
def test_malformed_snapshot_is_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "20260101000000000-snapshot.cfg"
    path.write_text(content)
    with pytest.raises(SnapshotError, match="is unreadable"):
        snapshot.read_snapshot(path)
