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
from modelserve.engine.settings import TORCHSERVE_KEYS, VersionSettings

SUFFIX = "-snapshot.cfg"
KEEP = 20
SNAPSHOT_KEY = "model_snapshot"


class SnapshotError(ValueError):
    """A snapshot file is unreadable or malformed; the message names the file."""


# The knobs a snapshot entry records (TorchServe's).
SNAPSHOT_KNOBS = (
    "min_workers",
    "max_workers",
    "batch_size",
    "max_batch_delay",
    "response_timeout",
    "startup_timeout",
)
# What a knob the entry lacks reads as (maxWorkers: the entry's minWorkers).
_MISSING = {
    "min_workers": 0,
    "batch_size": 1,
    "max_batch_delay": 100,
    "response_timeout": 120,
    "startup_timeout": 120,
}


@dataclass(frozen=True, slots=True)
class VersionSnapshot:
    """What restoring one model version needs: where it comes from and its knobs."""

    name: str
    version: str
    mar_name: str
    default: bool
    # The SNAPSHOT_KNOBS; the others are not recorded (None).
    settings: VersionSettings

    def to_json(self) -> dict[str, Any]:
        """TorchServe's per-version snapshot entry."""
        return {
            "defaultVersion": self.default,
            "marName": self.mar_name,
            **self.settings.to_torchserve(SNAPSHOT_KNOBS),
            "runtimeType": "python",
        }

    @classmethod
    def from_json(cls, name: str, version: str, entry: dict[str, Any]) -> VersionSnapshot:
        """Parse one entry; KeyError/TypeError/ValueError for a malformed one."""
        knobs = {
            knob: int(entry.get(TORCHSERVE_KEYS[knob], missing))
            for knob, missing in _MISSING.items()
        }
        knobs["max_workers"] = int(entry.get("maxWorkers", knobs["min_workers"]))
        return cls(
            name=name,
            version=version,
            mar_name=str(entry["marName"]),
            default=bool(entry.get("defaultVersion", False)),
            settings=VersionSettings(**knobs),
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


def parse_snapshot(document: str, source: str) -> list[VersionSnapshot]:
    """The model versions of a ``model_snapshot`` JSON document; ``source`` names it in errors."""
    try:
        models = orjson.loads(document)["models"]
        return [
            VersionSnapshot.from_json(name, version, entry)
            for name, versions in models.items()
            for version, entry in versions.items()
        ]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"{source} is unreadable: {exc!r}") from exc


def read_snapshot(path: Path) -> list[VersionSnapshot]:
    """The model versions recorded in a snapshot file."""
    try:
        values = parse_properties(path.read_text())
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"snapshot {path} is unreadable: {exc!r}") from exc
    if SNAPSHOT_KEY not in values:
        raise SnapshotError(f"snapshot {path} is unreadable: it has no {SNAPSHOT_KEY} key")
    return parse_snapshot(values[SNAPSHOT_KEY], f"snapshot {path}")
