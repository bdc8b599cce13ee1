"""The running servers of this user: one record per named instance in the runtime directory.

A server claims its name as it starts: the record file is created exclusively, so two live
servers never share a name. It then writes where it really listens (ports bound, 0 resolved),
keeps its model list current, says when its startup models have settled, and removes the
record when it stops. ``modelserve ps``, ``status`` and ``stop`` read the records. A record
whose process is gone (killed with SIGKILL, host rebooted into a reused pid) is stale: whoever
reads it removes it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

RECORDS_DIR = "instances"
SUFFIX = ".json"
# A pid counts as the record's process only if that process began within this many seconds
# of the record's own start time (a reused pid belongs to a later process).
SAME_PROCESS_SLACK_S = 5.0
# A server's state: binding and registering its startup models, then serving.
STARTING = "starting"
STARTED = "started"


@dataclass
class InstanceRecord:
    """What ``ps`` and ``status`` show of one running server."""

    name: str
    pid: int
    started_at: float
    working_dir: str
    state: str = STARTING
    # Plane ("inference", "management", "metrics", "grpc_inference", "grpc_management") to the
    # address it really listens on.
    addresses: dict[str, str] = field(default_factory=dict)
    model_store: str | None = None
    # What it was started to serve: serve's model file, else the model store.
    deploy_path: str | None = None
    log_dir: str | None = None
    console_log: str | None = None
    snapshot_dir: str | None = None
    models: list[str] = field(default_factory=list)
    # What happened at start (server.StartupReport.to_record): the snapshot restored, each
    # startup model, and once ``settled``, the health then.
    startup: dict[str, Any] = field(default_factory=dict)

    def uptime_s(self, now: float | None = None) -> float:
        """Seconds since the server started."""
        return max(0.0, (time.time() if now is None else now) - self.started_at)

    def is_alive(self) -> bool:
        """Whether the record's own process still runs (not a later one with its pid)."""
        try:
            process = psutil.Process(self.pid)
            return (
                process.status() != psutil.STATUS_ZOMBIE
                and abs(process.create_time() - self.started_at) < SAME_PROCESS_SLACK_S
            )
        except psutil.Error:
            return False


class InstanceNameTaken(Exception):
    """Another live server holds the name; ``holder`` is its record."""

    def __init__(self, holder: InstanceRecord) -> None:
        super().__init__(holder.name)
        self.holder = holder


def records_dir(runtime_dir: Path) -> Path:
    """Where the records of the servers using ``runtime_dir`` lie."""
    return runtime_dir / RECORDS_DIR


def _record_path(runtime_dir: Path, name: str) -> Path:
    return records_dir(runtime_dir) / f"{name}{SUFFIX}"


def _read(path: Path) -> InstanceRecord | None:
    try:
        data = orjson.loads(path.read_bytes())
        return InstanceRecord(**data)
    except (OSError, orjson.JSONDecodeError, TypeError):
        return None  # being written, or not ours: not a running server's record


def _encode(record: InstanceRecord) -> bytes:
    return orjson.dumps(dataclasses.asdict(record), option=orjson.OPT_INDENT_2)


def running_instances(runtime_dir: Path) -> list[InstanceRecord]:
    """The live servers, by name; stale records are removed on the way."""
    directory = records_dir(runtime_dir)
    if not directory.is_dir():
        return []
    records = []
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        record = _read(path)
        if record is None:
            continue
        if record.is_alive():
            records.append(record)
        else:
            path.unlink(missing_ok=True)
    return records


def find_instance(runtime_dir: Path, name: str) -> InstanceRecord | None:
    """The live server named ``name``, if any."""
    record = _read(_record_path(runtime_dir, name))
    return record if record is not None and record.is_alive() else None


class InstanceFile:
    """This process's own record: claimed once, rewritten atomically, removed at the end."""

    def __init__(self, path: Path, record: InstanceRecord) -> None:
        self.path = path
        self.record = record

    @classmethod
    def claim(cls, runtime_dir: Path, record: InstanceRecord) -> InstanceFile:
        """Create the record of ``record.name``; InstanceNameTaken when a live server has it."""
        directory = records_dir(runtime_dir)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = _record_path(runtime_dir, record.name)
        for _attempt in range(2):
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                holder = _read(path)
                if holder is not None and holder.is_alive():
                    raise InstanceNameTaken(holder) from None
                path.unlink(missing_ok=True)  # a dead server's record: the name is free
                continue
            with os.fdopen(descriptor, "wb") as file:
                file.write(_encode(record))
            return cls(path, record)
        raise InstanceNameTaken(_read(path) or record)

    def update(self, **changes: Any) -> None:
        """Change fields and rewrite the record (temp file, rename: readers never see half)."""
        self.record = dataclasses.replace(self.record, **changes)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_bytes(_encode(self.record))
        os.replace(temporary, self.path)

    def release(self) -> None:
        """Remove the record, unless another server has claimed the name since."""
        current = _read(self.path)
        if current is not None and current.pid == self.record.pid:
            self.path.unlink(missing_ok=True)
