"""One model through every inference protocol, by what each costs per request: TorchServe's
/predictions and its gRPC Predictions, the Open Inference Protocol (KServe v2) over REST with
JSON and with binary tensors and over gRPC, TF Serving's REST :predict, and grps's HTTP and
gRPC APIs with gtensors.

    python benchmarks/run_protocols.py [--duration S] [--concurrency 1 16 64] [--rounds N]
        [--load-tool h2load|python] [--out DIR] [--smoke]

The digits CNN (TorchScript) is served by the built-in ``tensor`` handler, one worker, batches
of up to 8 within 5 ms, so every protocol reaches the same model code. REST load comes from
wrk; gRPC load from h2load (nghttp2's C client, unary calls over h2c), or with ``--load-tool
python`` from ``loadtest.grpc_load`` in its own process. Beside req/s and latency, each run
reports the server's CPU seconds per 1,000 requests (frontend and worker, user + system, from
/proc before and after the run), which a busy shared machine disturbs far less than req/s, and
each protocol's requests per CPU-second against the cheapest protocol's at that concurrency.
Rounds alternate the protocols; the report gives medians. Each transport's ceiling is measured
too: wrk on ``GET /v2/health/live`` and the gRPC load tool on ``ServerLive``. Writes
``<out>/<date>-<host>-protocols.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
from google.protobuf.message import Message
from loadtest import BATCH_SIZE, BENCH_DIR, MAX_BATCH_DELAY_MS, archives, grpc_load
from loadtest import server as serving
from loadtest.environment import describe_environment
from loadtest.h2load import grpc_body, h2load_binary, run_h2load
from loadtest.options import add_rounds_option, parse_load_args
from loadtest.report import publish
from loadtest.wrk import WrkError, run_wrk, wrk_binary
from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions

from modelserve.grpc.proto import inference_pb2, open_inference_pb2
from modelserve.grps.proto import grps_pb2

MODEL = "digits_tensor"
INPUT_SHAPE = [1, 1, 8, 8]
CEILING_CONCURRENCY = 64
DEFAULT_ROUNDS = 3
POST_SCRIPT = BENCH_DIR / "post_body.lua"
LOAD_TOOLS = ("h2load", "python")
GRPC_CHECK_TIMEOUT_S = 30
SERVER_LIVE = "/inference.GRPCInferenceService/ServerLive"
# An access-log line's status when it is an error: `client "POST /path HTTP/1.1" 503 12.3 ms`.
ERROR_STATUS = re.compile(r'" ([45]\d\d) [\d.]+ ms$', re.MULTILINE)


@dataclass(frozen=True)
class Route:
    """A way to ask the model: its transport, path (a gRPC method's is /package.Service/Method),
    body and headers. A gRPC route's ``body`` is the serialized request message and
    ``accepts`` says whether the real client's answer to it is a success."""

    label: str
    path: str
    body: bytes
    content_type: str = "application/grpc"
    headers: dict[str, str] = field(default_factory=dict)
    accepts: Callable[[bytes], bool] | None = None

    @property
    def is_grpc(self) -> bool:
        return self.accepts is not None


def progress(message: str) -> None:
    print(f"[run_protocols] {message}", file=sys.stderr, flush=True)


def _grpc_route(
    label: str, method: str, request: Message, accepts: Callable[[bytes], bool]
) -> Route:
    return Route(label, method, request.SerializeToString(), accepts=accepts)


def _grps_succeeded(answer: bytes) -> bool:
    # grps ends every call with status OK: the outcome is in the answer's status.
    return grps_pb2.GrpsMessage.FromString(answer).status.code == 200


def routes() -> list[Route]:
    """The same all-zero 8x8 image in each protocol's own form, REST routes first."""
    pixels = [0.0] * 64
    rows = [pixels[row * 8 : row * 8 + 8] for row in range(8)]
    nested = json.dumps([[rows]]).encode()
    v2_json = {
        "inputs": [{"name": "input__0", "shape": INPUT_SHAPE, "datatype": "FP32", "data": pixels}]
    }
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input__0",
                    "shape": INPUT_SHAPE,
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 4 * 64},
                }
            ],
            "outputs": [{"name": "output__0", "parameters": {"binary_data": True}}],
        }
    ).encode()
    gtensor = {"name": "", "dtype": "DT_FLOAT32", "shape": INPUT_SHAPE, "flat_float32": pixels}
    grps_request = grps_pb2.GrpsMessage(model=MODEL)
    grps_request.gtensors.tensors.add(
        dtype=grps_pb2.DT_FLOAT32, shape=INPUT_SHAPE, flat_float32=pixels
    )
    infer = f"/v2/models/{MODEL}/infer"
    return [
        Route("/predictions JSON", f"/predictions/{MODEL}", nested, "application/json"),
        Route("v2 REST JSON", infer, json.dumps(v2_json).encode(), "application/json"),
        Route(
            "v2 REST binary",
            infer,
            header + struct.pack("<64f", *pixels),
            "application/octet-stream",
            {"Inference-Header-Content-Length": str(len(header))},
        ),
        Route(
            "TF Serving REST",
            f"/v1/models/{MODEL}:predict",
            json.dumps({"instances": [[rows]]}).encode(),
            "application/json",
        ),
        Route(
            "grps HTTP gtensors",
            f"/grps/v1/infer/predict?model={MODEL}",
            json.dumps({"gtensors": {"tensors": [gtensor]}}).encode(),
            "application/json",
        ),
        _grpc_route(
            "TorchServe gRPC",
            "/org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions",
            inference_pb2.PredictionsRequest(model_name=MODEL, input={"data": nested}),
            lambda answer: bool(inference_pb2.PredictionResponse.FromString(answer).prediction),
        ),
        _grpc_route(
            "v2 gRPC",
            grpc_load.MODEL_INFER_METHOD,
            grpc_load.infer_request(MODEL, grpc_load.DIGITS_INPUTS),
            lambda answer: bool(open_inference_pb2.ModelInferResponse.FromString(answer).outputs),
        ),
        _grpc_route(
            "grps gRPC", "/grps.protos.v1.GrpsService/Predict", grps_request, _grps_succeeded
        ),
    ]


def _flatten(headers: dict[str, str]) -> list[str]:
    """Headers as post_body.lua's trailing name, value arguments."""
    return [item for pair in headers.items() for item in pair]


def check_route(server: serving.Server, route: Route) -> None:
    """One request per route with a real client before the load, so a wrong body fails loudly,
    not as errors (h2load sees HTTP statuses only, never grpc-status)."""
    if route.accepts is not None:
        with grpc.insecure_channel(server.grpc_inference) as channel:
            try:
                answer = channel.unary_unary(route.path)(route.body, timeout=GRPC_CHECK_TIMEOUT_S)
            except grpc.RpcError as exc:
                raise server.fail(f"{route.label}: {exc.code()} {exc.details()}") from exc
        if not route.accepts(answer):
            raise server.fail(f"{route.label}: not a successful answer: {answer[:500]!r}")
        return
    headers = {"Content-Type": route.content_type, **route.headers}
    response = httpx.post(
        server.inference + route.path, content=route.body, headers=headers, timeout=30
    )
    if response.status_code != 200:
        raise server.fail(f"{route.label}: HTTP {response.status_code} {response.text[:500]}")


@dataclass(frozen=True)
class Loader:
    """Runs one route's load: wrk for REST, the chosen tool for gRPC."""

    server: serving.Server
    scratch: Path
    load_tool: str

    def body_file(self, route: Route) -> Path:
        """The file the load tool sends: h2load's holds the gRPC frame around the message."""
        framed = route.is_grpc and self.load_tool == "h2load"
        name = re.sub(r"\W+", "-", route.label).strip("-")
        path = self.scratch / f"body-{name}{'-framed' if framed else ''}.bin"
        if not path.exists():
            path.write_bytes(grpc_body(route.body) if framed else route.body)
        return path

    def run(self, route: Route, clients: int, duration_s: int) -> dict:
        """wrk's or the gRPC tool's numbers for one run."""
        body = self.body_file(route)
        if not route.is_grpc:
            args = (str(body), route.content_type, *_flatten(route.headers))
            return run_wrk(
                self.server.inference + route.path, clients, duration_s, POST_SCRIPT, args
            ).as_dict()
        if self.load_tool == "h2load":
            url = f"http://{self.server.grpc_inference}{route.path}"
            return run_h2load(url, body, clients, duration_s).as_dict()
        return grpc_load.run_in_subprocess(
            self.server.grpc_inference, "raw", MODEL, clients, duration_s, raw=(route.path, body)
        )

    def measured(self, route: Route, clients: int, duration_s: int) -> dict:
        """:meth:`run`'s numbers with the server's CPU seconds per 1,000 requests, and the
        statuses of the requests its access log shows answered with an error."""
        logged = self.server.log_path.stat().st_size
        result = with_cpu(self.server, lambda: self.run(route, clients, duration_s))
        if result["errors"]:
            with self.server.log_path.open("rb") as log:
                log.seek(logged)
                statuses = ERROR_STATUS.findall(log.read().decode(errors="replace"))
            result["error_statuses"] = dict(Counter(map(int, statuses)))
        return result


def with_cpu(server: serving.Server, run: Callable[[], dict]) -> dict:
    """``run``'s numbers with the server's CPU seconds (frontend, workers, both) per 1,000 of
    the requests it answered successfully (an error answer, a 503 from a full queue, costs
    less and would flatter the rest)."""
    before = serving.cpu_seconds(server)
    result = run()
    after = serving.cpu_seconds(server)
    answered = result["requests"] - result.get("non_2xx", 0)
    if before is not None and after is not None and answered > 0:
        per_1k = 1000 / answered
        frontend, workers = (end - start for start, end in zip(before, after, strict=True))
        result |= {
            "cpu_s_per_1k": (frontend + workers) * per_1k,
            "frontend_cpu_s_per_1k": frontend * per_1k,
            "worker_cpu_s_per_1k": workers * per_1k,
        }
    return result


def build_model(scratch: Path, store: Path) -> None:
    """Pack the digits TorchScript model with the built-in tensor handler."""
    artifacts = archives.digits_artifacts(scratch / "digits")
    options = ArchiveOptions(
        model_name=MODEL,
        version="1.0",
        serialized_file=str(artifacts / "digits.pt"),
        handler="tensor",
        export_path=store,
        force=True,
    )
    build_archive(options)


def measure(
    scratch: Path, duration_s: int, concurrency: list[int], rounds: int, load_tool: str
) -> dict:
    """Serve the model and load it through each protocol, ``rounds`` times round; the server
    is always stopped."""
    store = scratch / "model_store"
    store.mkdir()
    build_model(scratch, store)
    runs: list[dict] = []
    with serving.running_server(scratch / "server", store) as server:
        serving.register(
            server, f"{MODEL}.mar", batch_size=BATCH_SIZE, max_batch_delay_ms=MAX_BATCH_DELAY_MS
        )
        serving.wait_healthy(server)
        loader = Loader(server, scratch, load_tool)
        every = routes()
        for route in every:
            check_route(server, route)
        for round_number in range(1, rounds + 1):
            for clients in concurrency:
                for route in every:
                    progress(f"round {round_number}: {route.label} c={clients}")
                    result = loader.measured(route, clients, duration_s)
                    runs.append(
                        {
                            "protocol": route.label,
                            "concurrency": clients,
                            "round": round_number,
                            **result,
                        }
                    )
        progress("ceilings: GET /v2/health/live (wrk), ServerLive (gRPC)")
        health_live = server.inference + "/v2/health/live"
        rest_ceiling = with_cpu(
            server, lambda: run_wrk(health_live, CEILING_CONCURRENCY, duration_s).as_dict()
        )
        live = Route("ServerLive", SERVER_LIVE, b"", accepts=lambda answer: True)
        grpc_ceiling = loader.measured(live, CEILING_CONCURRENCY, duration_s)
    return {
        "runs": runs,
        "medians": medians(runs),
        "ceilings": {
            "rest_v2_health_live": {"concurrency": CEILING_CONCURRENCY, **rest_ceiling},
            "grpc_server_live": {"concurrency": CEILING_CONCURRENCY, **grpc_ceiling},
        },
    }


MEDIAN_KEYS = ("requests_per_s", "p50_ms", "p99_ms", "cpu_s_per_1k", "frontend_cpu_s_per_1k")


def medians(runs: list[dict]) -> list[dict]:
    """Per protocol and concurrency: the medians over rounds, errors summed, and requests per
    CPU-second against the cheapest protocol's at the same concurrency (1.0: the cheapest)."""
    grouped: dict[tuple[str, int], list[dict]] = {}
    for run in runs:
        grouped.setdefault((run["protocol"], run["concurrency"]), []).append(run)
    rows = []
    for (protocol, clients), group in grouped.items():
        row = {"protocol": protocol, "concurrency": clients, "rounds": len(group)}
        for key in MEDIAN_KEYS:
            values = [run[key] for run in group if key in run]
            row[key] = statistics.median(values) if values else None
        row["errors"] = sum(run["errors"] for run in group)
        statuses: Counter[int] = Counter()
        for run in group:
            statuses.update(run.get("error_statuses", {}))
        row["error_statuses"] = dict(statuses)
        rows.append(row)
    for clients in {row["concurrency"] for row in rows}:
        same = [row for row in rows if row["concurrency"] == clients and row["cpu_s_per_1k"]]
        cheapest = min((row["cpu_s_per_1k"] for row in same), default=None)
        for row in same:
            row["per_cpu_s_vs_best"] = cheapest / row["cpu_s_per_1k"]
    return rows


def _cell(value: float | None, form: str) -> str:
    return "—" if value is None else format(value, form)


def _errors(row: dict) -> str:
    """The error count, with the statuses the access log showed (e.g. ``3 (503: 3)``)."""
    statuses = ", ".join(f"{status}: {count}" for status, count in row["error_statuses"].items())
    return f"{row['errors']} ({statuses})" if statuses else str(row["errors"])


def markdown(report: dict) -> str:
    """The report as a markdown section: the medians, then the ceilings."""
    env = report["environment"]
    lines = [
        f"## Protocols ({env.get('date', '')}, {env.get('host', socket.gethostname())})",
        "",
        "Model: digits CNN (TorchScript) behind the `tensor` handler, 1 worker, "
        f"batch {BATCH_SIZE}, {MAX_BATCH_DELAY_MS} ms; {report['duration_s']} s per run, "
        f"median of {report['rounds']} alternating rounds; REST load from wrk, gRPC from "
        f"{report['load_tool']}. CPU: the server's (frontend + worker) user + system seconds "
        "per 1,000 requests; vs best: requests per CPU-second against the cheapest protocol "
        "at that concurrency.",
        "",
        "| protocol | c | req/s | p50 ms | p99 ms | CPU-s/1k | frontend CPU-s/1k | vs best "
        "| errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in sorted(report["medians"], key=lambda row: row["concurrency"]):
        lines.append(
            f"| {row['protocol']} | {row['concurrency']} | {row['requests_per_s']:,.0f} | "
            f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {_cell(row['cpu_s_per_1k'], '.3f')} "
            f"| {_cell(row['frontend_cpu_s_per_1k'], '.3f')} "
            f"| {_cell(row.get('per_cpu_s_vs_best'), '.2f')} | {_errors(row)} |"
        )
    rest, grpc_live = (
        report["ceilings"]["rest_v2_health_live"],
        report["ceilings"]["grpc_server_live"],
    )
    lines += [
        "",
        f"Transports alone at c={CEILING_CONCURRENCY} (no model, no queue): REST `GET "
        f"/v2/health/live` {rest['requests_per_s']:,.0f} req/s with wrk, "
        f"{_cell(rest.get('cpu_s_per_1k'), '.3f')} CPU-s/1k; gRPC `ServerLive` "
        f"{grpc_live['requests_per_s']:,.0f} req/s with {report['load_tool']}, "
        f"{_cell(grpc_live.get('cpu_s_per_1k'), '.3f')} CPU-s/1k. Every load tool shares the "
        "machine's cores with the server.",
    ]
    return "\n".join(lines) + "\n"


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_rounds_option(parser, DEFAULT_ROUNDS)
    parser.add_argument(
        "--load-tool",
        choices=LOAD_TOOLS,
        help="gRPC load: h2load (C, the default where installed) or python (grpc.aio, in its "
        "own process)",
    )


def main(argv: list[str] | None = None) -> int:
    """Run the protocol benchmark; 1 with a message when the server or a load tool fails."""
    args = parse_load_args(__doc__.splitlines()[0], argv, add_arguments=_add_arguments)
    load_tool = args.load_tool or ("h2load" if shutil.which("h2load") else "python")
    started = time.monotonic()
    try:
        wrk_binary()
        if load_tool == "h2load":
            h2load_binary()
        environment = describe_environment(args.duration)
        with tempfile.TemporaryDirectory(prefix="modelserve-protocols-") as scratch:
            measured = measure(
                Path(scratch), args.duration, args.concurrency, args.rounds, load_tool
            )
    except (serving.ServerError, WrkError) as exc:
        print(f"run_protocols: {exc}", file=sys.stderr)
        return 1
    report = {
        "environment": environment,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "load_tool": load_tool,
        **measured,
    }
    publish(args.out, "protocols", report, markdown(report), "run_protocols", started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
