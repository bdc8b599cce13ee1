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
from typing import TYPE_CHECKING

from modelserve.engine.errors import ServingError
from modelserve.engine.registry import ModelRegistry
from modelserve.engine.snapshot import VersionSnapshot, read_snapshot, write_snapshot

if TYPE_CHECKING:
    from modelserve.engine.engine import Engine

log = logging.getLogger("modelserve.snapshot")


def snapshot_of(registry: ModelRegistry) -> list[VersionSnapshot]:
    """The snapshot entries of every registered version."""
    entries = []
    for name in registry.names():
        entry = registry.entry(name)
        for version in entry.versions.values():
            settings = version.settings
            entries.append(
                VersionSnapshot(
                    name=name,
                    version=version.version,
                    mar_name=version.url,
                    default=version.version == entry.default_version,
                    min_workers=settings.min_workers,
                    max_workers=settings.max_workers,
                    batch_size=settings.batch_size,
                    max_batch_delay=settings.max_batch_delay,
                    response_timeout=settings.response_timeout,
                    startup_timeout=settings.startup_timeout,
                )
            )
    return entries


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

    async def save(self, registry: ModelRegistry) -> None:
        """Write the current state; a failure is logged, never raised to the API caller."""
        if self.paused:
            return
        entries = snapshot_of(registry)
        async with self._lock:
            try:
                path = await asyncio.to_thread(write_snapshot, self.directory, entries, self._extra)
            except OSError as exc:
                log.error("cannot write a snapshot in %s: %s", self.directory, exc)
            else:
                log.debug("snapshot written: %s", path)

    async def restore(self, engine: Engine, path: Path) -> RestoreReport:
        """Register every version of the snapshot at ``path`` again, with its settings."""
        from modelserve.engine.engine import RegisterOptions  # engine imports this module

        entries = read_snapshot(path)
        log.info("restoring %d model versions from %s", len(entries), path)
        report = RestoreReport(path)
        self.paused = True
        try:
            restored = []
            for entry in entries:
                options = RegisterOptions(
                    url=entry.mar_name,
                    model_name=entry.name,
                    batch_size=entry.batch_size,
                    max_batch_delay=entry.max_batch_delay,
                    response_timeout=entry.response_timeout,
                    startup_timeout=entry.startup_timeout,
                    initial_workers=0,
                )
                try:
                    await engine.register(options)
                except ServingError as exc:
                    log.error("snapshot: %s %s not restored: %s", entry.name, entry.version, exc)
                    report.failed[f"{entry.name} {entry.version}"] = exc.message
                else:
                    restored.append(entry)
                    report.restored.append(f"{entry.name} {entry.version}")
            for entry in restored:
                try:
                    if entry.default:
                        engine.registry.set_default(entry.name, entry.version)
                    engine.scale_in_background(
                        entry.name, entry.version, entry.min_workers, entry.max_workers
                    )
                except ServingError as exc:  # the archive now holds another version
                    log.error("snapshot: %s %s: %s", entry.name, entry.version, exc)
        finally:
            self.paused = False
        return report
