"""Keeping the registered models in snapshots, and bringing them back at start.

After every successful management change the whole state is written as a new snapshot
(engine/snapshot.py has the file format). ``restore`` re-registers each version with its
settings, restores default versions, then scales each version to its saved worker counts.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from modelserve.engine.errors import ServingError
from modelserve.engine.registration import RegisterOptions
from modelserve.engine.registry import ModelRegistry
from modelserve.engine.snapshot import (
    SNAPSHOT_KNOBS,
    VersionSnapshot,
    read_snapshot,
    write_snapshot,
)

log = logging.getLogger("modelserve.snapshot")


def snapshot_of(registry: ModelRegistry) -> list[VersionSnapshot]:
    """The snapshot entries of every registered version snapshots keep (not a workflow's
    node models)."""
    entries = []
    for name in registry.names():
        entry = registry.entry(name)
        for version in entry.versions.values():
            if not version.in_snapshots:
                continue
            entries.append(
                VersionSnapshot(
                    name=name,
                    version=version.version,
                    mar_name=version.url,
                    default=version.version == entry.default_version,
                    settings=version.settings.only(SNAPSHOT_KNOBS),
                )
            )
    return entries


class RestoreTarget(Protocol):
    """What a restore does to the server: the engine, which imports this module."""

    async def register(self, options: RegisterOptions) -> object:
        """Register a version, as ``POST /models`` does."""

    async def set_default(self, name: str, version: str) -> object:
        """Make ``version`` the default of ``name``."""

    def scale_in_background(self, name: str, version: str, low: int, high: int) -> None:
        """Scale a registered version to min ``low``, max ``high`` without waiting."""


@dataclass
class RestoreReport:
    """What a restore brought back: "name version" entries, and those it could not, with why."""

    path: Path
    restored: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class SnapshotKeeper:
    """Writes a snapshot after each change (one at a time, in a thread: it fsyncs)."""

    def __init__(self, directory: Path, model_store: Path | None) -> None:
        self.directory = directory
        self._extra = {"model_store": str(model_store)} if model_store else {}
        self._lock = asyncio.Lock()
        self.paused = False
        # A directory that cannot be written (a read-only file system) fails every change the
        # same way: say it once, and again only when it recovers.
        self._failing = False

    async def save(self, registry: ModelRegistry) -> None:
        """Write the current state; a failure is logged, never raised to the API caller."""
        if self.paused:
            return
        entries = snapshot_of(registry)
        async with self._lock:
            try:
                path = await asyncio.to_thread(write_snapshot, self.directory, entries, self._extra)
            except OSError as exc:
                if not self._failing:
                    log.error(
                        "cannot write a snapshot in %s: %s; registered models are not kept "
                        "across restarts until it is writable (snapshot_dir, or "
                        "enable_snapshots=false to turn snapshots off)",
                        self.directory,
                        exc,
                    )
                self._failing = True
            else:
                if self._failing:
                    log.info("snapshots are written again in %s", self.directory)
                self._failing = False
                log.debug("snapshot written: %s", path)

    async def restore(self, target: RestoreTarget, path: Path) -> RestoreReport:
        """Register every version of the snapshot at ``path`` again on ``target`` (see
        ``restore_versions``), writing no snapshot of the steps."""
        return await restore_versions(target, read_snapshot(path), path, self)


async def restore_versions(
    target: RestoreTarget,
    entries: list[VersionSnapshot],
    source: Path,
    keeper: SnapshotKeeper | None = None,
) -> RestoreReport:
    """Register each version again on ``target``, with its settings; then restore the default
    versions and scale each version to its workers. ``keeper`` writes no snapshot meanwhile;
    a version that cannot be registered is logged and reported, and the others go on."""
    log.info("restoring %d model versions from %s", len(entries), source)
    report = RestoreReport(source)
    if keeper is not None:
        keeper.paused = True
    try:
        restored = []
        for entry in entries:
            options = RegisterOptions(
                url=entry.mar_name,
                model_name=entry.name,
                initial_workers=0,
                settings=entry.settings,
            )
            try:
                await target.register(options)
            except ServingError as exc:
                log.error("snapshot: %s %s not restored: %s", entry.name, entry.version, exc)
                report.failed[f"{entry.name} {entry.version}"] = exc.message
            else:
                restored.append(entry)
                report.restored.append(f"{entry.name} {entry.version}")
        for entry in restored:
            try:
                if entry.default:
                    await target.set_default(entry.name, entry.version)
                target.scale_in_background(
                    entry.name,
                    entry.version,
                    entry.settings.min_workers,
                    entry.settings.max_workers,
                )
            except ServingError as exc:  # the archive now holds another version
                log.error("snapshot: %s %s: %s", entry.name, entry.version, exc)
    finally:
        if keeper is not None:
            keeper.paused = False
    return report
