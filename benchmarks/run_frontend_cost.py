"""The frontend's cost per request: CPU seconds per 1,000 requests of the frontend and its
workers, with req/s and p99, for a no-op handler and a tiny model, unbatched and batched.

    python benchmarks/run_frontend_cost.py [--duration S] [--concurrency 64] [--rounds N]
                                           [--out DIR] [--smoke]

One server serves four versions side by side: the no-op handler and the digits CNN behind the
``tensor`` handler, each unbatched (batch 1) and batched (batch 8 within 5 ms), one worker each.
wrk loads ``/predictions`` (both models) and v2 REST JSON (the digits model) in turn. CPU time
(utime + stime from /proc) of the frontend and of the workers is read before and after each
run: per request, it is robust to the other load on a shared machine, where req/s is not.
Every run is repeated ``--rounds`` times, alternating; the report gives medians. Writes
``<out>/<date>-<host>-frontend-cost.md`` and ``.json``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from loadtest import BATCH_SIZE, MAX_BATCH_DELAY_MS, archives
from loadtest import server as serving
from loadtest.environment import describe_environment
from loadtest.options import add_rounds_option, parse_load_args
from loadtest.report import median_rows, publish
from loadtest.wrk import WrkError, run_wrk, wrk_binary
from run_protocols import MODEL as DIGITS
from run_protocols import POST_SCRIPT, build_model, routes

DEFAULT_ROUNDS = 3
WARM_UP_REQUESTS = 50


@dataclass(frozen=True)
class Target:
    """One way to load one served version: its label, path, body and content type."""

    label: str
    path: str
    body: bytes
    content_type: str


def progress(message: str) -> None:
    print(f"[run_frontend_cost] {message}", file=sys.stderr, flush=True)


def targets() -> list[Target]:
    """Each model unbatched and batched: noop through /predictions, digits through
    /predictions JSON and v2 REST JSON."""
    digits = {route.label: route for route in routes() if not route.is_grpc}
    found: list[Target] = []
    for batching, suffix in (("unbatched", "_1"), ("batched", "_8")):
        found.append(
            Target(f"noop /predictions {batching}", f"/predictions/noop{suffix}", b"x", "")
        )
        for label in ("/predictions JSON", "v2 REST JSON"):
            route = digits[label]
            path = route.path.replace(DIGITS, DIGITS + suffix)
            found.append(Target(f"digits {label} {batching}", path, route.body, route.content_type))
    return found


def settle(server: serving.Server, target: Target) -> None:
    """Wait until what the last run left queued is done: wrk stops with a request in flight
    on each connection, whose work would otherwise land in the next run (and past
    job_queue_size, as 503s). One request more, answered, comes after all of them."""
    response = httpx.post(
        server.inference + target.path,
        content=target.body,
        headers={"Content-Type": target.content_type} if target.content_type else {},
        timeout=60,
    )
    if response.status_code != 200:
        raise server.fail(f"{target.label}: HTTP {response.status_code} {response.text[:500]}")


def register_all(server: serving.Server) -> None:
    """The no-op and digits archives, each as a batch-1 and a batch-8 version."""
    for archive, model in (("noop.mar", "noop"), (f"{DIGITS}.mar", DIGITS)):
        serving.register(server, archive, batch_size=1, max_batch_delay_ms=0, name=f"{model}_1")
        serving.register(
            server,
            archive,
            batch_size=BATCH_SIZE,
            max_batch_delay_ms=MAX_BATCH_DELAY_MS,
            name=f"{model}_8",
        )
    serving.wait_healthy(server)


def measure_once(
    server: serving.Server, target: Target, body_file: Path, clients: int, duration_s: int
) -> dict:
    """One wrk run with the CPU the server's processes spent on it, per 1,000 requests."""
    settle(server, target)
    before = serving.cpu_seconds(server)
    result = run_wrk(
        server.inference + target.path,
        clients,
        duration_s,
        POST_SCRIPT,
        (str(body_file), target.content_type),
    )
    after = serving.cpu_seconds(server)
    run = {"target": target.label, "concurrency": clients, **result.as_dict()}
    if before is not None and after is not None and result.requests:
        per_1k = 1000 / result.requests
        run["frontend_cpu_s_per_1k"] = (after[0] - before[0]) * per_1k
        run["worker_cpu_s_per_1k"] = (after[1] - before[1]) * per_1k
        run["cpu_s_per_1k"] = run["frontend_cpu_s_per_1k"] + run["worker_cpu_s_per_1k"]
    return run


def measure(scratch: Path, duration_s: int, concurrency: list[int], rounds: int) -> list[dict]:
    """Serve the four versions and load each target ``rounds`` times, alternating."""
    store = scratch / "model_store"
    store.mkdir()
    build_model(scratch, store)
    archives.build_noop_archive(store)
    runs: list[dict] = []
    with serving.running_server(scratch / "server", store) as server:
        register_all(server)
        chosen = targets()
        bodies = []
        for index, target in enumerate(chosen):
            body_file = scratch / f"body-{index}.bin"
            body_file.write_bytes(target.body)
            bodies.append(body_file)
            for _ in range(WARM_UP_REQUESTS):  # a wrong body fails here, loudly
                settle(server, target)
        for round_index in range(rounds):
            for target, body_file in zip(chosen, bodies, strict=True):
                for clients in concurrency:
                    progress(f"round {round_index + 1}: {target.label} c={clients}")
                    run = measure_once(server, target, body_file, clients, duration_s)
                    runs.append({"round": round_index + 1, **run})
    return runs


# The errors are summed over the rounds; these are medians.
MEDIAN_FIELDS = (
    "requests_per_s",
    "p99_ms",
    "cpu_s_per_1k",
    "frontend_cpu_s_per_1k",
    "worker_cpu_s_per_1k",
)


def markdown(report: dict) -> str:
    """The medians as a markdown table."""
    env = report["environment"]
    lines = [
        f"## Frontend cost per request ({env.get('date', '')}, {env.get('host', '')}, "
        f"{env.get('commit', '')})",
        "",
        f"One worker per version; batched: {BATCH_SIZE} within {MAX_BATCH_DELAY_MS} ms; "
        f"{report['duration_s']} s per run, median of {report['rounds']} rounds.",
        "",
        "| target | c | req/s | p99 ms | CPU-s/1k | frontend | worker | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["medians"]:
        lines.append(
            f"| {row['target']} | {row['concurrency']} | {row['requests_per_s']:,.0f} | "
            f"{row['p99_ms']:.1f} | {row['cpu_s_per_1k']:.3f} | "
            f"{row['frontend_cpu_s_per_1k']:.3f} | {row['worker_cpu_s_per_1k']:.3f} | "
            f"{row['errors']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 1 with a message when the server or wrk fails."""
    args = parse_load_args(
        __doc__.splitlines()[0],
        argv,
        concurrency=(64,),
        add_arguments=lambda parser: add_rounds_option(parser, DEFAULT_ROUNDS),
    )
    started = time.monotonic()
    try:
        wrk_binary()
        environment = describe_environment(args.duration)
        with tempfile.TemporaryDirectory(prefix="modelserve-frontend-cost-") as scratch:
            runs = measure(Path(scratch), args.duration, args.concurrency, args.rounds)
    except (serving.ServerError, WrkError) as exc:
        print(f"run_frontend_cost: {exc}", file=sys.stderr)
        return 1
    report = {
        "environment": environment,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "runs": runs,
        "medians": median_rows(runs, ("target", "concurrency"), MEDIAN_FIELDS),
    }
    publish(args.out, "frontend-cost", report, markdown(report), "run_frontend_cost", started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
