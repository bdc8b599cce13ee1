"""A gRPC load generator for the Open Inference Protocol, wrk's counterpart for gRPC.

wrk speaks only HTTP/1.1, so gRPC load comes from here: ``concurrency`` coroutines on one
grpc.aio channel, each sending its next call as soon as the last one is answered, for
``duration_s`` seconds. Run as a separate process (``python -m loadtest.grpc_load``) so it
does not share an interpreter with the runner; it prints one JSON object. ``--inputs`` gives
the request's FP32 inputs as v2 JSON tensors (default: run_protocols.py's digits image). Kind
"raw" sends any unary method (``--method /package.Service/Method``) the serialized request in
``--body-file``, unparsed, so one generator drives every gRPC protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from loadtest import BENCH_DIR
from loadtest.wrk import WrkError
from modelserve.grpc.proto import open_inference_pb2 as pb
from modelserve.grpc.proto import open_inference_pb2_grpc as pb_grpc

PERCENTILES = (50, 75, 90, 99)
EXIT_GRACE_S = 60


# run_protocols.py's request: one all-zero 8x8 image for the digits CNN.
DIGITS_INPUTS = [
    {"name": "input__0", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [0.0] * 64}
]


def infer_request(model: str, inputs: list[dict]) -> pb.ModelInferRequest:
    """A ModelInfer call with FP32 ``inputs`` (v2 JSON tensors: name, datatype, shape, data),
    sent as raw bytes (what tritonclient sends)."""
    request = pb.ModelInferRequest(model_name=model)
    for given in inputs:
        if given["datatype"] != "FP32":
            raise ValueError(f"input {given['name']}: only FP32 inputs are sent")
        tensor = request.inputs.add()
        tensor.name, tensor.datatype = given["name"], "FP32"
        tensor.shape.extend(given["shape"])
        data = given["data"]
        request.raw_input_contents.append(struct.pack(f"<{len(data)}f", *data))
    return request


async def load_calls(
    call: Callable[[], Awaitable[object]],
    concurrency: int,
    duration_s: float,
    failures: tuple[type[Exception], ...] = (grpc.aio.AioRpcError,),
) -> dict[str, object]:
    """``concurrency`` coroutines awaiting ``call`` back to back for ``duration_s`` seconds:
    answers per second, latency percentiles, and how many calls raised one of ``failures``."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration_s

    async def client() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await call()
            except failures:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def percentile(p: int) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, len(latencies) * p // 100)] * 1000

    return {
        "requests": len(latencies),
        "requests_per_s": len(latencies) / elapsed,
        **{f"p{p}_ms": percentile(p) for p in PERCENTILES},
        "errors": errors,
    }


# v2 ModelInfer's full method name, for kind "raw".
MODEL_INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"


@dataclass(frozen=True)
class RawCall:
    """A unary method and its request, already serialized."""

    method: str
    body: bytes


async def run(
    target: str,
    kind: str,
    model: str,
    concurrency: int,
    duration_s: float,
    inputs: list[dict] | None = None,
    raw: RawCall | None = None,
) -> dict:
    """Load ``target`` with ModelInfer on ``model`` (kind "infer"), ServerLive ("live") or
    ``raw``'s method and bytes ("raw")."""
    async with grpc.aio.insecure_channel(target) as channel:
        if kind == "raw":
            if raw is None:
                raise ValueError('kind "raw" needs a RawCall')
            # No serializers: the request goes as the bytes given, the answer stays bytes.
            method = channel.unary_unary(raw.method)
            return await load_calls(lambda: method(raw.body), concurrency, duration_s)
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        if kind == "live":
            live = pb.ServerLiveRequest()
            return await load_calls(lambda: stub.ServerLive(live), concurrency, duration_s)
        request = infer_request(model, DIGITS_INPUTS if inputs is None else inputs)
        return await load_calls(lambda: stub.ModelInfer(request), concurrency, duration_s)


def run_in_subprocess(
    target: str,
    kind: str,
    model: str,
    concurrency: int,
    duration_s: int,
    inputs: list[dict] | None = None,
    raw: tuple[str, Path] | None = None,
) -> dict:
    """:func:`run`'s result from this module run in its own process, so that the client does
    not share the caller's interpreter; WrkError when it fails. ``raw``: kind "raw"'s method
    and the file holding its serialized request."""
    arguments = [target, kind, model, str(concurrency), str(duration_s)]
    if inputs is not None:
        arguments += ["--inputs", json.dumps(inputs)]
    if raw is not None:
        arguments += ["--method", raw[0], "--body-file", str(raw[1])]
    return run_generator("grpc_load", arguments, duration_s)


def run_generator(module: str, arguments: list[str], duration_s: float) -> dict:
    """The JSON object ``python -m loadtest.<module> <arguments>`` prints, a load generator
    running for ``duration_s`` seconds in its own process; WrkError when it fails."""
    completed = subprocess.run(
        [sys.executable, "-m", f"loadtest.{module}", *arguments],
        capture_output=True,
        text=True,
        cwd=BENCH_DIR,
        timeout=duration_s + EXIT_GRACE_S,
    )
    if completed.returncode != 0:
        raise WrkError(f"{module} exited with {completed.returncode}:\n{completed.stderr}")
    return json.loads(completed.stdout)


def main() -> None:
    """``python -m loadtest.grpc_load TARGET KIND MODEL CONCURRENCY DURATION [--inputs JSON]
    [--method M --body-file F]``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target")
    parser.add_argument("kind", choices=["infer", "live", "raw"])
    parser.add_argument("model")
    parser.add_argument("concurrency", type=int)
    parser.add_argument("duration", type=float)
    parser.add_argument("--inputs", type=json.loads, help="the FP32 inputs as v2 JSON tensors")
    parser.add_argument("--method", help='kind "raw": the method, /package.Service/Method')
    parser.add_argument("--body-file", type=Path, help='kind "raw": the serialized request')
    args = parser.parse_args()
    raw = None
    if args.kind == "raw":
        if args.method is None or args.body_file is None:
            parser.error('kind "raw" needs --method and --body-file')
        raw = RawCall(args.method, args.body_file.read_bytes())
    result = asyncio.run(
        run(args.target, args.kind, args.model, args.concurrency, args.duration, args.inputs, raw)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
