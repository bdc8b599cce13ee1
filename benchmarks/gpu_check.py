"""The GPU check: the tests that need a GPU, then a ResNet-18 on cuda:0 through the server.

    python benchmarks/gpu_check.py [--wheels DIR] [--time-limit S] [--duration S]
                                   [--concurrency C ...] [--out DIR] [--smoke]
    make gpu-check

Made for a GPU machine without network whose Python has a CUDA torch (see docs/performance.md,
"GPU check"). Stages, each timed, all within ``--time-limit`` (default 480 s: past it the
running stage is stopped, its processes with it, and the rest skipped):

1. **device**: whether this interpreter imports torch and ``torch.cuda.is_available()``, and
   what ``nvidia-smi`` lists.
2. **wheels**: with a wheel folder (``make gpu-wheels``; default ``.gpu-wheels/``) its size is
   checked; where this is the Python it was made for, a venv that sees this Python's packages
   (the CUDA torch) gets the wheels and the project installed offline, and runs the rest.
   Without one, this interpreter runs the rest as it is.
3. **GPU tests**: every test marked ``@pytest.mark.gpu`` (``pytest -m gpu`` over the test files
   that use the marker), so new GPU tests join by carrying the marker. Without a GPU they skip
   themselves, which still shows what was selected.
4. **serving**: ``gpu_serving.py``: ResNet-18 at batch 1 and 8 through the server against
   in-process at each concurrency, with the frontend's CPU per request. Without a GPU, the
   same code in miniature on the CPU with 1 s runs: a smoke test, not a measurement.

Prints the report and writes ``<out>/<date>-<host>-gpu-check.md`` and ``.json`` (``--out``,
else ``$OUT`` when set, else ``benchmarks/results/``). Exits 1 when a stage failed, else 0.
Until the venv exists only the standard library is used, so a bare Python runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gpu_wheels
from loadtest import BENCH_DIR, REPO_ROOT
from loadtest.environment import describe_environment
from loadtest.options import SMOKE_DURATION_S, parse_load_args
from loadtest.report import write_named

DEFAULT_DURATION_S = 5
DEFAULT_TIME_LIMIT_S = 480
STOP_GRACE_S = 15
GPU_MARKER = "pytest.mark.gpu"
# JUnit XML's mark of a test that did not pass, and what pytest's summary calls it.
OUTCOMES = {"skipped": "skipped", "failure": "failed", "error": "error"}
# What this interpreter's torch says about CUDA, as one JSON line.
TORCH_PROBE = (
    "import json, torch; cuda = torch.cuda.is_available(); print(json.dumps({"
    "'torch': torch.__version__, 'cuda_build': torch.version.cuda, 'cuda': cuda, "
    "'gpu': torch.cuda.get_device_name(0) if cuda else None}))"
)
NVIDIA_SMI = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]


@dataclass
class Stage:
    """How one stage ended: ``passed``, ``failed`` or ``skipped``, and what to know about it."""

    name: str
    status: str
    seconds: float
    note: str


class Stages:
    """Runs the stages in order within the time limit, timing each and printing how it ended."""

    def __init__(self, time_limit_s: float) -> None:
        self.time_limit_s = time_limit_s
        self.deadline = time.monotonic() + time_limit_s
        self.done: list[Stage] = []

    def run(
        self, name: str, step: Callable[[], tuple[str, str, Any]], unless: str | None = None
    ) -> Any:
        """Run ``step``, which returns (status, note, data), unless ``unless`` says why not;
        returns its data, or None when it was skipped or stopped at the time limit."""
        started = time.monotonic()
        status, note, data = "skipped", unless or "the time limit was reached before it", None
        if unless is None and started < self.deadline:
            print(f"[gpu_check] {name} ...", file=sys.stderr, flush=True)
            try:
                status, note, data = step()
            except subprocess.TimeoutExpired as exc:
                # The time limit, or before it one of the stage's own commands timing out.
                status, note = "failed", str(exc)
                if time.monotonic() >= self.deadline:
                    note = f"stopped at the {self.time_limit_s:.0f} s time limit"
        stage = Stage(name, status, round(time.monotonic() - started, 1), note)
        self.done.append(stage)
        print(f"[gpu_check] {name}: {status} in {stage.seconds} s: {note}", file=sys.stderr)
        return data

    @property
    def failed(self) -> bool:
        """Whether any stage failed."""
        return any(stage.status == "failed" for stage in self.done)


def run_until(command: list[str], deadline: float, **options: Any) -> int:
    """Run ``command`` in its own process group, its output going to stderr; past
    ``deadline`` the whole group (servers and their workers too) gets SIGTERM, then SIGKILL,
    and TimeoutExpired is raised. Returns the exit code."""
    process = subprocess.Popen(command, start_new_session=True, stdout=sys.stderr, **options)
    try:
        return process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except BaseException:  # the time limit, or Ctrl-C: the group must not outlive the check
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        raise


def probe_device() -> tuple[str, str, dict[str, Any]]:
    """What this interpreter's torch and nvidia-smi see; ``gpu`` is the GPU's name, or None
    with ``no_gpu`` saying why."""
    found: dict[str, Any] = {"nvidia_smi": None, "gpu": None}
    if shutil.which("nvidia-smi"):
        listed = subprocess.run(NVIDIA_SMI, capture_output=True, text=True, timeout=60)
        found["nvidia_smi"] = (listed.stdout or listed.stderr).strip()
    probe = subprocess.run(
        [sys.executable, "-c", TORCH_PROBE], capture_output=True, text=True, timeout=60
    )
    if probe.returncode != 0:
        lines = probe.stderr.strip().splitlines() or ["no output"]
        found["no_gpu"] = f"torch does not import ({lines[-1]})"
    else:
        found.update(json.loads(probe.stdout))
        if not found["gpu"]:
            cuda = found["cuda_build"] or "none: a CPU build"
            found["no_gpu"] = f"torch {found['torch']} sees no CUDA device (its CUDA: {cuda})"
    if found["gpu"]:
        note = f"{found['gpu']}, torch {found['torch']}, CUDA {found['cuda_build']}"
    else:
        note = f"no GPU: {found['no_gpu']}; {found['nvidia_smi'] or 'no nvidia-smi'}"
    return "passed", note, found


def prepare_python(folder: Path, venv_dir: Path, deadline: float) -> tuple[str, str, str]:
    """The wheels stage: (status, note, the interpreter the later stages use)."""
    this = sys.executable
    if not (folder / gpu_wheels.REQUIREMENTS_FILE).is_file():
        return "skipped", f"no wheel folder at {folder} (make gpu-wheels): {this} as it is", this
    size = gpu_wheels.size_mib(folder)
    held = f"{len(gpu_wheels.wheels(folder))} wheels, {size:.1f} MiB"
    if size > gpu_wheels.LIMIT_MIB:
        return "failed", f"{held}, over the {gpu_wheels.LIMIT_MIB} MiB limit", this
    if sys.version_info[:2] != gpu_wheels.TARGET_PYTHON:
        target = ".".join(map(str, gpu_wheels.TARGET_PYTHON))
        return "skipped", f"{held} for Python {target}, not installed: {this} as it is", this
    try:
        python = gpu_wheels.install(folder, venv_dir, deadline)
    except subprocess.CalledProcessError as exc:
        return "failed", f"{held}: {exc} (pip's message is above)", this
    return "passed", f"{held}, installed offline into a venv over {this}", str(python)


def marks_gpu_tests(path: Path) -> bool:
    """Whether the test file marks a test, or the whole module, with ``pytest.mark.gpu``."""
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith(f"@{GPU_MARKER}") or (
            line.startswith("pytestmark") and GPU_MARKER in line
        ):
            return True
    return False


def gpu_test_files() -> list[Path]:
    """The test files that mark tests with ``@pytest.mark.gpu`` (the rest are not even
    collected: they may import what the wheel folder leaves out)."""
    return sorted(filter(marks_gpu_tests, (REPO_ROOT / "tests").rglob("test_*.py")))


def read_test_outcomes(junit: Path) -> list[dict[str, str]]:
    """Each test in pytest's JUnit XML report: its id, outcome and the first line of what
    pytest said about it."""
    outcomes = []
    for case in ElementTree.parse(junit).iter("testcase"):
        marks = [child for child in case if child.tag in OUTCOMES]
        message = (marks[0].get("message") or "").strip() if marks else ""
        outcomes.append(
            {
                "test": f"{case.get('classname')}::{case.get('name')}",
                "outcome": OUTCOMES[marks[0].tag] if marks else "passed",
                "message": message.splitlines()[0] if message else "",
            }
        )
    return outcomes


def run_gpu_tests(python: str, deadline: float, scratch: Path) -> tuple[str, str, list]:
    """``pytest -m gpu`` over the files that mark GPU tests."""
    files = [str(path.relative_to(REPO_ROOT)) for path in gpu_test_files()]
    junit = scratch / "gpu-tests.xml"
    command = [python, "-m", "pytest", "-m", "gpu", "-p", "no:cacheprovider"]
    code = run_until([*command, f"--junitxml={junit}", *files], deadline, cwd=REPO_ROOT)
    outcomes = read_test_outcomes(junit) if junit.is_file() else []
    counts = Counter(outcome["outcome"] for outcome in outcomes)
    summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))
    note = f"{summary or 'none ran'} ({', '.join(files)})"
    # pytest exits 5 when the marker selects nothing, which fails the stage too.
    return ("passed" if code == 0 else "failed"), note, outcomes


def run_serving(
    python: str, on_gpu: bool, args: argparse.Namespace, scratch: Path, deadline: float
) -> tuple[str, str, dict | None]:
    """``gpu_serving.py`` at full size on the GPU, or its CPU smoke pass."""
    result = scratch / "serving.json"
    command = [python, str(BENCH_DIR / "gpu_serving.py"), "--json", str(result)]
    command += ["--device", "cuda" if on_gpu else "cpu"]
    command += ["--duration", str(args.duration if on_gpu else SMOKE_DURATION_S)]
    command += ["--concurrency", *map(str, args.concurrency)]
    code = run_until(command, deadline)
    if code != 0:
        return "failed", f"gpu_serving.py exited with {code} (its output is above)", None
    data = json.loads(result.read_text())
    model = data["model"]
    shape = "x".join(map(str, model["input_shape"]))
    return "passed", f"{len(data['runs'])} runs, {model['name']} {shape} on {data['device']}", data


def cell(text: str) -> str:
    """``text`` safe inside a markdown table cell."""
    return text.replace("|", "\\|")


def number(value: float | None, digits: int = 1) -> str:
    """A table number with thousands separators; a dash where nothing was measured."""
    return "—" if value is None else f"{value:,.{digits}f}"


def serving_markdown(serving: dict[str, Any]) -> list[str]:
    """The serving stage's table: in-process, through the server, and the no-op ceiling."""
    model = serving["model"]
    shape = "x".join(map(str, model["input_shape"]))
    lines = [
        f"### ResNet-18 ({shape}, {model['body_bytes']:,} bytes per request) on "
        f"{serving['device']}: through modelserve against in-process",
        "",
        "The handler (`benchmarks/handlers/tensor_argmax.py`) called in-process back to back "
        "(latency per call), then through modelserve with 1 worker, unbatched and with batches "
        f"of 8 within 5 ms, under `loadtest/http_load.py` for {serving['duration_s']} s per run. "
        "CPU-s / 1k: CPU seconds per 1,000 answered requests (/proc). GPU busy: NVML's "
        "utilisation during the run. Client CPU: the share of one core the load generator used "
        "(near 1.0 it, not the server, is the limit).",
        "",
        "| where | batch | c | req/s | of in-process | p50 ms | p99 ms | errors "
        "| frontend CPU-s / 1k | worker CPU-s / 1k | GPU busy % | client CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| in-process | {run['batch_size']} | — | {number(run['requests_per_s'], 0)} | — "
        f"| {number(run['p50_ms'], 2)} | {number(run['p99_ms'], 2)} | — | — | — | — | — |"
        for run in serving["in_process"]
    ]
    rows = [("modelserve", run) for run in serving["runs"]]
    for where, run in [*rows, ("no-op ceiling", serving["ceiling"])]:
        lines.append(
            f"| {where} | {run['batch_size']} | {run['concurrency']} "
            f"| {number(run['requests_per_s'], 0)} | {number(run['of_in_process'], 2)} "
            f"| {number(run['p50_ms'], 2)} | {number(run['p99_ms'], 2)} | {run['errors']} "
            f"| {number(run['frontend_cpu_s_per_1k'], 3)} "
            f"| {number(run['worker_cpu_s_per_1k'], 3)} | {number(run['gpu_busy_percent'], 0)} "
            f"| {number(run['client_cpu'], 2)} |"
        )
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The whole report as a markdown section."""
    environment, device = report["environment"], report["device"] or {}
    found = device.get("gpu") or f"none ({device.get('no_gpu', 'not probed')})"
    lines = [
        f"## GPU check, {environment['date'][:10]} on {environment['host']}",
        "",
        f"- GPU: {found}; nvidia-smi: {device.get('nvidia_smi') or 'none'}",
        f"- machine: {environment['cpus']} CPUs ({environment['cpu_model']}), Python "
        f"{environment['python']}, commit {environment['commit']}",
        "",
    ]
    if report["skipped"]:
        lines += ["Skipped here:", "", *(f"- {item}" for item in report["skipped"]), ""]
    lines += ["| stage | result | seconds | note |", "| --- | --- | ---: | --- |"]
    lines += [
        f"| {stage['name']} | {stage['status']} | {stage['seconds']} | {cell(stage['note'])} |"
        for stage in report["stages"]
    ]
    if report["gpu_tests"]:
        lines += ["", "### GPU tests (`pytest -m gpu`)", "", "| test | outcome | note |"]
        lines.append("| --- | --- | --- |")
        lines += [
            f"| {test['test']} | {test['outcome']} | {cell(test['message'])} |"
            for test in report["gpu_tests"]
        ]
    if report["serving"]:
        lines += ["", *serving_markdown(report["serving"])]
    return "\n".join(lines) + "\n"


def skipped_here(device: dict[str, Any] | None, stages: list[Stage]) -> list[str]:
    """What this machine could not check, and why."""
    items = [f"{stage.name}: {stage.note}" for stage in stages if stage.status == "skipped"]
    if device is None or device["gpu"]:
        return items
    items.append(f"the GPU itself: {device['no_gpu']}")
    if device.get("torch"):  # the tests and the serving pass ran, on the CPU
        items += [
            "the GPU tests' checks: without a GPU each skips itself (listed below)",
            "ResNet-18 at full size on cuda:0: its miniature ran on the CPU instead, with "
            f"{SMOKE_DURATION_S} s runs (a smoke test of the code, not a measurement)",
        ]
    return items


def add_options(parser: argparse.ArgumentParser) -> None:
    """``--wheels`` and ``--time-limit``; ``$OUT``, when set, is the default ``--out``."""
    parser.add_argument(
        "--wheels",
        type=Path,
        default=gpu_wheels.DEFAULT_FOLDER,
        help="the wheel folder make gpu-wheels fills (default .gpu-wheels/)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=DEFAULT_TIME_LIMIT_S,
        metavar="S",
        help=f"seconds for the whole check (default {DEFAULT_TIME_LIMIT_S})",
    )
    if os.environ.get("OUT"):
        parser.set_defaults(out=Path(os.environ["OUT"]))


def main(argv: list[str] | None = None) -> int:
    """Run the stages, print and write the report; 1 when a stage failed."""
    args = parse_load_args(
        __doc__.split("\n\n")[0], argv, duration_s=DEFAULT_DURATION_S, add_arguments=add_options
    )
    stages = Stages(args.time_limit)
    device = stages.run("device", probe_device)
    on_gpu = bool(device and device["gpu"])
    no_torch = None if device and device.get("torch") else "torch does not import here"
    environment = describe_environment(args.duration if on_gpu else SMOKE_DURATION_S, wrk=False)
    scratch = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    try:
        venv_dir = scratch / "venv"
        python = stages.run(
            "wheels", lambda: prepare_python(args.wheels, venv_dir, stages.deadline)
        )
        python = python or sys.executable
        tests = stages.run(
            "GPU tests", lambda: run_gpu_tests(python, stages.deadline, scratch), no_torch
        )
        serving = stages.run(
            "serving", lambda: run_serving(python, on_gpu, args, scratch, stages.deadline), no_torch
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report = {
        "environment": environment,
        "device": device,
        "stages": [asdict(stage) for stage in stages.done],
        "skipped": skipped_here(device, stages.done),
        "gpu_tests": tests or [],
        "serving": serving,
    }
    text = markdown(report)
    print(text, flush=True)
    stem = write_named(args.out, "gpu-check", report, text)
    print(f"[gpu_check] wrote {stem}.md and {stem}.json", file=sys.stderr)
    return 1 if stages.failed else 0


if __name__ == "__main__":
    sys.exit(main())
