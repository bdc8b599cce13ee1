"""Large payloads: a ResNet-18-sized CNN on 224x224 JPEG images and 3x224x224 FP32 tensors,
through the server against the same handler called in-process at batch 8.

    python benchmarks/run_payloads.py [--duration S] [--concurrency 16] [--rounds N]
                                      [--threads T] [--no-buffer-reuse] [--out DIR] [--smoke]

One TorchScript ResNet-18 (``compare/models.py``, random weights) is served twice: by the
built-in ``image_classifier`` (TorchServe's default image handler) and by the built-in
``tensor`` handler, one worker each, ``batch_size`` 8, ``max_batch_delay`` 5 ms,
``worker_threads`` T. Four ways in, each with the body its users' clients send:

- ``JPEG raw``: ``POST /predictions/resnet_image`` with the image as the body (``curl -T``);
- ``JPEG multipart``: the same image as the form field ``data`` (``curl -F data=@...``, built
  by httpx);
- ``v2 binary REST``: ``POST /v2/models/resnet_tensor/infer`` with the FP32 tensor after the
  JSON header (the binary tensor extension, body built by tritonclient.http), binary output;
- ``v2 gRPC``: ``ModelInfer`` with the tensor in ``raw_input_contents``.

Every answer is checked first. Then, round after round, each way runs in-process (the
worker's ``ModelService`` in this process, with T torch threads, on a batch of 8 requests as
the worker receives them) and then through the server (wrk, or ``loadtest.grpc_load`` in its
own process, at each concurrency). The report gives medians over rounds: req/s, MB/s of
request bodies, the share of the in-process limit, CPU time per request (the server's
frontend and worker from /proc, against this process's), and what each copy of a body costs,
timed alone (``loadtest.copies``). ``--no-buffer-reuse`` serves with ``reuse_large_buffers``
off, glibc's allocator as it comes, to see what the setting saves. ``--smoke``: a narrow
network (``RESNET_WIDTH`` / 16), 1 s runs, one round. Writes
``<out>/<date>-<host>-payloads.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import orjson
import torch
import tritonclient.http as triton_http
from compare.models import RESNET_SHAPE, RESNET_WIDTH, ModelFiles, prepare_resnet
from loadtest import BATCH_SIZE, BENCH_DIR, MAX_BATCH_DELAY_MS, copies, grpc_load
from loadtest import server as serving
from loadtest.environment import describe_environment, machine_line
from loadtest.in_process import measure
from loadtest.options import add_rounds_option, parse_load_args
from loadtest.report import publish
from loadtest.served import batch_summary, cpu_per_request, settled_batches, spread
from loadtest.wrk import WrkError, parse_report, wrk_binary, wrk_output
from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions
from modelserve_handlers.tensor_io.neutral import decode_tensor_request
from modelserve_handlers.tensor_io.open_inference import decode_infer_request
from modelserve_handlers.vision import IMAGENET_TRANSFORM, decode_image
from PIL import Image

from modelserve import wire
from modelserve.allocator import reuse_freed_buffers
from modelserve.grpc.proto import open_inference_pb2 as pb
from modelserve.grpc.proto import open_inference_pb2_grpc as pb_grpc
from modelserve.grpc.v2_tensors import tensor_request
from modelserve.protocol_contract import HEADER_LENGTH, PROTOCOL_HEADER, V2
from modelserve.worker.service import ModelService

IMAGE_MODEL, TENSOR_MODEL = "resnet_image", "resnet_tensor"
HANDLERS = {IMAGE_MODEL: "image_classifier", TENSOR_MODEL: "tensor"}
INPUT_NAME, OUTPUT_NAME = "input__0", "output__0"
JPEG_RAW, JPEG_MULTIPART, V2_BINARY, V2_GRPC = (
    "JPEG raw",
    "JPEG multipart",
    "v2 binary REST",
    "v2 gRPC",
)
POST_SCRIPT = BENCH_DIR / "post_body.lua"
JPEG_TYPE = "image/jpeg"
OCTET_STREAM = "application/octet-stream"
JPEG_QUALITY = 90
SMOKE_WIDTH = RESNET_WIDTH // 16
DEFAULT_CONCURRENCY = (16,)  # two batches of 8: one computing, the next one filling
DEFAULT_ROUNDS = 3
DEFAULT_THREADS = 1
# A call of batch 8 takes about a second on one core: a few settle TorchScript's profiling.
WARM_UP_CALLS = 3
WARM_UP_S = 3
WARM_UP_BATCH_S = 2.0
# A run is over when the batch counts have not moved for this many batch times.
SETTLE_BATCHES = 1.5
MEDIAN_KEYS = ("requests_per_s", "p50_ms", "p99_ms", "mean_batch")
CPU_KEYS = ("frontend_cpu_us", "worker_cpu_us")
# A batch of 8 takes a second or more on one busy core, so a request may wait two: past wrk's
# default 2 s it would count as an error and leave the latencies.
WRK_TIMEOUT_S = 60
SHARE_GOAL = 0.95
COPY_GOAL = 0.02
BYTES_PER_MB = 1e6


def progress(message: str) -> None:
    """One line of progress, flushed at once."""
    print(f"[run_payloads] {message}", file=sys.stderr, flush=True)


# ----- what is sent


def sample_jpeg() -> bytes:
    """A 224x224 photo-like JPEG: smooth colour gradients with fine noise, so that it
    compresses about as much as a photograph does."""
    side = RESNET_SHAPE[1]
    rows, columns = np.mgrid[0:side, 0:side].astype(np.float32) / side
    smooth = np.stack([rows, columns, (rows + columns) / 2], axis=-1) * 200
    noise = np.random.default_rng(0).normal(0, 12, (side, side, 3))
    pixels = np.clip(smooth + noise + 20, 0, 255).astype(np.uint8)
    encoded = io.BytesIO()
    Image.fromarray(pixels).save(encoded, format="JPEG", quality=JPEG_QUALITY)
    return encoded.getvalue()


def multipart_body(jpeg: bytes) -> tuple[bytes, str]:
    """The image as the form field ``data``, as httpx (like curl -F) encodes it; the body and
    its content type, boundary included."""
    request = httpx.Request("POST", "http://localhost/", files={"data": ("image.jpg", jpeg)})
    return request.read(), request.headers["content-type"]


def v2_binary_body(tensor: np.ndarray) -> tuple[bytes, int]:
    """A v2 infer request as tritonclient.http builds it: the tensor as binary data after the
    JSON, the output asked for in binary; the body and the JSON's length."""
    given = triton_http.InferInput(INPUT_NAME, list(tensor.shape), "FP32")
    given.set_data_from_numpy(tensor, binary_data=True)
    wanted = triton_http.InferRequestedOutput(OUTPUT_NAME, binary_data=True)
    body, json_length = triton_http.InferenceServerClient.generate_request_body(
        [given], outputs=[wanted]
    )
    return body, json_length


def grpc_request(tensor: np.ndarray) -> pb.ModelInferRequest:
    """ModelInfer with the tensor in ``raw_input_contents``, as tritonclient.grpc sends it."""
    request = pb.ModelInferRequest(model_name=TENSOR_MODEL)
    given = request.inputs.add(name=INPUT_NAME, datatype="FP32")
    given.shape.extend(tensor.shape)
    request.outputs.add(name=OUTPUT_NAME)
    request.raw_input_contents.append(tensor.tobytes())
    return request


@dataclass
class Way:
    """One way to send the model a request: the bytes on the wire, and the request as the
    frontend hands it to the worker (for the in-process run)."""

    label: str
    model: str
    body: bytes  # the HTTP body, or the serialized ModelInferRequest
    wire_request: wire.WireRequest
    path: str = ""  # the HTTP path; "" for gRPC
    content_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def payload_bytes(self) -> int:
        """The request's size on the wire, before HTTP or gRPC framing."""
        return len(self.body)


def http_wire_request(
    parameter: wire.RequestParameter, headers: dict[str, str]
) -> wire.WireRequest:
    """A request as the frontend's HTTP routes build it (inference.wire_request and
    protocol_routes.protocol_request): the client's headers and one parameter."""
    return wire.WireRequest(str(uuid.uuid4()), {"url_path": "", **headers}, [parameter])


def build_ways(tensor: np.ndarray) -> list[Way]:
    """The four ways, for the image ``sample_jpeg()`` and the tensor ``tensor``."""
    jpeg = sample_jpeg()
    form, form_type = multipart_body(jpeg)
    binary, json_length = v2_binary_body(tensor)
    v2_headers = {HEADER_LENGTH: str(json_length)}
    request = grpc_request(tensor)
    return [
        Way(
            JPEG_RAW,
            IMAGE_MODEL,
            jpeg,
            http_wire_request(wire.RequestParameter("body", JPEG_TYPE, jpeg), {}),
            f"/predictions/{IMAGE_MODEL}",
            JPEG_TYPE,
        ),
        Way(
            JPEG_MULTIPART,
            IMAGE_MODEL,
            form,
            http_wire_request(wire.RequestParameter("data", JPEG_TYPE, jpeg), {}),
            f"/predictions/{IMAGE_MODEL}",
            form_type,
        ),
        Way(
            V2_BINARY,
            TENSOR_MODEL,
            binary,
            http_wire_request(
                wire.RequestParameter("body", OCTET_STREAM, binary),
                {PROTOCOL_HEADER: V2, **v2_headers},
            ),
            f"/v2/models/{TENSOR_MODEL}/infer",
            OCTET_STREAM,
            v2_headers,
        ),
        Way(
            V2_GRPC,
            TENSOR_MODEL,
            request.SerializeToString(),
            wire.WireRequest(str(uuid.uuid4()), {}, [], tensor_request(request)),
        ),
    ]


# ----- answers


def top_class(way: Way, status: int, body: bytes, content_type: str | None) -> int:
    """The class an answer names first; ValueError for an answer that is not a success."""
    if status != 200:
        raise ValueError(f"{way.label}: HTTP {status} {body[:300]!r}")
    if way.model == IMAGE_MODEL:  # image_classifier: {label: probability}, best first
        return int(next(iter(orjson.loads(body))))
    length = None if content_type == "application/json" else len(body)
    return int(np.argmax(v2_output(body, length)))


def v2_output(body: bytes, json_length: int | None) -> np.ndarray:
    """The output tensor of a v2 REST answer, read by tritonclient.http."""
    result = triton_http.InferenceServerClient.parse_response_body(body, header_length=json_length)
    return result.as_numpy(OUTPUT_NAME)


def served_class(server: serving.Server, way: Way) -> int:
    """The class the server answers to one request sent ``way``."""
    if way.label == V2_GRPC:
        with grpc.insecure_channel(server.grpc_inference) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            reply = stub.ModelInfer(pb.ModelInferRequest.FromString(way.body), timeout=120)
        return int(np.argmax(np.frombuffer(reply.raw_output_contents[0], dtype="<f4")))
    headers = {"Content-Type": way.content_type, **way.headers}
    response = httpx.post(
        server.inference + way.path, content=way.body, headers=headers, timeout=120
    )
    length = response.headers.get(HEADER_LENGTH)
    if length is not None:
        body = response.content
        return int(np.argmax(v2_output(body, int(length))))
    return top_class(way, response.status_code, response.content, "application/json")


# ----- in-process


def as_received(requests: list[wire.WireRequest]) -> list[wire.WireRequest]:
    """The batch as a worker decodes it off its socket (worker/streaming.py): framed by the
    wire module, bodies as ``bytes``, tensor data as writable views."""
    header_frame, *frames = wire.encode_batch(0, requests)
    header = wire.decode_header(header_frame)
    if wire.carries_tensors(header):
        return wire.decode_batch(header, [memoryview(bytearray(frame)) for frame in frames])
    return wire.decode_batch(header, [bytes(frame) for frame in frames])


def load_services(files: ModelFiles) -> dict[str, ModelService]:
    """Each model's handler loaded as its worker loads it, in this process."""
    assert files.serialized is not None
    services = {}
    for model, handler in HANDLERS.items():
        manifest = {"model": {"modelName": model, "serializedFile": files.serialized.name}}
        spec = wire.WorkerSpec(
            model, "", model, "1.0", str(files.serialized.parent), handler, BATCH_SIZE, manifest
        )
        services[model] = ModelService(spec)
    return services


def in_process_call(service: ModelService, way: Way) -> Callable[[list[Any], Any], Any]:
    """The handler's call on a batch, refusing any answer that is not a 200."""

    def call(batch: list[Any], _context: Any) -> Any:
        outcome, _telemetry = service.predict(batch)
        if isinstance(outcome, wire.BatchError) or any(
            answer is None or answer.status != 200 for answer in outcome
        ):
            raise RuntimeError(f"{way.label}: the handler failed in-process: {outcome}")
        return outcome

    return call


def in_process_class(service: ModelService, way: Way) -> int:
    """The class the handler answers in-process; every answer of a batch must agree."""
    outcome = in_process_call(service, way)(as_received([way.wire_request] * BATCH_SIZE), None)
    classes = set()
    for answer in outcome:
        if answer.tensors is not None:  # a gRPC answer: raw output data
            raw = answer.tensors.outputs[0].data
            classes.add(int(np.argmax(np.frombuffer(raw, dtype="<f4"))))
        elif HEADER_LENGTH in answer.headers:
            classes.add(int(np.argmax(v2_output(answer.body, int(answer.headers[HEADER_LENGTH])))))
        else:
            classes.add(top_class(way, answer.status, answer.body, answer.content_type))
    if len(classes) != 1:
        raise RuntimeError(f"{way.label}: one batch answered the classes {sorted(classes)}")
    return classes.pop()


def run_in_process(service: ModelService, way: Way, duration_s: float) -> dict[str, Any]:
    """Batches of 8 of ``way``'s request back to back: calls, req/s and CPU per request."""
    batch = as_received([way.wire_request] * BATCH_SIZE)
    call = in_process_call(service, way)
    result = measure(way.label, call, batch, None, duration_s, warm_up_calls=WARM_UP_CALLS)
    return {
        "requests_per_s": result.requests_per_s,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "calls": result.calls,
        "cpu_us": result.cpu_ms_per_call * 1000 / BATCH_SIZE,
    }


# ----- through the server


def build_archives(files: ModelFiles, store: Path) -> None:
    """The same TorchScript model packed with each built-in handler."""
    assert files.serialized is not None
    for model, handler in HANDLERS.items():
        options = ArchiveOptions(
            model_name=model,
            version="1.0",
            serialized_file=str(files.serialized),
            handler=handler,
            export_path=store,
            force=True,
        )
        build_archive(options)


def load_run(
    server: serving.Server,
    way: Way,
    clients: int,
    duration_s: int,
    scratch: Path,
    batch_s: float,
) -> dict[str, Any]:
    """One load run of ``way`` at ``clients`` connections: the load tool's numbers, the batch
    sizes the handler got and the server's CPU time per request. ``batch_s``: about how long
    one batch takes, so that the run ends only when the batches it left are done."""
    body_file = scratch / f"{way.label.replace(' ', '-')}.bin"
    if not body_file.exists():
        body_file.write_bytes(way.body)
    quiet_s = SETTLE_BATCHES * batch_s
    before = settled_batches(server, way.model, quiet_s)
    cpu_before = serving.cpu_seconds(server)
    if way.label == V2_GRPC:
        raw = (grpc_load.MODEL_INFER_METHOD, body_file)
        result = grpc_load.run_in_subprocess(
            server.grpc_inference, "raw", way.model, clients, duration_s, raw=raw
        )
    else:
        extra = [item for pair in way.headers.items() for item in pair]
        script_args = (str(body_file), way.content_type, *extra)
        url = server.inference + way.path
        report = wrk_output(url, clients, duration_s, POST_SCRIPT, script_args, WRK_TIMEOUT_S)
        result = parse_report(report).as_dict()
    executed = settled_batches(server, way.model, quiet_s) - before
    cpu = cpu_per_request(cpu_before, serving.cpu_seconds(server), executed)
    return {**result, **batch_summary(executed), **cpu}


# ----- the measurement


def measure_all(scratch: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Build the model, check every way's answer, then the rounds; the server always stops."""
    torch.set_num_threads(args.threads)
    width = SMOKE_WIDTH if args.smoke else RESNET_WIDTH
    progress(f"building the ResNet-18-sized CNN (width {width})")
    models_dir = scratch / "models"
    models_dir.mkdir()
    files = prepare_resnet(models_dir, width=width)
    tensor = np.frombuffer(files.body, dtype=np.float32).reshape(1, *RESNET_SHAPE)
    ways = build_ways(tensor)
    services = load_services(files)
    expected = {way.label: in_process_class(services[way.model], way) for way in ways}
    store = scratch / "model_store"
    store.mkdir()
    build_archives(files, store)
    in_process_runs, server_runs = [], []
    settings = {"worker_threads": args.threads, "reuse_large_buffers": not args.no_buffer_reuse}
    with serving.running_server(scratch / "server", store, settings) as server:
        for model in HANDLERS:
            serving.register(
                server,
                f"{model}.mar",
                batch_size=BATCH_SIZE,
                max_batch_delay_ms=MAX_BATCH_DELAY_MS,
            )
        serving.wait_healthy(server)
        for way in ways:
            answered = served_class(server, way)
            if answered != expected[way.label]:
                raise server.fail(
                    f"{way.label}: the server answered class {answered}, in-process "
                    f"{expected[way.label]}"
                )
            # Warm-up; one batch takes a second or two on a busy core before it is measured.
            load_run(server, way, max(args.concurrency), WARM_UP_S, scratch, WARM_UP_BATCH_S)
        for round_index in range(1, args.rounds + 1):
            for way in ways:
                alone = run_in_process(services[way.model], way, args.duration)
                in_process_runs.append({"round": round_index, "way": way.label, **alone})
                progress(
                    f"round {round_index} {way.label} in-process: "
                    f"{alone['requests_per_s']:.1f} req/s"
                )
                for clients in args.concurrency:
                    batch_s = alone["p99_ms"] / 1000
                    run = load_run(server, way, clients, args.duration, scratch, batch_s)
                    progress(
                        f"round {round_index} {way.label} c={clients}: "
                        f"{run['requests_per_s']:.1f} req/s, mean batch {run['mean_batch']:.2f}, "
                        f"{run['errors']} errors"
                    )
                    server_runs.append(
                        {"round": round_index, "way": way.label, "concurrency": clients, **run}
                    )
    progress("timing the copies of each body alone")
    return {
        "ways": [
            {"way": way.label, "model": way.model, "payload_bytes": way.payload_bytes}
            for way in ways
        ],
        "expected_class": expected,
        "in_process_runs": in_process_runs,
        "server_runs": server_runs,
        "copies": copy_costs(ways),
    }


def copy_costs(ways: list[Way]) -> list[dict[str, Any]]:
    """Each step that copies or decodes a body, timed alone on the real bodies, in us per
    request."""
    by_label = {way.label: way for way in ways}
    jpeg = by_label[JPEG_RAW].body
    form = by_label[JPEG_MULTIPART]
    binary = by_label[V2_BINARY].body
    json_length = by_label[V2_BINARY].headers[HEADER_LENGTH]
    tensor_data = by_label[V2_GRPC].wire_request.tensors
    assert tensor_data is not None
    raw = bytes(tensor_data.inputs[0].data)
    (neutral,) = as_received([by_label[V2_GRPC].wire_request])
    assert neutral.tensors is not None

    # (way, where, what, copies of the body, the step's time in us)
    steps: list[tuple[str, str, str, int, Callable[[], float]]] = [
        (JPEG_RAW, "frontend", "one copy of the JPEG body", 1, partial(copies.copy_us, jpeg)),
        (
            V2_BINARY,
            "frontend",
            "one copy of the v2 binary body",
            1,
            partial(copies.copy_us, binary),
        ),
        (
            JPEG_MULTIPART,
            "frontend",
            "Starlette's multipart parsing, to the part's bytes",
            2,
            partial(copies.multipart_parse_us, form.body, form.content_type),
        ),
        (
            V2_BINARY,
            "ZeroMQ",
            "the body to the worker, received as bytes (copy=True)",
            1,
            partial(copies.zmq_transfer_us, binary, copy=True),
        ),
        (
            V2_GRPC,
            "ZeroMQ",
            "tensor data to the worker, received as a view (copy=False)",
            0,
            partial(copies.zmq_transfer_us, raw, copy=False),
        ),
        (
            V2_BINARY,
            "worker",
            "decode_infer_request: JSON header, the tensor copied out of the body",
            1,
            partial(copies.median_us, lambda: decode_infer_request(binary, json_length)),
        ),
        (
            V2_GRPC,
            "worker",
            "decode_tensor_request: np.frombuffer over the received frame",
            0,
            partial(copies.median_us, lambda: decode_tensor_request(neutral.tensors)),
        ),
        (
            JPEG_RAW,
            "worker",
            "image_classifier's preprocessing of one image (decode, resize, crop, normalize)",
            0,
            partial(
                copies.median_us, lambda: IMAGENET_TRANSFORM(decode_image(jpeg)), repetitions=20
            ),
        ),
    ]
    # This process's allocator as glibc sets it up first; then as reuse_large_buffers sets the
    # server's (for good: mallopt has no way back to glibc's dynamic thresholds).
    default_us = [time_step() for *_, time_step in steps]
    reuse_freed_buffers()
    return [
        {
            "way": way,
            "where": where,
            "what": what,
            "copies": copies_of_body,
            "us": us,
            "us_reusing_buffers": time_step(),
        }
        for (way, where, what, copies_of_body, time_step), us in zip(steps, default_us, strict=True)
    ]


# ----- the report


def summarize(measured: dict[str, Any]) -> list[dict[str, Any]]:
    """Per way and concurrency: medians over rounds of the server's and the in-process
    numbers, MB/s, and the median of the rounds' shares of the in-process limit."""
    sizes = {entry["way"]: entry["payload_bytes"] for entry in measured["ways"]}
    alone: dict[tuple[str, int], dict[str, Any]] = {
        (run["way"], run["round"]): run for run in measured["in_process_runs"]
    }
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in measured["server_runs"]:
        groups.setdefault((run["way"], run["concurrency"]), []).append(run)
    rows = []
    for (way, clients), runs in groups.items():
        paired = [alone[(way, run["round"])] for run in runs]
        served = spread(runs, MEDIAN_KEYS + CPU_KEYS)
        limit = spread(paired, ("requests_per_s", "cpu_us"))
        shares = [
            run["requests_per_s"] / own["requests_per_s"]
            for run, own in zip(runs, paired, strict=True)
        ]
        cpu_shares = [
            own["cpu_us"] / (run["frontend_cpu_us"] + run["worker_cpu_us"])
            for run, own in zip(runs, paired, strict=True)
            if run["frontend_cpu_us"] is not None and run["worker_cpu_us"] is not None
        ]
        rows.append(
            {
                "way": way,
                "concurrency": clients,
                "payload_bytes": sizes[way],
                "server": served,
                "in_process": limit,
                "errors": sum(run["errors"] for run in runs),
                "mb_per_s": served["requests_per_s"] * sizes[way] / BYTES_PER_MB,
                "in_process_mb_per_s": limit["requests_per_s"] * sizes[way] / BYTES_PER_MB,
                "share": statistics.median(shares),
                "cpu_share": statistics.median(cpu_shares) if cpu_shares else None,
            }
        )
    return rows


def _us(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def markdown(report: dict[str, Any]) -> str:
    """The report as a markdown section."""
    env, settings = report["environment"], report["settings"]
    lines = [
        f"## Large payloads ({env['date'][:10]}, {env['host']})",
        "",
        machine_line(env),
        f"- model: ResNet-18-sized CNN (width {settings['width']}, TorchScript, random weights); "
        f"`image_classifier` and `tensor` handlers, 1 worker each, batch {BATCH_SIZE}, "
        f"{MAX_BATCH_DELAY_MS} ms, worker_threads {settings['threads']} (in-process: "
        f"torch.set_num_threads({settings['threads']})); {settings['duration_s']} s per run, "
        f"{settings['rounds']} round(s), in-process and server alternating: medians; "
        f"reuse_large_buffers {str(settings['reuse_large_buffers']).lower()}",
        "- share: the median of the rounds' server req/s over the same round's in-process "
        "req/s; CPU share: in-process CPU per request over the server's (frontend + worker)",
        "",
        "| way | c | body KB | req/s | MB/s | in-process req/s | MB/s | share | mean batch "
        "| p50 ms | p99 ms | errors | CPU us/req: frontend + worker | in-process | CPU share |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: |",
    ]
    for row in report["summary"]:
        served, limit = row["server"], row["in_process"]
        lines.append(
            f"| {row['way']} | {row['concurrency']} | {row['payload_bytes'] / 1000:,.1f} "
            f"| {served['requests_per_s']:.1f} | {row['mb_per_s']:.2f} "
            f"| {limit['requests_per_s']:.1f} | {row['in_process_mb_per_s']:.2f} "
            f"| {_percent(row['share'])} | {served['mean_batch']:.2f} | {served['p50_ms']:.0f} "
            f"| {served['p99_ms']:.0f} | {row['errors']} | {_us(served['frontend_cpu_us'])} + "
            f"{_us(served['worker_cpu_us'])} | {_us(limit['cpu_us'])} "
            f"| {_percent(row['cpu_share'])} |"
        )
    cpu_per_request_us = {row["way"]: row["in_process"]["cpu_us"] for row in report["summary"]}
    lines += [
        "",
        "Each copy or decoding step of a body, timed alone on the real body in this process "
        f"(median of {copies.ROUNDS} rounds), under glibc's allocator as it comes and as "
        "`reuse_large_buffers` sets it, against the in-process CPU time per request of its way:",
        "",
        "| way | where | step | copies of the body | us, glibc default | share | us, reusing "
        "buffers | share |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for entry in report["copies"]:
        budget = cpu_per_request_us.get(entry["way"])

        def share(us: float, budget: float | None = budget) -> str:
            return _percent(us / budget if budget else None)

        lines.append(
            f"| {entry['way']} | {entry['where']} | {entry['what']} | {entry['copies']} "
            f"| {entry['us']:,.1f} | {share(entry['us'])} | {entry['us_reusing_buffers']:,.1f} "
            f"| {share(entry['us_reusing_buffers'])} |"
        )
    lines += [
        "",
        "Every run:",
        "",
        "| round | way | c | req/s | in-process req/s | mean batch | CPU us/req | errors |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    alone = {(run["way"], run["round"]): run for run in report["in_process_runs"]}
    for run in report["server_runs"]:
        own = alone[(run["way"], run["round"])]
        lines.append(
            f"| {run['round']} | {run['way']} | {run['concurrency']} "
            f"| {run['requests_per_s']:.1f} | {own['requests_per_s']:.1f} "
            f"| {run['mean_batch']:.2f} | {_us(run['frontend_cpu_us'])} + "
            f"{_us(run['worker_cpu_us'])} | {run['errors']} |"
        )
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--rounds``, ``--threads`` and ``--no-buffer-reuse``."""
    add_rounds_option(parser, DEFAULT_ROUNDS)
    parser.add_argument(
        "--no-buffer-reuse",
        action="store_true",
        help="serve with reuse_large_buffers=false (glibc's allocator as it comes)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"torch threads, in-process and the worker's worker_threads (default "
        f"{DEFAULT_THREADS})",
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 1 with a message when the server, a load tool or an answer fails."""
    args = parse_load_args(
        __doc__.splitlines()[0],
        argv,
        concurrency=DEFAULT_CONCURRENCY,
        add_arguments=add_arguments,
    )
    if args.threads < 1:
        print("run_payloads: --threads must be at least 1", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        wrk_binary()
        environment = describe_environment(args.duration)
        with tempfile.TemporaryDirectory(prefix="modelserve-payloads-") as scratch:
            measured = measure_all(Path(scratch), args)
    except (serving.ServerError, WrkError, RuntimeError, grpc.RpcError) as exc:
        print(f"run_payloads: {exc}", file=sys.stderr)
        return 1
    report = {
        "environment": environment,
        "settings": {
            "width": SMOKE_WIDTH if args.smoke else RESNET_WIDTH,
            "threads": args.threads,
            "reuse_large_buffers": not args.no_buffer_reuse,
            "batch_size": BATCH_SIZE,
            "max_batch_delay_ms": MAX_BATCH_DELAY_MS,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "goals": {"share": SHARE_GOAL, "copy": COPY_GOAL},
        },
        "summary": summarize(measured),
        **measured,
    }
    publish(args.out, "payloads", report, markdown(report), "run_payloads")
    progress(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
