"""Triton's add_sub Python model through modelserve, against the same model.py called in-process.

    python benchmarks/run_python_backend.py [--duration S] [--concurrency 1 16 64] [--rounds N]
                                            [--out DIR] [--smoke]

``examples/triton/model_repository/add_sub`` (FP32 INPUT0/INPUT1 of 4, ``max_batch_size`` 8,
dynamic batching within 2 ms, one instance) is measured twice:

1. **In-process**, before any server starts: model.py imported as a user would run it
   (``enable_triton_compat()``, ``TritonPythonModel()``, ``initialize(args)`` with the config
   as JSON), each call building ``pb_utils.InferenceRequest.from_client`` requests from numpy
   arrays, calling ``execute`` and reading the outputs back as numpy. Three ways: one thread,
   one request per ``execute``; one thread, ``min(c, max_batch_size)`` requests per
   ``execute`` (what dynamic batching hands it: the model's ceiling); ``c`` threads, one
   request each (concurrent callers in one process, as the GIL lets them run).
2. **Through modelserve**: ``modelserve start`` serving a repository holding add_sub, loaded
   at each concurrency over KServe v2 REST JSON (wrk posting to ``/v2/models/add_sub/infer``)
   and over gRPC (``loadtest.grpc_load``: ModelInfer with raw FP32 inputs, as tritonclient
   sends them), each protocol's answer checked first; the batch sizes ``execute`` received in
   each run come from ``GET /v2/models/add_sub/stats``.

Every measurement runs ``--rounds`` times (default 3: in-process first, with no server
running; then round after round of the server's runs); the report gives medians and the
min-max of req/s. Writes ``<out>/<date>-<host>-python-backend.md`` and ``.json``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
from loadtest import BENCH_DIR, REPO_ROOT, grpc_load, in_process
from loadtest import server as serving
from loadtest.environment import describe_environment, machine_line
from loadtest.options import add_rounds_option, parse_load_args
from loadtest.report import publish
from loadtest.served import batch_summary, cpu_per_request, settled_batches, spread
from loadtest.wrk import WrkError, run_wrk, wrk_binary

from modelserve.grpc.proto import open_inference_pb2_grpc as pb_grpc
from modelserve.repository.packing import config_json
from modelserve.repository.triton import read_model
from modelserve.worker.triton_compat import enable_triton_compat

MODEL = "add_sub"
MODEL_DIR = REPO_ROOT / "examples" / "triton" / "model_repository" / MODEL
POST_SCRIPT = BENCH_DIR / "post_body.lua"
JSON_TYPE = "application/json"
OUTPUTS = ("OUTPUT0", "OUTPUT1")
# Exact in float32, so the sum and difference can be compared exactly.
INPUT0 = [0.5, 1.0, 2.5, -3.0]
INPUT1 = [1.5, -2.0, 0.25, 4.0]
V2_INPUTS = [
    {"name": name, "shape": [1, 4], "datatype": "FP32", "data": data}
    for name, data in (("INPUT0", INPUT0), ("INPUT1", INPUT1))
]
EXPECTED = {
    "OUTPUT0": [a + b for a, b in zip(INPUT0, INPUT1, strict=True)],
    "OUTPUT1": [a - b for a, b in zip(INPUT0, INPUT1, strict=True)],
}
DEFAULT_ROUNDS = 3
WARM_UP_REQUESTS = 50
MEDIAN_KEYS = ("requests_per_s", "p50_ms", "p90_ms", "p99_ms")
CPU_KEYS = ("frontend_cpu_us", "worker_cpu_us")
REST, GRPC = "v2 REST JSON", "v2 gRPC"
# Batch sizes named in the report's column, most frequent first.
SIZES_SHOWN = 3


def progress(message: str) -> None:
    """One line of progress, flushed at once."""
    print(f"[run_python_backend] {message}", file=sys.stderr, flush=True)


# ----- in-process


class InProcessModel:
    """add_sub's model.py loaded in this process, as a user would run it without a server."""

    def __init__(self, model_dir: Path) -> None:
        enable_triton_compat()
        import triton_python_backend_utils as pb_utils

        self.pb = pb_utils
        # config.pbtxt as the JSON Triton (and modelserve) give initialize().
        self.config = config_json(read_model(model_dir, strict=True, config_name=None).config)
        self.max_batch_size = int(self.config["max_batch_size"])
        spec = importlib.util.spec_from_file_location("add_sub_model", model_dir / "1" / "model.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.model = module.TritonPythonModel()
        self.model.initialize(
            {
                "model_config": json.dumps(self.config),
                "model_instance_kind": "CPU",
                "model_instance_name": f"{MODEL}_0_0",
                "model_instance_device_id": "0",
                "model_repository": str(model_dir),
                "model_version": "1",
                "model_name": MODEL,
            }
        )
        self.inputs = (
            np.array([INPUT0], dtype=np.float32),
            np.array([INPUT1], dtype=np.float32),
        )

    def infer(self, batch_size: int) -> list[dict[str, np.ndarray]]:
        """``batch_size`` requests built from numpy arrays, one ``execute``, the outputs read."""
        pb = self.pb
        in0, in1 = self.inputs
        requests = [
            pb.InferenceRequest.from_client(
                model_name=MODEL,
                inputs=[pb.Tensor("INPUT0", in0), pb.Tensor("INPUT1", in1)],
                requested_output_names=OUTPUTS,
            )
            for _ in range(batch_size)
        ]
        responses = self.model.execute(requests)
        return [
            {tensor.name(): tensor.as_numpy() for tensor in response.output_tensors()}
            for response in responses
        ]

    def check(self) -> None:
        """The in-process answers are the sum and difference."""
        for answer in self.infer(2):
            got = {name: answer[name].reshape(-1).tolist() for name in OUTPUTS}
            if got != EXPECTED:
                raise RuntimeError(f"in-process add_sub answered {got}, expected {EXPECTED}")


def in_process_variants(concurrency: list[int], max_batch: int) -> list[tuple[str, int, int]]:
    """The (kind, threads, batch) to measure: one thread and one request per execute; one
    thread with the batch each concurrency can form; one thread per concurrent caller."""
    variants = [("batch", 1, 1)]
    for batch in sorted({min(clients, max_batch) for clients in concurrency} - {1}):
        variants.append(("batch", 1, batch))
    for clients in concurrency:
        if clients > 1:
            variants.append(("threads", clients, 1))
    return variants


def measure_in_process(
    model: InProcessModel, concurrency: list[int], duration_s: int, rounds: int
) -> list[dict[str, Any]]:
    """Every variant, ``rounds`` times."""

    def one() -> Any:
        return model.infer(1)

    def handle(rows: list[None], _context: None) -> Any:
        # in_process.measure calls handle(batch, context): here the rows only count requests.
        return model.infer(len(rows))

    runs = []
    variants = in_process_variants(concurrency, model.max_batch_size)
    for round_index in range(rounds):
        for kind, threads, batch in variants:
            if kind == "threads":
                measured = in_process.measure_threads(one, threads, duration_s)
            else:
                rows = [None] * batch
                measured = in_process.measure(MODEL, handle, rows, None, duration_s).as_dict()
                measured.pop("model")
            result = {
                "kind": kind,
                "threads": threads,
                "batch_size": batch,
                "round": round_index + 1,
                **measured,
                "requests_per_s": measured["calls_per_s"] * batch,
            }
            progress(
                f"in-process round {round_index + 1}: {threads} thread(s), batch {batch}: "
                f"{result['requests_per_s']:,.0f} req/s, p50 {result['p50_ms'] * 1000:.1f} us"
            )
            runs.append(result)
    return runs


# ----- through the server


def check_rest(server: serving.Server, body: bytes, count: int) -> None:
    """``count`` REST requests one after another, every answer the right sum and difference."""
    url = f"{server.inference}/v2/models/{MODEL}/infer"
    with httpx.Client(timeout=30) as client:
        for _ in range(count):
            response = client.post(url, content=body, headers={"Content-Type": JSON_TYPE})
            if response.status_code != 200:
                raise server.fail(f"{MODEL}: HTTP {response.status_code} {response.text[:500]}")
            outputs = {out["name"]: out for out in response.json()["outputs"]}
            got = {name: outputs[name]["data"] for name in OUTPUTS if name in outputs}
            shapes = {outputs[name]["shape"] == [1, 4] for name in OUTPUTS if name in outputs}
            if got != EXPECTED or shapes != {True}:
                raise server.fail(f"{MODEL} answered {response.text[:500]}, expected {EXPECTED}")


def check_grpc(server: serving.Server) -> None:
    """The request the gRPC load sends, answered with the right sum and difference."""
    with grpc.insecure_channel(server.grpc_inference) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        reply = stub.ModelInfer(grpc_load.infer_request(MODEL, V2_INPUTS), timeout=30)
    got = {
        output.name: np.frombuffer(raw, dtype="<f4").tolist()
        for output, raw in zip(reply.outputs, reply.raw_output_contents, strict=True)
    }
    if got != EXPECTED:
        raise server.fail(f"{MODEL} over gRPC answered {got}, expected {EXPECTED}")


def measure_server(
    scratch: Path, concurrency: list[int], duration_s: int, rounds: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Serve a repository holding add_sub and load it over REST (wrk) and gRPC; the server is
    always stopped."""
    repository = scratch / "repository"
    shutil.copytree(MODEL_DIR, repository / MODEL)
    store = scratch / "model_store"
    store.mkdir()
    body_file = scratch / "body.json"
    body_file.write_bytes(json.dumps({"inputs": V2_INPUTS}).encode())
    runs = []
    with serving.running_server(
        scratch / "server", store, {"model_repository": repository}
    ) as server:
        serving.wait_healthy(server)
        check_rest(server, body_file.read_bytes(), WARM_UP_REQUESTS)
        check_grpc(server)
        metadata = httpx.get(f"{server.inference}/v2/models/{MODEL}", timeout=10).json()
        url = f"{server.inference}/v2/models/{MODEL}/infer"
        load: dict[str, Callable[[int], dict[str, Any]]] = {
            REST: lambda clients: run_wrk(
                url, clients, duration_s, POST_SCRIPT, (str(body_file), JSON_TYPE)
            ).as_dict(),
            GRPC: lambda clients: grpc_load.run_in_subprocess(
                server.grpc_inference, "infer", MODEL, clients, duration_s, V2_INPUTS
            ),
        }
        for round_index in range(rounds):
            for protocol, run in load.items():
                for clients in concurrency:
                    before, cpu_before = settled_batches(server, MODEL), serving.cpu_seconds(server)
                    result = run(clients)
                    executed = settled_batches(server, MODEL) - before
                    batches = batch_summary(executed)
                    cpu = cpu_per_request(cpu_before, serving.cpu_seconds(server), executed)
                    progress(
                        f"server round {round_index + 1} {protocol} c={clients}: "
                        f"{result['requests_per_s']:,.0f} req/s, p50 {result['p50_ms']:.2f} ms, "
                        f"p99 {result['p99_ms']:.2f} ms, mean batch "
                        f"{batches['mean_batch']:.2f}, {result['errors']} errors"
                    )
                    runs.append(
                        {
                            "round": round_index + 1,
                            "protocol": protocol,
                            "concurrency": clients,
                            **result,
                            **batches,
                            **cpu,
                        }
                    )
        check_rest(server, body_file.read_bytes(), 1)
    return runs, metadata


# ----- the report


def summarize(
    in_process_runs: list[dict[str, Any]], server_runs: list[dict[str, Any]]
) -> dict[str, Any]:
    """Medians per in-process variant and per protocol and concurrency (batches summed over
    rounds)."""
    variants: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for run in in_process_runs:
        variants.setdefault((run["kind"], run["threads"], run["batch_size"]), []).append(run)
    loads: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in server_runs:
        loads.setdefault((run["protocol"], run["concurrency"]), []).append(run)
    served = []
    for (protocol, clients), rows in loads.items():
        sizes: Counter[int] = Counter()
        for row in rows:
            sizes.update({int(size): count for size, count in row["batches"].items()})
        served.append(
            {
                "protocol": protocol,
                "concurrency": clients,
                **spread(rows, MEDIAN_KEYS + CPU_KEYS),
                "errors": sum(row["errors"] for row in rows),
                **batch_summary(sizes),
            }
        )
    return {
        "in_process": [
            {"kind": kind, "threads": threads, "batch_size": batch, **spread(rows, MEDIAN_KEYS)}
            for (kind, threads, batch), rows in variants.items()
        ],
        "server": served,
    }


def _rate(row: dict[str, Any] | None) -> str:
    """req/s and, over several rounds, its min-max."""
    if row is None:
        return "—"
    rate = f"{row['requests_per_s']:,.0f}"
    if row["rounds"] == 1:
        return rate
    return f"{rate} ({row['requests_per_s_min']:,.0f}-{row['requests_per_s_max']:,.0f})"


def _cpu(row: dict[str, Any]) -> str:
    """``140 + 67``: the frontend's and the worker's CPU time per request, in us."""
    if row["frontend_cpu_us"] is None or row["worker_cpu_us"] is None:
        return "—"
    return f"{row['frontend_cpu_us']:.0f} + {row['worker_cpu_us']:.0f}"


def _sizes(row: dict[str, Any]) -> str:
    """``7.93 (8: 98 %, others: 2 %)``: the mean batch, and the share of the calls of the
    commonest sizes that make at least 1 % of them."""
    counts = {int(size): count for size, count in row["batches"].items()}
    total = sum(counts.values())
    if not total:
        return "—"
    common = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:SIZES_SHOWN]
    shown = [(size, count) for size, count in common if count * 100 >= total * 0.5]
    parts = [f"{size}: {100 * count / total:.0f} %" for size, count in shown]
    rest = total - sum(count for _, count in shown)
    if rest:
        share = 100 * rest / total
        parts.append(f"others: {share:.0f} %" if share >= 0.5 else "others: < 1 %")
    return f"{row['mean_batch']:.2f} ({', '.join(parts)})"


def markdown(report: dict[str, Any]) -> str:
    """The report: the server's rows with the in-process numbers beside them, the in-process
    variants in full, every run."""
    env, settings, summary = report["environment"], report["settings"], report["summary"]
    in_proc = {(r["kind"], r["threads"], r["batch_size"]): r for r in summary["in_process"]}
    max_batch = settings["max_batch_size"]
    lines = [
        f"## Triton Python backend: add_sub ({env['date'][:10]}, {env['host']})",
        "",
        machine_line(env),
        f"- model: examples/triton add_sub, max_batch_size {max_batch}, dynamic batching "
        f"{settings['max_queue_delay_us']} us, 1 instance; {settings['duration_s']} s per run, "
        f"{settings['rounds']} round(s): medians, and req/s's min-max",
        "- REST load: wrk, keep-alive connections, v2 JSON body; gRPC load: Python grpc.aio "
        "client in its own process, raw FP32 inputs (as tritonclient sends them)",
        "",
        "| protocol | c | req/s | p50 ms | p99 ms | errors | batch per execute(): mean "
        "(share of calls) | server CPU us/request: frontend + worker | in-process, c threads "
        f"| in-process, 1 thread, batch min(c, {max_batch}) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for row in summary["server"]:
        clients = row["concurrency"]
        threads = in_proc.get(("threads", clients, 1) if clients > 1 else ("batch", 1, 1))
        batched = in_proc.get(("batch", 1, min(clients, max_batch)))
        lines.append(
            f"| {row['protocol']} | {clients} | {_rate(row)} | {row['p50_ms']:.2f} "
            f"| {row['p99_ms']:.2f} | {row['errors']} | {_sizes(row)} | {_cpu(row)} "
            f"| {_rate(threads)} | {_rate(batched)} |"
        )
    lines += [
        "",
        "In-process (model.py called directly: a call builds its requests with "
        "`InferenceRequest.from_client`, runs `execute` and reads the outputs):",
        "",
        "| threads | requests per execute | req/s | p50 us | p90 us | p99 us |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in summary["in_process"]:
        lines.append(
            f"| {row['threads']} | {row['batch_size']} | {_rate(row)} "
            f"| {row['p50_ms'] * 1000:.1f} | {row['p90_ms'] * 1000:.1f} "
            f"| {row['p99_ms'] * 1000:.1f} |"
        )
    lines += [
        "",
        "Every server run:",
        "",
        "| round | protocol | c | req/s | p50 ms | p99 ms | mean batch | CPU us/request | errors |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in report["server_runs"]:
        lines.append(
            f"| {run['round']} | {run['protocol']} | {run['concurrency']} "
            f"| {run['requests_per_s']:,.0f} | {run['p50_ms']:.2f} | {run['p99_ms']:.2f} "
            f"| {run['mean_batch']:.2f} | {_cpu(run)} | {run['errors']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 1 with a message when the server or wrk misbehaves."""
    args = parse_load_args(
        __doc__.splitlines()[0],
        argv,
        add_arguments=partial(add_rounds_option, default=DEFAULT_ROUNDS),
    )
    started = time.monotonic()
    try:
        wrk_binary()
        environment = describe_environment(args.duration)
        model = InProcessModel(MODEL_DIR)
        model.check()
        in_process_runs = measure_in_process(model, args.concurrency, args.duration, args.rounds)
        with tempfile.TemporaryDirectory(prefix="modelserve-python-backend-") as scratch:
            server_runs, metadata = measure_server(
                Path(scratch), args.concurrency, args.duration, args.rounds
            )
    except (serving.ServerError, WrkError, RuntimeError, grpc.RpcError) as exc:
        print(f"run_python_backend: {exc}", file=sys.stderr)
        return 1
    config = model.config
    report = {
        "environment": environment,
        "settings": {
            "model": MODEL,
            "max_batch_size": int(config["max_batch_size"]),
            "max_queue_delay_us": int(
                config["dynamic_batching"].get("max_queue_delay_microseconds", 0)
            ),
            "duration_s": args.duration,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "served_metadata": metadata,
        },
        "summary": summarize(in_process_runs, server_runs),
        "in_process_runs": in_process_runs,
        "server_runs": server_runs,
    }
    publish(args.out, "python-backend", report, markdown(report), "run_python_backend")
    progress(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
