"""What ``modelserve start | serve | stop | status | ps`` do: run a server in the foreground or
in the background, and find, show and stop this user's running servers by name."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson
import psutil
import uvloop

from modelserve import console_text
from modelserve.config import ConfigError, Settings, config_notices
from modelserve.engine.paddle_pipelines import PaddleService
from modelserve.instances import STARTED, InstanceRecord, find_instance, running_instances
from modelserve.server import run_server
from modelserve.telemetry.logs import configure_logging

START_WAIT_S = 120
STOP_WAIT_S = 60
POLL_S = 0.1
STARTED_MESSAGE = "Model server started."
# How much of a failed background server's output is shown (the rest stays in its log).
FAILED_OUTPUT_LINES = 20


class ConsoleEvents:
    """Tells the console of a foreground server what it does (server.ServerEvents)."""

    def __init__(self, note: str = "") -> None:
        self._note = note

    def started(self, record: InstanceRecord) -> None:
        """The planes listen: say where, and what was restored and loaded."""
        print(STARTED_MESSAGE, flush=True)
        print(console_text.started_summary(record), flush=True)
        if self._note:
            print(self._note, flush=True)

    def settled(self, record: InstanceRecord) -> None:
        """The startup models are ready, or some failed: say which and why."""
        print(console_text.settled_summary(record), flush=True)


def expected_name(settings: Settings) -> str | None:
    """The name a server with ``settings`` will take; None while it depends on a port not
    chosen yet (port 0)."""
    if settings.instance_name:
        return settings.instance_name
    port = settings.address("inference").port
    return str(port) if port else None


def name_in_use(settings: Settings) -> bool:
    """Say so when a live server already has the name this one would take."""
    name = expected_name(settings)
    holder = find_instance(settings.resolved_runtime_dir(), name) if name else None
    if holder is None:
        return False
    print(
        f"modelserve: a server named {name!r} is already running (pid {holder.pid}, "
        f"{holder.addresses.get('inference', 'starting')}). Stop it with "
        f"'modelserve stop {name}', or start this one on other ports (--port …) or with "
        "--instance NAME; 'modelserve ps' lists your servers.",
        file=sys.stderr,
    )
    return True


def run_foreground(
    settings: Settings,
    models: list[str],
    note: str = "",
    console_log: Path | None = None,
    paddle_services: Sequence[PaddleService] = (),
) -> int:
    """Serve until SIGTERM or Ctrl-C; 1 with one line on stderr when the start fails.
    ``paddle_services``: Paddle Serving pipeline services over startup models."""
    configure_logging(settings)
    # Each plane's uvicorn would announce itself; the server logs one line per plane instead.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            events = ConsoleEvents(note)
            runner.run(run_server(settings, models, events, console_log, paddle_services))
    except ConfigError as exc:
        print(f"modelserve: {exc}", file=sys.stderr)
        return 1
    return 0


def start_background(
    arguments: list[str], settings: Settings, log_path: Path, wait_s: float = START_WAIT_S
) -> int:
    """Run ``modelserve <arguments> --foreground`` detached, its output going to
    ``log_path``; return once it serves and its startup models have settled (waiting at most
    ``wait_s``), showing what the foreground console would, or why it failed."""
    # The server logs these to its log file; the user who typed the command must see them.
    for notice in config_notices(settings):
        if notice.level >= logging.WARNING:
            print(f"modelserve: {notice.message}", file=sys.stderr)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    offset = log_path.stat().st_size if log_path.exists() else 0
    command = [sys.executable, "-m", "modelserve.cli", *arguments, "--foreground"]
    command += ["--log-file", str(log_path)]
    with log_path.open("ab") as log_file:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the shell that started it
        )
    runtime_dir = settings.resolved_runtime_dir()
    deadline = time.monotonic() + wait_s

    def started(record: InstanceRecord | None) -> bool:
        return record is not None and record.state == STARTED

    record = _await_record(runtime_dir, child, started, deadline)
    if record is None:
        return _report_failure(child, log_path, offset, wait_s)
    print(f"{STARTED_MESSAGE} (pid {child.pid}, log {log_path})")
    print(console_text.started_summary(record), flush=True)

    def settled(record: InstanceRecord | None) -> bool:
        return record is not None and bool(record.startup.get("settled"))

    final = _await_record(runtime_dir, child, settled, deadline)
    if final is None:
        if child.poll() is not None:
            return _report_failure(child, log_path, offset, wait_s)
        print(
            f"Startup models still loading after {wait_s:g} s; "
            f"'modelserve status {record.name}' shows their progress."
        )
        return 0
    print(console_text.settled_summary(final))
    return 0


def _await_record(
    runtime_dir: Path,
    child: subprocess.Popen,
    condition: Callable[[InstanceRecord | None], bool],
    deadline: float,
) -> InstanceRecord | None:
    """Poll the child's record until ``condition`` holds; None if it exits or time is up."""
    while time.monotonic() < deadline and child.poll() is None:
        record = next(
            (found for found in running_instances(runtime_dir) if found.pid == child.pid), None
        )
        if condition(record):
            return record
        time.sleep(POLL_S)
    return None


def _report_failure(child: subprocess.Popen, log_path: Path, offset: int, wait_s: float) -> int:
    """Show why the background server did not start: the end of what it printed."""
    if child.poll() is None:
        print(f"modelserve: not started after {wait_s:g} s; see {log_path}", file=sys.stderr)
        return 1
    with log_path.open("rb") as log_file:
        log_file.seek(offset)
        output = log_file.read().decode(errors="replace").strip().splitlines()
    print(f"modelserve: failed to start (exit code {child.returncode}):", file=sys.stderr)
    for line in output[-FAILED_OUTPUT_LINES:]:
        print(f"  {line}", file=sys.stderr)
    print(f"(all of its output: {log_path})", file=sys.stderr)
    return 1


def choose_instance(runtime_dir: Path, name: str | None, command: str) -> InstanceRecord | None:
    """The server a ``stop`` / ``status`` means: the one named, or the only one running.
    None (after saying why) when there is none, or several and no name."""
    if name is not None:
        record = find_instance(runtime_dir, name)
        if record is None:
            running = ", ".join(found.name for found in running_instances(runtime_dir))
            others = f"; running: {running}" if running else ""
            print(f"No modelserve named {name!r} is running{others}.")
        return record
    running = running_instances(runtime_dir)
    if len(running) == 1:
        return running[0]
    if not running:
        print("modelserve is not currently running.")
        return None
    print(f"{len(running)} modelserve servers are running; name one: modelserve {command} NAME")
    print(console_text.ps_table(running))
    return None


def stop(runtime_dir: Path, name: str | None, stop_all: bool) -> int:
    """SIGTERM the chosen server (or all) and wait until each has exited."""
    if stop_all:
        records = running_instances(runtime_dir)
        if not records:
            print("modelserve is not currently running.")
        return max((_stop_one(record) for record in records), default=0)
    record = choose_instance(runtime_dir, name, "stop")
    if record is None:
        # Nothing running is what stop wants (0); an ambiguous or unknown name is not.
        return 0 if name is None and not running_instances(runtime_dir) else 1
    return _stop_one(record)


def _stop_one(record: InstanceRecord) -> int:
    try:
        process = psutil.Process(record.pid)
        os.kill(record.pid, signal.SIGTERM)
        process.wait(STOP_WAIT_S)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        print(
            f"modelserve {record.name} (pid {record.pid}) did not stop in {STOP_WAIT_S} s",
            file=sys.stderr,
        )
        return 1
    print(f"modelserve {record.name} has stopped.")
    return 0


def status(runtime_dir: Path, name: str | None) -> int:
    """Show the chosen server; 1 when none is running (or the choice is ambiguous)."""
    record = choose_instance(runtime_dir, name, "status")
    if record is None:
        return 1
    print(console_text.status_text(record))
    return 0


def follow_log(path: Path, runtime_dir: Path, name: str) -> int:
    """Print what the server ``name`` writes to ``path`` from now on, until Ctrl-C (the server
    keeps running) or until it stops."""
    print(
        f"Following {path}: Ctrl-C stops following; the server keeps running "
        f"(modelserve stop {name}).",
        flush=True,
    )
    with path.open("rb") as log:
        log.seek(0, os.SEEK_END)
        try:
            while True:
                line = log.readline()
                if line:
                    sys.stdout.write(line.decode(errors="replace"))
                    sys.stdout.flush()
                elif find_instance(runtime_dir, name) is None:
                    print(f"modelserve {name} has stopped.")
                    return 0
                else:
                    time.sleep(POLL_S)
        except KeyboardInterrupt:
            return 0


def logs(runtime_dir: Path, name: str | None) -> int:
    """Follow the log of a background server (grpst logs)."""
    record = choose_instance(runtime_dir, name, "logs")
    if record is None:
        return 1
    if record.console_log is None:
        print(f"modelserve {record.name} runs in the foreground: its log is on its terminal")
        return 1
    return follow_log(Path(record.console_log), runtime_dir, record.name)


def ps(runtime_dir: Path, as_json: bool, name: str | None = None) -> int:
    """List every running server of this user (``name``: only that one, as grpst ps -n)."""
    records = running_instances(runtime_dir)
    if name is not None:
        records = [record for record in records if record.name == name]
    if as_json:
        print(orjson.dumps([record.__dict__ for record in records]).decode())
    elif records:
        print(console_text.ps_table(records))
    else:
        print("No modelserve is running.")
    return 0
