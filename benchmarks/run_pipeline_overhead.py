"""A 3-step Triton ensemble against a client calling the same three steps back to back.

    python benchmarks/run_pipeline_overhead.py [--duration S] [--concurrency 1 32] [--rounds N]
                                               [--out DIR] [--smoke]

The repository is the ensemble tests' (``tests/fixtures/triton_ensemble``): ``classify`` runs
``pre`` (Python) → ``linear`` (ONNX, Gemm + Relu, written here) → ``post`` (Python), each step
model with ``max_batch_size`` 8, dynamic batching within 2 ms and one instance. The same
request, one row of 4 FP32 values, is answered two ways:

- **pipeline**: one call to ``classify``; the frontend runs the three steps.
- **client chain**: three calls, ``pre``, ``linear``, ``post``, each step's outputs sent back
  as the next step's inputs (their names match: x, then y), as a client without ensembles
  would do it.

Both run over KServe v2 REST JSON (aiohttp, one keep-alive connection per concurrent client)
and over v2 gRPC (grpc.aio, raw tensor contents, one channel): ``c`` coroutines in this
process, each sending its next request once the last is answered, for ``--duration``
seconds, with the same load loop for both ways (wrk cannot chain calls). A request counts
once: a chain's latency is its three calls together. Both answers are checked against each
other before anything is measured. Each way, protocol and concurrency runs ``--rounds`` times
(default 3, the ways alternating); the report gives medians and req/s's min-max. Writes
``<out>/<date>-<host>-pipeline-overhead.md`` and ``.json``.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np
import onnx
from loadtest import REPO_ROOT
from loadtest import server as serving
from loadtest.environment import describe_environment
from loadtest.grpc_load import infer_request, load_calls
from loadtest.options import add_rounds_option, parse_load_args
from loadtest.report import write_named
from onnx import TensorProto, helper

from modelserve.grpc.proto import open_inference_pb2 as pb
from modelserve.grpc.proto import open_inference_pb2_grpc as pb_grpc

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "triton_ensemble"
ENSEMBLE = "classify"
STEPS = ("pre", "linear", "post")
ROW = [0.5, 1.0, 2.5, -3.0]
INPUTS = [{"name": "RAW", "shape": [1, 4], "datatype": "FP32", "data": ROW}]
# linear: y = relu(x @ W.T + b), 4 → 3.
WEIGHT = [[0.5, -1.0, 0.25, 2.0], [1.0, 0.5, -0.5, 0.0], [-0.25, 0.75, 1.0, -1.0]]
BIAS = [0.1, -0.2, 0.3]
DEFAULT_CONCURRENCY = (1, 32)
DEFAULT_ROUNDS = 3
WARM_UP_REQUESTS = 50
REQUEST_TIMEOUT_S = 60
WAYS = ("pipeline", "client chain")
PROTOCOLS = ("v2 REST JSON", "v2 gRPC")
MEDIAN_KEYS = ("requests_per_s", "p50_ms", "p90_ms", "p99_ms")

Call = Callable[[], Awaitable[dict[str, list[float]]]]


class StepFailed(RuntimeError):
    """A call was not answered 200: counted as an error."""


def progress(message: str) -> None:
    """One line of progress, flushed at once."""
    print(f"[run_pipeline_overhead] {message}", file=sys.stderr, flush=True)


def write_repository(directory: Path) -> Path:
    """The ensemble and its step models, with linear's model.onnx."""
    for name in (ENSEMBLE, *STEPS):
        shutil.copytree(FIXTURES / name, directory / name)
    (directory / ENSEMBLE / "1").mkdir()  # an ensemble's version directory holds nothing
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "W", "B"], ["z"], transB=1),
            helper.make_node("Relu", ["z"], ["y"]),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=[
            helper.make_tensor(
                "W", TensorProto.FLOAT, [3, 4], [value for row in WEIGHT for value in row]
            ),
            helper.make_tensor("B", TensorProto.FLOAT, [3], BIAS),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    (directory / "linear" / "1").mkdir()
    onnx.save(model, str(directory / "linear" / "1" / "model.onnx"))
    return directory


# ----- the two ways, over each protocol: a call returns the answer's outputs by name


def rest_calls(session: aiohttp.ClientSession, base: str) -> dict[str, Call]:
    """The pipeline and the client chain over v2 REST JSON."""

    async def infer(model: str, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        async with session.post(f"{base}/v2/models/{model}/infer", json={"inputs": inputs}) as r:
            if r.status != 200:
                raise StepFailed(f"{model}: HTTP {r.status} {(await r.text())[:300]}")
            return (await r.json())["outputs"]

    def by_name(outputs: list[dict[str, Any]]) -> dict[str, list[float]]:
        return {output["name"]: output["data"] for output in outputs}

    async def pipeline() -> dict[str, list[float]]:
        return by_name(await infer(ENSEMBLE, INPUTS))

    async def chain() -> dict[str, list[float]]:
        tensors = INPUTS
        for step in STEPS:
            outputs = await infer(step, tensors)
            # An output goes back as an input: the same name, datatype, shape and data.
            tensors = [
                {key: out[key] for key in ("name", "datatype", "shape", "data")} for out in outputs
            ]
        return by_name(outputs)

    return {"pipeline": pipeline, "client chain": chain}


def grpc_calls(stub: pb_grpc.GRPCInferenceServiceStub) -> dict[str, Call]:
    """The pipeline and the client chain over v2 gRPC, tensors as raw contents."""

    def by_name(reply: pb.ModelInferResponse) -> dict[str, list[float]]:
        return {
            output.name: list(raw)
            for output, raw in zip(reply.outputs, reply.raw_output_contents, strict=True)
        }

    async def pipeline() -> dict[str, list[float]]:
        return by_name(await stub.ModelInfer(infer_request(ENSEMBLE, INPUTS)))

    async def chain() -> dict[str, list[float]]:
        request = infer_request(STEPS[0], INPUTS)
        for step in STEPS[1:]:
            reply = await stub.ModelInfer(request)
            request = pb.ModelInferRequest(model_name=step)
            for output in reply.outputs:
                request.inputs.add(name=output.name, datatype=output.datatype, shape=output.shape)
            request.raw_input_contents.extend(reply.raw_output_contents)
        return by_name(await stub.ModelInfer(request))

    return {"pipeline": pipeline, "client chain": chain}


# ----- measuring


async def check_same_answers(calls: dict[str, Call], protocol: str) -> None:
    """Both ways give the same outputs (JSON values, or raw bytes over gRPC), and the
    warm-up leaves lazy first-call costs out of the runs."""
    # As float32: the frontend writes an ensemble's JSON values with Python's float repr, a
    # Python worker with numpy's float32 one; the numbers are the same.
    answers = {
        way: {name: np.float32(values).tolist() for name, values in (await call()).items()}
        for way, call in calls.items()
    }
    if answers["pipeline"] != answers["client chain"]:
        raise RuntimeError(f"{protocol}: the pipeline and the chain differ: {answers}")
    for call in calls.values():
        for _ in range(WARM_UP_REQUESTS):
            await call()


async def measure(
    server: serving.Server, concurrency: list[int], duration_s: int, rounds: int
) -> list[dict[str, Any]]:
    """Every protocol, concurrency and way, ``rounds`` times; the ways alternate so that a
    busy moment on the machine does not fall on one of them only."""
    runs = []
    connector = aiohttp.TCPConnector(limit=max(concurrency))
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        grpc.aio.insecure_channel(server.grpc_inference) as channel,
    ):
        by_protocol = {
            PROTOCOLS[0]: rest_calls(session, server.inference),
            PROTOCOLS[1]: grpc_calls(pb_grpc.GRPCInferenceServiceStub(channel)),
        }
        for protocol, calls in by_protocol.items():
            await check_same_answers(calls, protocol)
        for round_index in range(rounds):
            for protocol, calls in by_protocol.items():
                for clients in concurrency:
                    for way in WAYS:
                        failures = (StepFailed, aiohttp.ClientError, grpc.aio.AioRpcError)
                        result = await load_calls(calls[way], clients, duration_s, failures)
                        progress(
                            f"round {round_index + 1} {protocol} c={clients} {way}: "
                            f"{result['requests_per_s']:,.0f} req/s, p50 {result['p50_ms']:.2f} "
                            f"ms, p99 {result['p99_ms']:.2f} ms, {result['errors']} errors"
                        )
                        runs.append(
                            {
                                "round": round_index + 1,
                                "protocol": protocol,
                                "concurrency": clients,
                                "way": way,
                                **result,
                            }
                        )
    return runs


# ----- the report


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per protocol, concurrency and way: medians over rounds, req/s's min-max, errors."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["protocol"], run["concurrency"], run["way"]), []).append(run)
    return [
        {
            "protocol": protocol,
            "concurrency": clients,
            "way": way,
            "rounds": len(rows),
            **{key: statistics.median(row[key] for row in rows) for key in MEDIAN_KEYS},
            "requests_per_s_min": min(row["requests_per_s"] for row in rows),
            "requests_per_s_max": max(row["requests_per_s"] for row in rows),
            "errors": sum(row["errors"] for row in rows),
        }
        for (protocol, clients, way), rows in groups.items()
    ]


def _rate(row: dict[str, Any]) -> str:
    """req/s and, over several rounds, its min-max."""
    rate = f"{row['requests_per_s']:,.0f}"
    if row["rounds"] == 1:
        return rate
    return f"{rate} ({row['requests_per_s_min']:,.0f}-{row['requests_per_s_max']:,.0f})"


def markdown(report: dict[str, Any]) -> str:
    """The summary, pipeline and chain side by side, then every run."""
    env, settings = report["environment"], report["settings"]
    rows = {(r["protocol"], r["concurrency"], r["way"]): r for r in report["summary"]}
    lines = [
        f"## Pipeline overhead: a 3-step ensemble vs the client chaining the steps "
        f"({env['date'][:10]}, {env['host']})",
        "",
        f"- machine: {env['cpus']} CPUs ({env['cpu_model']}), load average "
        f"{env['load_average_1min']} at start; Python {env['python']}, commit {env['commit']}",
        f"- ensemble {ENSEMBLE}: {' → '.join(STEPS)}, each step max_batch_size 8, dynamic "
        f"batching 2 ms, 1 instance; one row of 4 FP32 per request; {settings['duration_s']} s "
        f"per run, {settings['rounds']} round(s): medians, and req/s's min-max",
        "- load: c coroutines in one Python process (aiohttp for REST, grpc.aio for gRPC), the "
        "same loop for both ways; a chain's latency is its three calls together",
        "",
        "| protocol | c | pipeline req/s | p50 ms | p99 ms | client chain req/s | p50 ms "
        "| p99 ms | pipeline / chain req/s | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for protocol in PROTOCOLS:
        for clients in settings["concurrency"]:
            pipe, chain = (rows[(protocol, clients, way)] for way in WAYS)
            lines.append(
                f"| {protocol} | {clients} | {_rate(pipe)} | {pipe['p50_ms']:.2f} "
                f"| {pipe['p99_ms']:.2f} | {_rate(chain)} | {chain['p50_ms']:.2f} "
                f"| {chain['p99_ms']:.2f} "
                f"| {pipe['requests_per_s'] / chain['requests_per_s']:.2f} x "
                f"| {pipe['errors'] + chain['errors']} |"
            )
    lines += [
        "",
        "Every run:",
        "",
        "| round | protocol | c | way | req/s | p50 ms | p99 ms | errors |",
        "| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for run in report["runs"]:
        lines.append(
            f"| {run['round']} | {run['protocol']} | {run['concurrency']} | {run['way']} "
            f"| {run['requests_per_s']:,.0f} | {run['p50_ms']:.2f} | {run['p99_ms']:.2f} "
            f"| {run['errors']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 1 with a message when the server misbehaves."""
    args = parse_load_args(
        __doc__.splitlines()[0],
        argv,
        concurrency=DEFAULT_CONCURRENCY,
        add_arguments=partial(add_rounds_option, default=DEFAULT_ROUNDS),
    )
    started = time.monotonic()
    environment = describe_environment(args.duration, wrk=False)
    try:
        with tempfile.TemporaryDirectory(prefix="modelserve-pipeline-") as scratch:
            repository = write_repository(Path(scratch) / "repository")
            store = Path(scratch) / "model_store"
            store.mkdir()
            settings = {"model_repository": repository}
            with serving.running_server(Path(scratch) / "server", store, settings) as server:
                serving.wait_healthy(server)
                runs = asyncio.run(measure(server, args.concurrency, args.duration, args.rounds))
    except (serving.ServerError, RuntimeError, aiohttp.ClientError, grpc.RpcError) as exc:
        print(f"run_pipeline_overhead: {exc}", file=sys.stderr)
        return 1
    report = {
        "environment": environment,
        "settings": {
            "ensemble": ENSEMBLE,
            "steps": list(STEPS),
            "duration_s": args.duration,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
        },
        "summary": summarize(runs),
        "runs": runs,
    }
    text = markdown(report)
    stem = write_named(args.out, "pipeline-overhead", report, text)
    print(text, flush=True)
    progress(f"wrote {stem}.md and .json in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
