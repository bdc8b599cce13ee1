"""What a server does at start and tells about it: claim its name among the user's running
servers, restore the newest snapshot and register the startup models, record where it really
listens, and report once the startup models have settled."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

from modelserve.config import ConfigError, Settings
from modelserve.engine.dataplane import DataPlane
from modelserve.engine.engine import Engine, StartupOutcome
from modelserve.engine.model_snapshots import RestoreReport, restore_versions
from modelserve.engine.snapshot import SnapshotError, latest_snapshot, parse_snapshot
from modelserve.grpc.server import GrpcPlane
from modelserve.http_planes import bound_address
from modelserve.instances import InstanceFile, InstanceNameTaken, InstanceRecord


@dataclass
class StartupReport:
    """What the server did at start: the snapshot it restored, its startup models."""

    restore: RestoreReport | None = None
    startup: list[StartupOutcome] = field(default_factory=list)

    def to_record(self) -> dict[str, Any]:
        """The instance record's ``startup`` entry (``ps``, ``status`` and a background
        ``start`` show it)."""
        restore = self.restore
        return {
            "settled": False,
            "snapshot": str(restore.path.resolve()) if restore is not None else None,
            "restored": restore.restored if restore is not None else [],
            "notRestored": restore.failed if restore is not None else {},
            # entry -> why it was not registered (None: registered)
            "models": {outcome.entry: outcome.error for outcome in self.startup},
        }


class ServerEvents(Protocol):
    """What the command that runs the server is told, to show on its console. The record's
    ``startup`` entry says what happened (StartupReport.to_record, then ``settled``)."""

    def started(self, record: InstanceRecord) -> None:
        """Every plane listens and the startup models are registered (workers may load)."""

    def settled(self, record: InstanceRecord) -> None:
        """Every startup model has a ready worker, or has failed its first load."""


async def load_models(
    engine: Engine, startup_models: list[str], settings: Settings
) -> StartupReport:
    """Restore the models of the configuration's ``model_snapshot`` (TorchServe's snapshot
    file given as ``--ts-config``, KServe's config.properties) or else the newest snapshot,
    then register the startup models they did not bring back: what the command line names is
    always served."""
    report = StartupReport()
    snapshots = engine.snapshots
    try:
        if settings.model_snapshot is not None:
            source = settings.config_file or Path("MODELSERVE_MODEL_SNAPSHOT")
            entries = parse_snapshot(settings.model_snapshot, f"model_snapshot of {source}")
            report.restore = await restore_versions(engine, entries, source, snapshots)
        elif snapshots is not None and (newest := latest_snapshot(snapshots.directory)):
            report.restore = await snapshots.restore(engine, newest)
    except SnapshotError as exc:
        raise ConfigError(str(exc)) from exc
    report.startup = await engine.load_startup_models(startup_models)
    return report


def claim_instance(settings: Settings, name: str, console_log: Path | None) -> InstanceFile:
    """This server's record among the user's running servers; a name in use stops the start."""
    deployed = settings.deploy_path or settings.model_store
    record = InstanceRecord(
        name=name,
        pid=os.getpid(),
        started_at=psutil.Process().create_time(),
        working_dir=os.getcwd(),
        model_store=str(settings.model_store.resolve()) if settings.model_store else None,
        deploy_path=str(deployed.resolve()) if deployed else None,
        log_dir=str(settings.log_dir.resolve()) if settings.log_dir else None,
        console_log=str(console_log.resolve()) if console_log else None,
        snapshot_dir=(
            str(settings.resolved_snapshot_dir(name).resolve())
            if settings.enable_snapshots
            else None
        ),
    )
    try:
        return InstanceFile.claim(settings.resolved_runtime_dir(), record)
    except InstanceNameTaken as taken:
        holder = taken.holder
        raise ConfigError(
            f"a modelserve named {name!r} is already running (pid {holder.pid}, "
            f"{holder.addresses.get('inference', 'starting')}): stop it with "
            f"'modelserve stop {name}', or name this one with --instance NAME"
        ) from None


def listen_addresses(
    settings: Settings, sockets: dict[str, socket.socket], grpc_planes: list[GrpcPlane]
) -> dict[str, str]:
    addresses = {
        plane: str(bound_address(settings.address(plane), sock)) for plane, sock in sockets.items()
    }
    addresses.update({f"grpc_{plane.name}": str(plane.address) for plane in grpc_planes})
    return addresses


async def report_when_settled(engine: Engine, instance: InstanceFile, events: ServerEvents) -> None:
    await engine.settle()
    engine.start_spare_worker()
    health = DataPlane(engine).health()
    startup = {
        **instance.record.startup,
        "settled": True,
        "status": health.status,
        "notReady": health.not_ready,
    }
    instance.update(startup=startup)
    events.settled(instance.record)
