"""Hot reload under load: a new version swapped into a polled Triton model repository.

A real server polls the repository while clients keep asking, and not one request may fail
or hang.

    python benchmarks/hot_reload.py [--seconds S] [--concurrency C] [--poll-secs P] [--out DIR]
                                    [--smoke]

The ONNX pair model (``sum = a + b``, ``product = a * b``) is served from a repository in a
temporary directory (version 1, dynamic batching, 1 worker) by ``modelserve start`` in poll
mode. ``C`` clients send KServe v2 REST requests without a version (the default version
answers) for ``S`` seconds, each answer checked, while the repository changes as a deployment
tool changes it:

1. a half-written version directory ``2`` appears (no model file yet): it must not load over
   the next polls;
2. version 3 is written under a temporary name (``.tmp-3``, not a version to the repository
   reader) and renamed to ``3``: the time until answers come from version 3 is measured;
3. once version 3 is the only one served, the directories of versions 1 and 2 are removed.

The clients run on for at least two polls after that. Writes ``<out>/<date>-<host>-hot-reload.md``
and ``.json``; exits 1 when any request failed or hung, when version 2 loaded, or when version
3 never served.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import onnx
from loadtest import BENCH_DIR
from loadtest import server as serving
from loadtest.environment import describe_environment
from loadtest.report import write_named
from onnx import TensorProto, helper

MODEL = "pair"
CONFIG = """name: "pair"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [
  { name: "a" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "b" data_type: TYPE_INT64 dims: [ 4 ] }
]
output [
  { name: "sum" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "product" data_type: TYPE_FP32 dims: [ 4 ] }
]
dynamic_batching { max_queue_delay_microseconds: 2000 }
instance_group [ { count: 1 kind: KIND_CPU } ]
"""
# A request that takes longer than this is counted as hung.
REQUEST_TIMEOUT_S = 10.0
# Warm load before the repository changes, and polls the half-written version is watched for.
WARM_UP_S = 2.0
POLLS_WATCHED = 2.5
# Load that goes on after the old directories are removed, in polls.
POLLS_AFTER_REMOVAL = 2
# How long version 3 may take to serve, and version 1 to retire, before the run gives up.
SWAP_DEADLINE_S = 120.0
CHECK_INTERVAL_S = 0.1
FAILURES_KEPT = 20
# The server's log line for a loaded worker of version 3.
WORKER_READY = re.compile(rf"{MODEL}:3 worker \S+ ready in (\d+) ms")
SMOKE_SECONDS = 1
SMOKE_CONCURRENCY = 4
SMOKE_POLL_S = 0.5


def progress(message: str) -> None:
    """One line of progress, flushed at once."""
    print(f"[hot_reload] {message}", file=sys.stderr, flush=True)


def pair_model(path: Path) -> Path:
    """The ONNX pair model: float32 ``a`` and int64 ``b`` (N x 4) → ``sum`` and ``product``."""
    rows = ["N", 4]
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["b"], ["b_float"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["a", "b_float"], ["sum"]),
            helper.make_node("Mul", ["a", "b_float"], ["product"]),
        ],
        MODEL,
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, rows),
            helper.make_tensor_value_info("b", TensorProto.INT64, rows),
        ],
        [
            helper.make_tensor_value_info("sum", TensorProto.FLOAT, rows),
            helper.make_tensor_value_info("product", TensorProto.FLOAT, rows),
        ],
    )
    # An opset and IR version that every ONNX Runtime the extras allow can read.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@dataclass
class Tally:
    """What the clients saw: every request, its outcome, and which version answered."""

    requests: int = 0
    failures: int = 0
    hung: int = 0
    per_version: Counter[str] = field(default_factory=Counter)
    # When each version first answered (time.monotonic()).
    first_answer: dict[str, float] = field(default_factory=dict)
    failure_samples: list[str] = field(default_factory=list)

    def failed(self, at_s: float, what: str) -> None:
        """One request failed (``at_s`` seconds into the run) because of ``what``."""
        self.failures += 1
        if len(self.failure_samples) < FAILURES_KEPT:
            self.failure_samples.append(f"{at_s:.2f} s: {what}")


def request_body(client: int, sequence: int) -> tuple[dict[str, Any], list[float], list[float]]:
    """A request whose answer is known: small integers and halves, exact in float32."""
    a = [client / 2, sequence % 97, -1.5, 3.0]
    b = [1, 2, sequence % 5, -4]
    body = {
        "inputs": [
            {"name": "a", "shape": [1, 4], "datatype": "FP32", "data": a},
            {"name": "b", "shape": [1, 4], "datatype": "INT64", "data": b},
        ]
    }
    return (
        body,
        [x + y for x, y in zip(a, b, strict=True)],
        [x * y for x, y in zip(a, b, strict=True)],
    )


def answered_version(
    response: httpx.Response, total: list[float], product: list[float]
) -> tuple[str | None, str]:
    """The version that gave a right answer, or None and why the answer is wrong."""
    if response.status_code != 200:
        return None, f"HTTP {response.status_code}: {response.text[:200]}"
    try:
        answer = response.json()
        outputs = {output["name"]: output["data"] for output in answer["outputs"]}
    except (ValueError, KeyError, TypeError):
        return None, f"not a v2 answer: {response.text[:200]}"
    if outputs.get("sum") != total or outputs.get("product") != product:
        return None, f"wrong outputs {outputs}"
    if not answer.get("model_version"):
        return None, "no model_version in the answer"
    return answer["model_version"], ""


async def client_loop(
    http: httpx.AsyncClient, url: str, index: int, started: float, stop: asyncio.Event, tally: Tally
) -> None:
    """Ask again as soon as answered, until ``stop``; each answer checked and counted."""
    sequence = 0
    while not stop.is_set():
        sequence += 1
        body, total, product = request_body(index, sequence)
        tally.requests += 1
        try:
            response = await http.post(url, json=body)
        except httpx.TimeoutException:
            tally.hung += 1
            continue
        except httpx.HTTPError as exc:
            tally.failed(time.monotonic() - started, f"{type(exc).__name__}: {exc}")
            continue
        version, problem = answered_version(response, total, product)
        if version is None:
            tally.failed(time.monotonic() - started, problem)
            continue
        tally.per_version[version] += 1
        tally.first_answer.setdefault(version, time.monotonic())


async def served_versions(http: httpx.AsyncClient, base: str) -> list[str]:
    """The versions the server lists for the model (its v2 metadata and repository index)."""
    metadata = await http.get(f"{base}/v2/models/{MODEL}")
    index = await http.post(f"{base}/v2/repository/index", json={})
    listed = set(metadata.json().get("versions", [])) | {
        entry["version"] for entry in index.json() if entry["name"] == MODEL
    }
    return sorted(listed, key=int)


async def watch(http: httpx.AsyncClient, base: str, seconds: float, expected: list[str]) -> bool:
    """Whether the server lists exactly ``expected`` at every check for ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await served_versions(http, base) != expected:
            return False
        await asyncio.sleep(CHECK_INTERVAL_S)
    return True


async def wait_for(condition: Callable[[], Awaitable[bool]]) -> float | None:
    """When ``condition`` became true (time.monotonic()), checked until ``SWAP_DEADLINE_S``;
    None if it never did."""
    deadline = time.monotonic() + SWAP_DEADLINE_S
    while not await condition():
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(CHECK_INTERVAL_S)
    return time.monotonic()


async def swap_versions(
    http: httpx.AsyncClient, base: str, model: Path, onnx_file: Path, poll_s: float, tally: Tally
) -> dict[str, Any]:
    """Change the repository as a deployment tool does, checking what the server lists."""
    events: dict[str, Any] = {
        "version_3_served_after_s": None,
        "version_1_retired_after_s": None,
        "served_after_removal": False,
    }
    await asyncio.sleep(WARM_UP_S)

    progress("half-written version 2 (no model file), and version 3 written as .tmp-3")
    (model / "2").mkdir()
    staging = model / ".tmp-3"
    staging.mkdir()
    shutil.copyfile(onnx_file, staging / "model.onnx")
    events["half_written_ignored"] = await watch(http, base, POLLS_WATCHED * poll_s, ["1"])

    progress("rename .tmp-3 to 3")
    os.rename(staging, model / "3")
    renamed = time.monotonic()

    async def version_3_answered() -> bool:
        return "3" in tally.first_answer

    async def version_1_retired() -> bool:
        return await served_versions(http, base) == ["3"]

    answered = await wait_for(version_3_answered)
    if answered is None:
        return events
    events["version_3_served_after_s"] = round(answered - renamed, 3)
    progress(f"version 3 answered {answered - renamed:.2f} s after the rename")
    retired = await wait_for(version_1_retired)
    if retired is None:
        return events
    events["version_1_retired_after_s"] = round(retired - renamed, 3)

    progress("remove the directories of versions 1 and 2")
    shutil.rmtree(model / "1")
    shutil.rmtree(model / "2")
    events["served_after_removal"] = await watch(http, base, POLLS_AFTER_REMOVAL * poll_s, ["3"])
    return events


async def run_load(
    base: str, model: Path, onnx_file: Path, seconds: int, concurrency: int, poll_s: float
) -> tuple[Tally, dict[str, Any], float]:
    """The clients and the repository changes together; the run lasts ``seconds``, or as long
    as the swap takes when that is longer."""
    tally = Tally()
    stop = asyncio.Event()
    url = f"{base}/v2/models/{MODEL}/infer"
    limits = httpx.Limits(max_connections=concurrency + 2)
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits) as http:
        started = time.monotonic()
        clients = [
            asyncio.create_task(client_loop(http, url, index, started, stop, tally))
            for index in range(concurrency)
        ]
        try:
            events = await swap_versions(http, base, model, onnx_file, poll_s, tally)
            await asyncio.sleep(max(0.0, started + seconds - time.monotonic()))
        finally:
            stop.set()
            await asyncio.gather(*clients)
        elapsed = time.monotonic() - started
    return tally, events, elapsed


def measure(scratch: Path, seconds: int, concurrency: int, poll_s: float) -> dict[str, Any]:
    """Serve the repository and run the load; the server is always stopped."""
    model = scratch / "repository" / MODEL
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(CONFIG)
    onnx_file = pair_model(scratch / "pair.onnx")
    shutil.copyfile(onnx_file, model / "1" / "model.onnx")
    store = scratch / "model_store"
    store.mkdir()
    properties = {
        "model_repository": scratch / "repository",
        "model_control_mode": "poll",
        "repository_poll_secs": poll_s,
    }
    with serving.running_server(scratch / "server", store, properties) as server:
        serving.wait_healthy(server)
        progress(f"c={concurrency} for {seconds} s, polls every {poll_s:g} s")
        tally, events, elapsed = asyncio.run(
            run_load(server.inference, model, onnx_file, seconds, concurrency, poll_s)
        )
        loaded = WORKER_READY.search(server.log_path.read_text(errors="replace"))
    return {
        "seconds": round(elapsed, 1),
        "concurrency": concurrency,
        "poll_secs": poll_s,
        "requests": tally.requests,
        "failures": tally.failures,
        "hung": tally.hung,
        "per_version": dict(sorted(tally.per_version.items())),
        "requests_per_s": round(tally.requests / elapsed, 1),
        **events,
        # The worker's own load time, from the server log: the rest is the poll's wait.
        "version_3_worker_load_s": int(loaded[1]) / 1000 if loaded else None,
        "failure_samples": tally.failure_samples,
    }


def problems(result: dict[str, Any]) -> list[str]:
    """What makes the run a failure."""
    found = []
    if result["failures"] or result["hung"]:
        found.append(f"{result['failures']} requests failed, {result['hung']} hung")
    if not result["half_written_ignored"]:
        found.append("the half-written version 2 (or .tmp-3) was listed")
    if result["version_3_served_after_s"] is None:
        found.append(f"version 3 never answered (waited {SWAP_DEADLINE_S:g} s)")
    elif result["version_1_retired_after_s"] is None:
        found.append(f"version 1 never retired (waited {SWAP_DEADLINE_S:g} s)")
    elif not result["served_after_removal"]:
        found.append("after the old directories went, the model did not serve version 3 alone")
    return found


def markdown(report: dict[str, Any]) -> str:
    """The report as a markdown section."""
    env, result = report["environment"], report["result"]
    per_version = ", ".join(f"v{key}: {count:,}" for key, count in result["per_version"].items())
    lines = [
        f"## Hot reload under load ({env['date']}, {env['host']})",
        "",
        f"- machine: {env['cpus']} CPUs ({env['cpu_model']}), load average "
        f"{env['load_average_1min']} at start; commit {env['commit']}",
        f"- {result['concurrency']} clients for {result['seconds']} s, KServe v2 REST without "
        f"a version; repository polled every {result['poll_secs']:g} s",
        f"- requests: {result['requests']:,} ({result['requests_per_s']:,.0f}/s); failures: "
        f"{result['failures']}; hung (> {REQUEST_TIMEOUT_S:g} s): {result['hung']}",
        f"- answered by: {per_version}",
        f"- after the rename to 3: version 3 first answered at "
        f"{_seconds(result['version_3_served_after_s'])}, version 1 retired at "
        f"{_seconds(result['version_1_retired_after_s'])}; version 3's worker loaded in "
        f"{_seconds(result['version_3_worker_load_s'])}",
        f"- half-written version 2 and `.tmp-3` ignored: {result['half_written_ignored']}; "
        f"version 3 alone after the old directories went: {result['served_after_removal']}",
    ]
    if result["failure_samples"]:
        lines += ["", "First failures:", "", *(f"- {line}" for line in result["failure_samples"])]
    return "\n".join(lines) + "\n"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """``--seconds``, ``--concurrency``, ``--poll-secs``, ``--out`` and ``--smoke`` (which
    changes the defaults; explicit flags still win)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, help="seconds of load at least (default 30)")
    parser.add_argument("--concurrency", type=int, help="clients (default 16)")
    parser.add_argument("--poll-secs", type=float, help="the repository poll interval (default 1)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="results folder")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"a quick check: {SMOKE_CONCURRENCY} clients, polls every {SMOKE_POLL_S:g} s, "
        "as long as the swap takes",
    )
    args = parser.parse_args(argv)
    defaults = (SMOKE_SECONDS, SMOKE_CONCURRENCY, SMOKE_POLL_S) if args.smoke else (30, 16, 1.0)
    for name, default in zip(("seconds", "concurrency", "poll_secs"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.seconds < 1 or args.concurrency < 1 or args.poll_secs <= 0:
        parser.error("--seconds and --concurrency must be at least 1, --poll-secs above 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 1 when a request failed or hung, or the swap went wrong."""
    args = parse_args(argv)
    environment = describe_environment(args.seconds, wrk=False)
    try:
        with tempfile.TemporaryDirectory(prefix="modelserve-hot-reload-") as scratch:
            result = measure(Path(scratch), args.seconds, args.concurrency, args.poll_secs)
    except (serving.ServerError, httpx.HTTPError) as exc:
        print(f"hot_reload: {exc}", file=sys.stderr)
        return 1
    report = {"environment": environment, "result": result}
    text = markdown(report)
    stem = write_named(args.out, "hot-reload", report, text)
    print(text, flush=True)
    progress(f"wrote {stem}.md and .json")
    found = problems(result)
    for problem in found:
        print(f"hot_reload: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
