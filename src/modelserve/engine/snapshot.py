"""Snapshots of the registered models, written atomically after every management change.

The file format is TorchServe's (``docs/snapshot.md``): a properties file named
``<yyyyMMddHHmmssSSS>-snapshot.cfg`` whose ``model_snapshot`` key holds JSON
``{"name", "modelCount", "created", "models": {name: {version: {...}}}}``. A new file is
written for each change (temp file, fsync, rename), so a crash mid-write never leaves a torn
snapshot; only the newest ``KEEP`` files are kept.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from modelserve.config import parse_properties

SUFFIX = "-snapshot.cfg"
KEEP = 20
SNAPSHOT_KEY = "model_snapshot"


class SnapshotError(ValueError):
    """A snapshot file is unreadable or malformed; the message names the file."""


@dataclass(frozen=True, slots=True)
class VersionSnapshot:
    """What restoring one model version needs."""

    name: str
    version: str
    mar_name: str
    default: bool
    min_workers: int
    max_workers: int
    batch_size: int
    max_batch_delay: int
    response_timeout: int
    startup_timeout: int

    def to_json(self) -> dict[str, Any]:
        """TorchServe's per-version snapshot entry."""
        return {
            "defaultVersion": self.default,
            "marName": self.mar_name,
            "minWorkers": self.min_workers,
            "maxWorkers": self.max_workers,
            "batchSize": self.batch_size,
            "maxBatchDelay": self.max_batch_delay,
            "responseTimeout": self.response_timeout,
            "startupTimeout": self.startup_timeout,
            "runtimeType": "python",
        }

    @classmethod
    def from_json(cls, name: str, version: str, entry: dict[str, Any]) -> VersionSnapshot:
        """Parse one entry; KeyError/TypeError/ValueError for a malformed one."""
        return cls(
            name=name,
            version=version,
            mar_name=str(entry["marName"]),
            default=bool(entry.get("defaultVersion", False)),
            min_workers=int(entry.get("minWorkers", 0)),
            max_workers=int(entry.get("maxWorkers", entry.get("minWorkers", 0))),
            batch_size=int(entry.get("batchSize", 1)),
            max_batch_delay=int(entry.get("maxBatchDelay", 100)),
            response_timeout=int(entry.get("responseTimeout", 120)),
            startup_timeout=int(entry.get("startupTimeout", 120)),
        )


def _file_name(now: float) -> str:
    stamp = datetime.fromtimestamp(now).strftime("%Y%m%d%H%M%S%f")[:-3]
    return f"{stamp}{SUFFIX}"


def write_snapshot(directory: Path, versions: list[VersionSnapshot], extra: dict[str, str]) -> Path:
    """Write a new snapshot file atomically and prune old ones; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    now = time.time()
    # Names sort by time and are never reused: two changes in one millisecond get the next.
    while (directory / _file_name(now)).exists():
        now += 0.001
    name = _file_name(now)
    models: dict[str, dict[str, Any]] = {}
    for snapshot in versions:
        models.setdefault(snapshot.name, {})[snapshot.version] = snapshot.to_json()
    document = {
        "name": name,
        "modelCount": len(versions),
        "created": int(now * 1000),
        "models": models,
    }
    lines = [f"{key}={value}" for key, value in sorted(extra.items())]
    lines.append(f"{SNAPSHOT_KEY}={orjson.dumps(document).decode()}")
    path = directory / name
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".snapshot-")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(directory)
    for old in sorted(directory.glob(f"*{SUFFIX}"))[:-KEEP]:
        old.unlink(missing_ok=True)
    return path


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk too.
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def latest_snapshot(directory: Path) -> Path | None:
    """The newest snapshot file in ``directory``, None when there is none."""
    if not directory.is_dir():
        return None
    files = sorted(directory.glob(f"*{SUFFIX}"))
    return files[-1] if files else None


def read_snapshot(path: Path) -> list[VersionSnapshot]:
    """The model versions recorded in a snapshot file."""
    try:
        values = parse_properties(path.read_text())
        document = orjson.loads(values[SNAPSHOT_KEY])
        return [
            VersionSnapshot.from_json(name, version, entry)
            for name, versions in document["models"].items()
            for version, entry in versions.items()
        ]
    except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"snapshot {path} is unreadable: {exc!r}") from exc
