"""Cold start and registration: how soon a new server answers, and a new model.

    python benchmarks/run_startup.py [--runs N] [--modes MODE ...] [--out DIR] [--smoke]

Each run starts ``modelserve start --foreground`` with an empty model store on free loopback
ports and measures:

- **cold start**: process start to the first ``/ping`` that answers ``Healthy`` (polled every
  few milliseconds);
- **register**: ``POST /models?url=digits.mar&initial_workers=1&synchronous=true`` (the digits
  example: a small TorchScript CNN and a TorchServe-style handler) to its answer, which comes
  once the worker has loaded the model; one prediction then checks that it serves.

Runs alternate between the spare worker on (``spare_worker=true``: the run waits until the spare
has done its imports before it registers, as a server that has been up for a moment has) and
off. The medians of each go to ``<out>/<date>-<host>-startup.md`` and ``.json``, with the
frontend's CPU time at Healthy (steadier than wall time on a busy machine), the spare's resident
memory and whether the registration was served by the spare's process. The sources are compiled
to bytecode first, as an installed package's are: a start that compiles them measures the
compiler.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from loadtest import BENCH_DIR, DIGITS_DIR
from loadtest import server as serving
from loadtest.archives import build_digits_archive, digits_artifacts
from loadtest.environment import describe_environment
from loadtest.report import write_named

DEFAULT_RUNS = 7
SMOKE_RUNS = 1
PING_INTERVAL_S = 0.005
PING_TIMEOUT_S = 1.0
SPARE_DEADLINE_S = 120.0
MIB = 1024 * 1024
SAMPLE = DIGITS_DIR / "sample.png"
# The server's log line for a spare worker that has done its imports.
SPARE_READY = re.compile(r"spare worker \(pid (\d+)\) ready")
MODES = {"spare on": "true", "spare off": "false"}
PACKAGES = ("modelserve", "modelserve_handlers", "modelserve_archiver")


def progress(message: str) -> None:
    """One line of progress, flushed at once."""
    print(f"[run_startup] {message}", file=sys.stderr, flush=True)


def start_until_healthy(workdir: Path, store: Path, spare: str) -> tuple[serving.Server, float]:
    """Start the server; it and the seconds from process start to ``/ping`` Healthy."""
    workdir.mkdir(parents=True, exist_ok=True)
    config, urls = serving.write_config(workdir, store, {"spare_worker": spare})
    command = [sys.executable, "-m", "modelserve.cli", "start", "--foreground"]
    log_path = workdir / "server.log"
    with log_path.open("wb") as log_file, httpx.Client(timeout=PING_TIMEOUT_S) as client:
        started = time.perf_counter()
        process = subprocess.Popen(
            [*command, "--ts-config", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
        server = serving.Server(process, urls[0], urls[1], log_path, urls[3])
        deadline = started + serving.START_DEADLINE_S
        while not _healthy(client, server.inference):
            if process.poll() is not None or time.perf_counter() > deadline:
                serving.stop(server)
                raise server.fail("the server did not become Healthy")
            time.sleep(PING_INTERVAL_S)
        return server, time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far: unlike wall time, it does not
    grow when other work on the machine takes the cores."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _healthy(client: httpx.Client, base: str) -> bool:
    try:
        response = client.get(base + "/ping")
    except httpx.TransportError:
        return False
    return response.status_code == 200 and response.json().get("status") == "Healthy"


def wait_for_spare(server: serving.Server) -> int:
    """The pid of the server's spare worker, once it reports its imports done."""
    deadline = time.monotonic() + SPARE_DEADLINE_S
    while not (found := SPARE_READY.search(server.log_path.read_text(errors="replace"))):
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise server.fail("no spare worker became ready")
        time.sleep(serving.POLL_S)
    return int(found[1])


def register_and_predict(server: serving.Server) -> tuple[float, int]:
    """Seconds from the register call to its answer, and the pid of the worker that serves."""
    started = time.perf_counter()
    response = httpx.post(
        server.management + "/models",
        params={"url": "digits.mar", "initial_workers": 1, "synchronous": "true"},
        timeout=serving.REGISTER_TIMEOUT_S,
    )
    register_s = time.perf_counter() - started
    if response.status_code != 200:
        raise server.fail(f"registering digits: HTTP {response.status_code} {response.text}")
    answer = httpx.post(
        server.inference + "/predictions/digits", content=SAMPLE.read_bytes(), timeout=60
    )
    if answer.status_code != 200 or "digit" not in answer.json():
        raise server.fail(f"predicting: HTTP {answer.status_code} {answer.text}")
    described = httpx.get(server.management + "/models/digits", timeout=10).json()
    (worker,) = described[0]["workers"]
    return register_s, worker["pid"]


def one_run(scratch: Path, store: Path, mode: str) -> dict[str, Any]:
    """Start, (wait for the spare,) register, stop: what this run measured."""
    server, cold_start_s = start_until_healthy(scratch, store, MODES[mode])
    try:
        cold_start_cpu_s = cpu_seconds(server.process.pid)
        frontend_rss = psutil.Process(server.process.pid).memory_info().rss
        spare_pid = spare_rss = None
        if mode == "spare on":
            spare_pid = wait_for_spare(server)
            spare_rss = psutil.Process(spare_pid).memory_info().rss
        register_s, worker_pid = register_and_predict(server)
        worker_cpu_s = cpu_seconds(worker_pid)
    finally:
        code = serving.stop(server)
    if code != 0:
        raise server.fail(f"the server exited with {code} after SIGTERM")
    return {
        "mode": mode,
        "cold_start_s": round(cold_start_s, 4),
        "cold_start_cpu_s": round(cold_start_cpu_s, 3),
        "register_s": round(register_s, 4),
        # The serving worker's CPU time from its start, its imports included (for a spare,
        # those done before the registration), and one prediction.
        "worker_cpu_s": round(worker_cpu_s, 3),
        "frontend_rss_mib": round(frontend_rss / MIB, 1),
        "spare_rss_mib": None if spare_rss is None else round(spare_rss / MIB, 1),
        "served_by_spare": spare_pid is not None and worker_pid == spare_pid,
    }


def compile_sources() -> None:
    """Compile the server's packages to bytecode where they are (a no-op when it is there)."""
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        for location in (spec and spec.submodule_search_locations) or []:
            compileall.compile_dir(location, quiet=1)


def summarise(runs: list[dict[str, Any]], modes: list[str]) -> dict[str, dict[str, Any]]:
    """Per mode: the median of each measure and how many runs the spare served."""
    summary = {}
    for mode in modes:
        mine = [run for run in runs if run["mode"] == mode]
        spare_rss = [run["spare_rss_mib"] for run in mine if run["spare_rss_mib"] is not None]
        summary[mode] = {
            "runs": len(mine),
            "cold_start_s": round(statistics.median(r["cold_start_s"] for r in mine), 3),
            "cold_start_cpu_s": round(statistics.median(r["cold_start_cpu_s"] for r in mine), 3),
            "register_s": round(statistics.median(r["register_s"] for r in mine), 3),
            "frontend_rss_mib": statistics.median(r["frontend_rss_mib"] for r in mine),
            "spare_rss_mib": statistics.median(spare_rss) if spare_rss else None,
            "served_by_spare": sum(r["served_by_spare"] for r in mine),
        }
    return summary


def markdown(report: dict[str, Any]) -> str:
    """The report as a markdown section."""
    env = report["environment"]
    lines = [
        f"## Cold start and registration ({env['date']}, {env['host']})",
        "",
        f"- machine: {env['cpus']} CPUs ({env['cpu_model']}), load average "
        f"{env['load_average_1min']} at start; Python {env['python']}; commit {env['commit']}",
        "- cold start: process start → `/ping` Healthy, empty model store; register: "
        "`POST /models?url=digits.mar&initial_workers=1&synchronous=true` → answered "
        "(a small TorchScript CNN); medians, modes alternating",
        "",
        "| mode | runs | cold start s | its CPU s | register s | frontend RSS MiB "
        "| spare RSS MiB | served by the spare |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, row in report["summary"].items():
        spare_rss = "—" if row["spare_rss_mib"] is None else f"{row['spare_rss_mib']:.0f}"
        lines.append(
            f"| {mode} | {row['runs']} | {row['cold_start_s']:.3f} "
            f"| {row['cold_start_cpu_s']:.2f} | {row['register_s']:.3f} "
            f"| {row['frontend_rss_mib']:.0f} | {spare_rss} "
            f"| {row['served_by_spare']}/{row['runs']} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """``--runs`` (per mode), ``--modes``, ``--out`` and ``--smoke`` (one run per mode)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, help=f"runs per mode (default {DEFAULT_RUNS})")
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=["on", "off"],
        default=["on", "off"],
        help="the spare worker on, off, or both in turn (default)",
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="results folder")
    parser.add_argument("--smoke", action="store_true", help="a quick check: one run per mode")
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = SMOKE_RUNS if args.smoke else DEFAULT_RUNS
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 1 when a server failed to start, register or stop cleanly."""
    args = parse_args(argv)
    modes = [f"spare {mode}" for mode in args.modes]
    compile_sources()
    environment = describe_environment(0, wrk=False)
    runs = []
    try:
        with tempfile.TemporaryDirectory(prefix="modelserve-startup-") as scratch_dir:
            scratch = Path(scratch_dir)
            store = scratch / "model_store"
            store.mkdir()
            build_digits_archive(store, digits_artifacts(scratch / "digits"))
            for index in range(args.runs):
                for mode in modes:
                    run = one_run(scratch / f"run-{index}-{mode.replace(' ', '-')}", store, mode)
                    progress(
                        f"{mode}: cold start {run['cold_start_s']:.3f} s, "
                        f"register {run['register_s']:.3f} s"
                    )
                    runs.append(run)
    except (serving.ServerError, httpx.HTTPError) as exc:
        print(f"run_startup: {exc}", file=sys.stderr)
        return 1
    report = {"environment": environment, "summary": summarise(runs, modes), "runs": runs}
    text = markdown(report)
    stem = write_named(args.out, "startup", report, text)
    print(text, flush=True)
    progress(f"wrote {stem}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
