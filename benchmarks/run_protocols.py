"""One model through every inference protocol: TorchServe's /predictions, the Open Inference
Protocol (KServe v2) over REST with JSON and with binary tensors, and over gRPC, and grps's
HTTP API with gtensors.

    python benchmarks/run_protocols.py [--duration S] [--concurrency 1 16 64] [--out DIR] [--smoke]

The digits CNN (TorchScript) is served by the built-in ``tensor`` handler, one worker, batches
of up to 8 within 5 ms, so every protocol reaches the same model code. REST load comes from
wrk; gRPC load from ``loadtest.grpc_load`` in its own process. Each protocol's ceiling on
this machine is measured too: wrk on ``GET /v2/health/live`` and the gRPC client on
``ServerLive``. Writes ``<out>/<date>-<host>-protocols.md`` and ``.json``.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from loadtest import BATCH_SIZE, BENCH_DIR, MAX_BATCH_DELAY_MS, archives, grpc_load
from loadtest import server as serving
from loadtest.environment import describe_environment
from loadtest.options import parse_load_args
from loadtest.report import write_named
from loadtest.wrk import WrkError, run_wrk, wrk_binary
from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions

MODEL = "digits_tensor"
INPUT_SHAPE = [1, 1, 8, 8]
CEILING_CONCURRENCY = 64
POST_SCRIPT = BENCH_DIR / "post_body.lua"


@dataclass(frozen=True)
class RestRoute:
    """A REST way to ask the model: its path, body and headers."""

    label: str
    path: str
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


def progress(message: str) -> None:
    print(f"[run_protocols] {message}", file=sys.stderr, flush=True)


def rest_routes() -> list[RestRoute]:
    """The same all-zero 8x8 image as /predictions JSON, v2 JSON, v2 binary and grps's
    gtensors."""
    pixels = [0.0] * 64
    nested = [[[pixels[row * 8 : row * 8 + 8] for row in range(8)]]]
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
    binary = header + struct.pack("<64f", *pixels)
    gtensor = {"name": "", "dtype": "DT_FLOAT32", "shape": INPUT_SHAPE, "flat_float32": pixels}
    infer = f"/v2/models/{MODEL}/infer"
    return [
        RestRoute(
            "/predictions JSON",
            f"/predictions/{MODEL}",
            json.dumps(nested).encode(),
            "application/json",
        ),
        RestRoute("v2 REST JSON", infer, json.dumps(v2_json).encode(), "application/json"),
        RestRoute(
            "v2 REST binary",
            infer,
            binary,
            "application/octet-stream",
            {"Inference-Header-Content-Length": str(len(header))},
        ),
        RestRoute(
            "grps HTTP gtensors",
            f"/grps/v1/infer/predict?model={MODEL}",
            json.dumps({"gtensors": {"tensors": [gtensor]}}).encode(),
            "application/json",
        ),
    ]


def _flatten(headers: dict[str, str]) -> list[str]:
    """Headers as post_body.lua's trailing name, value arguments."""
    return [item for pair in headers.items() for item in pair]


def check_route(server: serving.Server, route: RestRoute) -> None:
    """One request per route before the load, so a wrong body fails loudly, not as errors."""
    headers = {
        "Content-Type": route.content_type,
        **route.headers,
    }
    response = httpx.post(
        server.inference + route.path, content=route.body, headers=headers, timeout=30
    )
    if response.status_code != 200:
        raise server.fail(f"{route.label}: HTTP {response.status_code} {response.text[:500]}")


def run_grpc(target: str, kind: str, concurrency: int, duration_s: int) -> dict:
    """The gRPC load generator's result, run in its own process."""
    return grpc_load.run_in_subprocess(target, kind, MODEL, concurrency, duration_s)


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


def measure(scratch: Path, duration_s: int, concurrency: list[int]) -> dict:
    """Serve the model and load it through each protocol; the server is always stopped."""
    store = scratch / "model_store"
    store.mkdir()
    build_model(scratch, store)
    runs: list[dict] = []
    with serving.running_server(scratch / "server", store) as server:
        serving.register(
            server, f"{MODEL}.mar", batch_size=BATCH_SIZE, max_batch_delay_ms=MAX_BATCH_DELAY_MS
        )
        serving.wait_healthy(server)
        for route in rest_routes():
            check_route(server, route)
            body_file = scratch / f"body-{len(runs)}.bin"
            body_file.write_bytes(route.body)
            for clients in concurrency:
                progress(f"wrk {route.label} c={clients}")
                args = (str(body_file), route.content_type, *_flatten(route.headers))
                result = run_wrk(
                    server.inference + route.path, clients, duration_s, POST_SCRIPT, args
                )
                runs.append({"protocol": route.label, "concurrency": clients, **result.as_dict()})
        for clients in concurrency:
            progress(f"gRPC ModelInfer c={clients}")
            result = run_grpc(server.grpc_inference, "infer", clients, duration_s)
            runs.append({"protocol": "v2 gRPC", "concurrency": clients, **result})
        progress("ceilings: GET /v2/health/live (wrk), ServerLive (gRPC)")
        rest_ceiling = run_wrk(
            server.inference + "/v2/health/live", CEILING_CONCURRENCY, duration_s
        )
        grpc_ceiling = run_grpc(server.grpc_inference, "live", CEILING_CONCURRENCY, duration_s)
    return {
        "runs": runs,
        "ceilings": {
            "rest_v2_health_live": {"concurrency": CEILING_CONCURRENCY, **rest_ceiling.as_dict()},
            "grpc_server_live": {"concurrency": CEILING_CONCURRENCY, **grpc_ceiling},
        },
    }


def markdown(report: dict) -> str:
    """The report as a markdown section."""
    env = report["environment"]
    lines = [
        f"## Protocols ({env.get('date', '')}, {env.get('host', socket.gethostname())})",
        "",
        "Model: digits CNN (TorchScript) behind the `tensor` handler, 1 worker, "
        f"batch {BATCH_SIZE}, {MAX_BATCH_DELAY_MS} ms; {report['duration_s']} s per run.",
        "",
        "| protocol | c | req/s | p50 ms | p90 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in report["runs"]:
        lines.append(
            f"| {run['protocol']} | {run['concurrency']} | {run['requests_per_s']:,.0f} | "
            f"{run['p50_ms']:.2f} | {run['p90_ms']:.2f} | {run['p99_ms']:.2f} | {run['errors']} |"
        )
    rest, grpc = report["ceilings"]["rest_v2_health_live"], report["ceilings"]["grpc_server_live"]
    lines += [
        "",
        f"Ceilings at c={CEILING_CONCURRENCY} (no model, no queue): REST `GET /v2/health/live` "
        f"{rest['requests_per_s']:,.0f} req/s with wrk; gRPC `ServerLive` "
        f"{grpc['requests_per_s']:,.0f} req/s with the Python gRPC client, which shares the two "
        "cores with the server.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the protocol benchmark; 1 with a message when the server or a load tool fails."""
    args = parse_load_args(__doc__.splitlines()[0], argv)
    started = time.monotonic()
    try:
        wrk_binary()
        environment = describe_environment(args.duration)
        with tempfile.TemporaryDirectory(prefix="modelserve-protocols-") as scratch:
            measured = measure(Path(scratch), args.duration, args.concurrency)
    except (serving.ServerError, WrkError) as exc:
        print(f"run_protocols: {exc}", file=sys.stderr)
        return 1
    report = {"environment": environment, "duration_s": args.duration, **measured}
    text = markdown(report)
    stem = write_named(args.out, "protocols", report, text)
    print(text, flush=True)
    progress(f"wrote {stem}.md and .json in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
