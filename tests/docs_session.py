"""One document's shell session for tests/test_docs_run.py: the reader's terminal, with the
virtualenv active, on ports nobody else uses, and the servers it started stopped at the end.

Each block runs in a process of its own (so its exit status and output are its own), but the
session carries what a terminal would from one pasted block to the next: the exported
variables and the working directory a shell block leaves behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from docs_blocks import REPOSITORY, SHELL, Block
from support import free_ports

from modelserve.control import STARTED_MESSAGE
from modelserve.instances import running_instances

VENV = REPOSITORY / ".venv"
# The ports the documents name: make run's five, the README's second server's, and grps's
# two (from-grps.md).
DOCUMENTED_PORTS = (8080, 8081, 8082, 7070, 7071, 9080, 9081, 9082, 9070, 9071, 7080, 7081)
PORT_IN_TEXT = re.compile(r"(?<!\d)(" + "|".join(map(str, DOCUMENTED_PORTS)) + r")(?!\d)")
# Where make run (and a plain modelserve start) listens: the settings' environment variables.
PORT_SETTINGS = {
    "MODELSERVE_INFERENCE_ADDRESS": (8080, "http://127.0.0.1:{}"),
    "MODELSERVE_MANAGEMENT_ADDRESS": (8081, "http://127.0.0.1:{}"),
    "MODELSERVE_METRICS_ADDRESS": (8082, "http://127.0.0.1:{}"),
    "MODELSERVE_GRPC_INFERENCE_PORT": (7070, "{}"),
    "MODELSERVE_GRPC_MANAGEMENT_PORT": (7071, "{}"),
}
# Every curl of a document fails on an HTTP error (and shows the body): a 404 is a broken
# example even though curl would exit 0. No progress meter in the captured output.
CURLRC = "fail-with-body\nno-progress-meter\n"
# Variables of the process running the tests that a fresh terminal would not have.
OUTER_ONLY = ("VIRTUAL_ENV", "MFLAGS")
BLOCK_TIMEOUT_S = 300
# A background server may train the digits model first (make run → make example).
SERVER_START_TIMEOUT_S = 600
STOP_TIMEOUT_S = 30
# How a foreground server says its startup models have settled (console_text.settled_summary).
SETTLED = re.compile(r"^(Ready\b|Not serving\b)", re.MULTILINE)
STARTED = re.compile(r"^" + re.escape(STARTED_MESSAGE), re.MULTILINE)


@dataclass
class Outcome:
    """How a block ended."""

    exit_code: int | None  # None: still running (a background server)
    output: str
    timed_out: bool = False


class DocSession:
    """The terminal in which one document's blocks are pasted, in order."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.ports = dict(zip(DOCUMENTED_PORTS, free_ports(len(DOCUMENTED_PORTS)), strict=True))
        self.runtime_dir = scratch / "runtime"
        (scratch / ".curlrc").write_text(CURLRC)
        self.cwd = REPOSITORY
        self.env = self._environment()
        # What the background blocks started (their shells are gone once they serve), and
        # their process groups, swept at the end.
        self.servers: list[psutil.Process] = []
        self.groups: list[int] = []
        self._logs_before = _repository_logs()

    def _environment(self) -> dict[str, str]:
        # Nothing of the caller's own modelserve configuration leaks into the documents, nor
        # the outer make's flags (under `make test`) into the documents' make.
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("MODELSERVE_", "TS_", "MAKE")) and key not in OUTER_ONLY
        }
        environment = {
            **inherited,
            # As after `. .venv/bin/activate`.
            "VIRTUAL_ENV": str(VENV),
            "PATH": f"{VENV / 'bin'}{os.pathsep}{inherited.get('PATH', '')}",
            # ps / status / stop in the documents see this session's servers only.
            "MODELSERVE_RUNTIME_DIR": str(self.runtime_dir),
            # Snapshots would be written into the repository's logs/.
            "MODELSERVE_ENABLE_SNAPSHOTS": "false",
            "CURL_HOME": str(self.scratch),
            "PYTHONUNBUFFERED": "1",
        }
        for key, (port, template) in PORT_SETTINGS.items():
            environment[key] = template.format(self.ports[port])
        return environment

    def rewrite(self, text: str) -> str:
        """``text`` with every documented port replaced by this session's."""
        return PORT_IN_TEXT.sub(lambda match: str(self.ports[int(match[1])]), text)

    def _script(self, block: Block, body: str) -> Path:
        suffix = ".sh" if block.language in SHELL else ".py"
        path = self.scratch / f"block-{block.line}{suffix}"
        path.write_text(body)
        return path

    def run(self, block: Block) -> Outcome:
        """Run a shell or Python block to its end, as pasted into the session's terminal."""
        text = self.rewrite(block.text)
        if block.language not in SHELL:
            command = [str(VENV / "bin" / "python"), str(self._script(block, text))]
            return self._run(command)
        environment = self.scratch / f"block-{block.line}.env"
        directory = self.scratch / f"block-{block.line}.cwd"
        # What the terminal keeps for the next block: its exported variables and where it is.
        keep = f"env -0 > {shlex.quote(str(environment))}; pwd > {shlex.quote(str(directory))}"
        body = f"set -e -o pipefail\n{text}\n{keep}\n"
        outcome = self._run(["bash", str(self._script(block, body))])
        if outcome.exit_code == 0:
            entries = environment.read_bytes().decode().split("\0")
            self.env = dict(entry.split("=", 1) for entry in entries if "=" in entry)
            self.cwd = Path(directory.read_text().strip())
        return outcome

    def _run(self, command: list[str]) -> Outcome:
        process = subprocess.Popen(
            command,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a block that hangs can be ended with all it started
        )
        try:
            output, _ = process.communicate(timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid)
            output, _ = process.communicate()
            return Outcome(process.returncode, output.decode(errors="replace"), timed_out=True)
        return Outcome(process.returncode, output.decode(errors="replace"))

    def start_background(self, block: Block) -> Outcome:
        """Start a block that serves in the foreground; return once its server says its
        startup models have settled (exit_code None), or how it ended before that.

        Once the server is up, the block's shell is ended (SIGKILL), so that no further line
        of the block ever runs, even when the server stops (as in a terminal the server holds,
        where the README's `make test` after `make run` waits for Ctrl-C); what the shell
        started keeps serving until ``close``.
        """
        body = f"set -e -o pipefail\n{self.rewrite(block.text)}"
        log_path = self.scratch / f"block-{block.line}.log"
        with log_path.open("wb") as log:
            shell = subprocess.Popen(
                ["bash", str(self._script(block, body))],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            output = log_path.read_text(errors="replace")
            started = STARTED.search(output)
            if started and SETTLED.search(output, started.end()):
                break
            if shell.poll() is not None:
                return Outcome(shell.returncode, log_path.read_text(errors="replace"))
            time.sleep(0.1)
        self.groups.append(shell.pid)  # its own session: the process group id is its pid
        shell_process = _process(shell.pid)
        self.servers += _descendants(shell_process) if shell_process is not None else []
        shell.kill()
        shell.wait()
        output = log_path.read_text(errors="replace")
        return Outcome(None, output, timed_out=time.monotonic() >= deadline)

    def close(self) -> None:
        """Stop every server the session started, whatever state the blocks left, and remove
        what its background starts wrote into the repository's logs/ (console logs, a grps
        command's log directory)."""
        instances = [_process(record.pid) for record in running_instances(self.runtime_dir)]
        _stop([*self.servers, *instances])
        for group in self.groups:
            _kill_group(group)
        for path in _repository_logs() - self._logs_before:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        logs = REPOSITORY / "logs"
        if not self._logs_before and logs.is_dir() and not any(logs.iterdir()):
            logs.rmdir()


def _repository_logs() -> set[Path]:
    """What background servers wrote in the repository's logs/ (cli's default place): console
    logs, and the log directories of grps commands (logs/NAME)."""
    logs = REPOSITORY / "logs"
    return set(logs.glob("modelserve-*.log")) | {path for path in logs.glob("*") if path.is_dir()}


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def _descendants(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _is_worker(process: psutil.Process) -> bool:
    try:
        return "modelserve.worker" in process.cmdline()
    except psutil.Error:
        return False


def _stop(processes: list[psutil.Process | None]) -> None:
    """Stop ``processes`` and all they started: SIGTERM to each but the model workers (which
    their server stops, and which exit on their own when it is gone), then SIGKILL to what is
    left after STOP_TIMEOUT_S."""
    roots = [process for process in processes if process is not None]
    found = roots + [child for root in roots for child in _descendants(root)]
    everything = list({process.pid: process for process in found}.values())
    for process in everything:
        if not _is_worker(process):
            with contextlib.suppress(psutil.NoSuchProcess):
                process.terminate()
    _, alive = psutil.wait_procs(everything, timeout=STOP_TIMEOUT_S)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def _kill_group(group: int) -> None:
    """SIGKILL whatever is left in a process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
