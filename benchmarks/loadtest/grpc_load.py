"""A gRPC load generator for the Open Inference Protocol, wrk's counterpart for gRPC.

wrk speaks only HTTP/1.1, so gRPC load comes from here: ``concurrency`` coroutines on one
grpc.aio channel, each sending its next call as soon as the last one is answered, for
``duration_s`` seconds. Run as a separate process (``python -m loadtest.grpc_load``) so it
does not share an interpreter with the runner; it prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import grpc

from modelserve.grpc.proto import open_inference_pb2 as pb
from modelserve.grpc.proto import open_inference_pb2_grpc as pb_grpc

PERCENTILES = (50, 75, 90, 99)


def infer_request(model: str, shape: list[int], payload: bytes) -> pb.ModelInferRequest:
    """A ModelInfer call with one FP32 input sent as raw bytes (what tritonclient sends)."""
    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = "input__0", "FP32"
    tensor.shape.extend(shape)
    request.raw_input_contents.append(payload)
    return request


async def _load(
    call: Callable[[], Awaitable[object]], concurrency: int, duration_s: float
) -> dict[str, object]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration_s

    async def client() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await call()
            except grpc.aio.AioRpcError:
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


async def run(target: str, kind: str, model: str, concurrency: int, duration_s: float) -> dict:
    """Load ``target`` with ModelInfer on ``model`` (kind "infer") or ServerLive ("live")."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        if kind == "live":
            live = pb.ServerLiveRequest()
            return await _load(lambda: stub.ServerLive(live), concurrency, duration_s)
        request = infer_request(model, [1, 1, 8, 8], bytes(4 * 64))
        return await _load(lambda: stub.ModelInfer(request), concurrency, duration_s)


def main() -> None:
    """``python -m loadtest.grpc_load TARGET KIND MODEL CONCURRENCY DURATION``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target")
    parser.add_argument("kind", choices=["infer", "live"])
    parser.add_argument("model")
    parser.add_argument("concurrency", type=int)
    parser.add_argument("duration", type=float)
    args = parser.parse_args()
    result = asyncio.run(run(args.target, args.kind, args.model, args.concurrency, args.duration))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
