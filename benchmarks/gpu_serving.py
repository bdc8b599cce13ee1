"""A ResNet-18-sized CNN through the real server against its handler in-process, on one device.

    python benchmarks/gpu_serving.py --device cuda|cpu --json FILE [--duration S]
                                     [--concurrency C ...]

``gpu_check.py`` runs it with the interpreter it prepared. On ``cuda``: ResNet-18 (11.7M
parameters, random weights, 3x224x224 FP32 bodies of 588 KiB) on ``cuda:0``; on ``cpu``: the
same network in miniature (width 8, 3x32x32) as a smoke pass of the same code.

1. **In-process**: ``handlers/tensor_argmax.py`` called as a worker calls it, on batches of 1
   and of 8 back to back (with ``gpu_id`` 0 on ``cuda``), before the server starts.
2. **Through modelserve**: ``modelserve start`` on free loopback ports; the archive carries a
   model config placing it with ``deviceType: gpu`` and ``deviceIds: [0]`` (a machine without
   a GPU serves it on the CPU), registered unbatched and with batches of 8 within 5 ms. Each
   worker's describe entry must say it got the GPU exactly when there is one.
3. At each concurrency, ``loadtest.http_load`` POSTs the raw body: req/s, p50/p99, errors, the
   generator's own CPU share, the frontend's and the worker's CPU seconds per 1,000 requests
   (``/proc``, before and after), and on ``cuda`` how busy NVML saw the GPU meanwhile.
4. **Ceiling**: the no-op handler (batch 8) with the same body at the highest concurrency:
   the frontend and the generator together, with no model.

Writes one JSON object to ``--json``; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import yaml
from compare.models import (
    RAW_CONTENT_TYPE,
    ModelFiles,
    in_process_limit,
    prepare_noop,
    prepare_resnet,
)
from compare.scenarios import BATCHED, UNBATCHED
from loadtest import http_load
from loadtest import server as serving
from loadtest.archives import build_noop_archive
from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions

BATCHINGS = (UNBATCHED, BATCHED)  # batch size, max batch delay in ms
# The CPU smoke pass: ResNet-18's layout at width 8 on 32x32 images.
SMOKE_SHAPE, SMOKE_WIDTH = (3, 32, 32), 8
PLACEMENT = {"deviceType": "gpu", "deviceIds": [0]}
WARM_UP_REQUESTS = 20
NVML_SAMPLE_S = 0.1
PER_1K = 1000


def progress(message: str) -> None:
    """One line of progress, flushed at once."""
    print(f"[gpu_serving] {message}", file=sys.stderr, flush=True)


def pack_resnet(files: ModelFiles, store: Path) -> str:
    """``resnet.mar`` in ``store``, placed on GPU 0 by its model config; its file name."""
    assert files.serialized is not None
    config = store.parent / "model-config.yaml"
    config.write_text(yaml.safe_dump(PLACEMENT))
    options = ArchiveOptions(
        model_name=files.name,
        version="1.0",
        handler=str(files.handler),
        serialized_file=str(files.serialized),
        config_file=str(config),
        export_path=store,
        force=True,
    )
    return build_archive(options).name


def worker_gpus(server: serving.Server, model: str) -> list[bool]:
    """Whether each of the model's workers runs on a GPU, from its describe entry."""
    response = httpx.get(f"{server.management}/models/{model}", timeout=30)
    if response.status_code != 200:
        raise server.fail(f"describing {model}: HTTP {response.status_code} {response.text}")
    return [worker["gpu"] for version in response.json() for worker in version["workers"]]


def deploy(
    server: serving.Server, archive: str, files: ModelFiles, name: str, batching: tuple[int, int]
) -> None:
    """Register ``archive`` as ``name`` and check its answer over a warm-up."""
    batch_size, delay_ms = batching
    serving.register(server, archive, batch_size=batch_size, max_batch_delay_ms=delay_ms, name=name)
    answer = serving.warm_up(server, name, files.body, files.content_type, WARM_UP_REQUESTS)
    if not files.answer_ok(answer):
        raise server.fail(f"{name} answered {answer[:200]!r}, not {files.expected!r}")


@contextmanager
def gpu_busy(enabled: bool) -> Iterator[list[int]]:
    """NVML's utilisation of GPU 0 (percent of time a kernel ran), sampled every 0.1 s while
    the block runs; no samples when not ``enabled``."""
    samples: list[int] = []
    if not enabled:
        yield samples
        return
    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(NVML_SAMPLE_S):
            samples.append(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield samples
    finally:
        stop.set()
        sampler.join()
        pynvml.nvmlShutdown()


def load_run(
    server: serving.Server,
    model: str,
    files: ModelFiles,
    concurrency: int,
    duration_s: int,
    on_gpu: bool,
) -> dict[str, Any]:
    """One load run against ``model``, with the server's CPU and the GPU's use during it."""
    body_file = server.log_path.parent / "body.bin"
    body_file.write_bytes(files.body)
    url = f"{server.inference}/predictions/{model}"
    before = serving.cpu_seconds(server)
    with gpu_busy(on_gpu) as samples:
        result = http_load.run_in_subprocess(
            url, body_file, files.content_type, concurrency, duration_s
        )
    after = serving.cpu_seconds(server)
    answered = result["requests"]
    per_1k: dict[str, float | None] = {"frontend": None, "worker": None}
    if before and after and answered:
        for index, process in enumerate(per_1k):
            per_1k[process] = (after[index] - before[index]) * PER_1K / answered
    return {
        "model": model,
        "concurrency": concurrency,
        **result,
        "frontend_cpu_s_per_1k": per_1k["frontend"],
        "worker_cpu_s_per_1k": per_1k["worker"],
        "gpu_busy_percent": statistics.fmean(samples) if samples else None,
    }


def through_server(
    scratch: Path, files: ModelFiles, concurrency: list[int], duration_s: int, on_gpu: bool
) -> dict[str, Any]:
    """The server's part: each batching at each concurrency, then the no-op ceiling."""
    store = scratch / "model_store"
    store.mkdir()
    archive = pack_resnet(files, store)
    noop = replace(prepare_noop(), body=files.body, content_type=RAW_CONTENT_TYPE)
    noop_archive = build_noop_archive(store).name
    runs, placement = [], {}
    with serving.running_server(scratch / "server", store) as server:
        for batching in BATCHINGS:
            name = f"{files.name}-b{batching[0]}"
            deploy(server, archive, files, name, batching)
            placement[name] = worker_gpus(server, name)
            if placement[name] != [on_gpu]:
                raise server.fail(f"{name}'s workers report gpu={placement[name]}")
            for clients in concurrency:
                run = load_run(server, name, files, clients, duration_s, on_gpu)
                runs.append({"batch_size": batching[0], **run})
                progress(f"{name} at c={clients}: {run['requests_per_s']:,.0f} req/s")
        deploy(server, noop_archive, noop, noop.name, BATCHED)
        ceiling = load_run(server, noop.name, noop, max(concurrency), duration_s, False)
    return {
        "worker_gpu": placement,
        "runs": runs,
        "ceiling": {"batch_size": BATCHED[0], **ceiling, "of_in_process": None},
    }


def measure(device: str, duration_s: int, concurrency: list[int], scratch: Path) -> dict[str, Any]:
    """Everything the module docstring lists, as JSON-ready data."""
    on_gpu = device == "cuda"
    models_dir = scratch / "models"
    models_dir.mkdir()
    size = {} if on_gpu else {"shape": SMOKE_SHAPE, "width": SMOKE_WIDTH}
    files = prepare_resnet(models_dir, **size)
    progress(f"model ready: input {files.input_shape}, {len(files.body):,} bytes per request")
    in_process = []
    for batch_size, _ in BATCHINGS:
        limit = in_process_limit(files, batch_size, duration_s, 0 if on_gpu else None)
        in_process.append(limit)
        progress(f"in-process, batch {batch_size}: {limit['requests_per_s']:,.0f} req/s")
    served = through_server(scratch, files, concurrency, duration_s, on_gpu)
    limits = {limit["batch_size"]: limit["requests_per_s"] for limit in in_process}
    for run in served["runs"]:
        run["of_in_process"] = run["requests_per_s"] / limits[run["batch_size"]]
    return {
        "device": "cuda:0" if on_gpu else "cpu",
        "duration_s": duration_s,
        "model": {
            "name": files.name,
            "input_shape": list(files.input_shape or ()),
            "body_bytes": len(files.body),
        },
        "in_process": in_process,
        **served,
    }


def main(argv: list[str] | None = None) -> None:
    """Parse the options, measure, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], required=True)
    parser.add_argument("--json", type=Path, required=True, help="where the results go")
    parser.add_argument("--duration", type=int, default=5, help="seconds per run (default 5)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 16, 64], help="(default 1 16 64)"
    )
    args = parser.parse_args(argv)
    # Stopped at gpu_check's time limit: leave through the context managers, which stop the
    # server and remove the scratch directory.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("[gpu_serving] stopped by SIGTERM"))
    with tempfile.TemporaryDirectory(prefix="gpu-serving-") as scratch:
        results = measure(args.device, args.duration, args.concurrency, Path(scratch))
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
