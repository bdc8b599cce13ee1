"""Where and on what a benchmark ran, so a results file can be read on its own."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from datetime import datetime
from typing import Any

from loadtest import REPO_ROOT
from loadtest.wrk import wrk_version


def cpu_model() -> str:
    """The processor's marketing name from /proc/cpuinfo, or what platform knows."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_revision() -> str:
    """The checked-out commit, marked when the working tree has uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit} (uncommitted changes)" if dirty else commit


def machine_line(environment: dict[str, Any]) -> str:
    """A report's first line: the machine, its load at the start, the software and commit."""
    env = environment
    wrk = f", {env['wrk']}" if "wrk" in env else ""
    return (
        f"- machine: {env['cpus']} CPUs ({env['cpu_model']}), load average "
        f"{env['load_average_1min']} at start; Python {env['python']}{wrk}, "
        f"commit {env['commit']}"
    )


def describe_environment(duration_s: int, wrk: bool = True) -> dict[str, Any]:
    """Date, host, CPUs and their load, software versions (wrk's unless ``wrk`` is False: a
    benchmark without it) and the run length.

    Call it before measuring: the load average then tells whether something else was busy.
    """
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        **({"wrk": wrk_version()} if wrk else {}),
        "commit": git_revision(),
        "duration_s": duration_s,
    }
