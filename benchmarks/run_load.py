"""Load-test modelserve with wrk and compare it with the same handlers called in-process.

    python benchmarks/run_load.py [--duration S] [--concurrency 1 16 64] [--out DIR] [--smoke]

Builds a no-op and the digits archive, measures both handlers in this process, starts a real
server on free loopback ports, runs wrk against each model at each concurrency and against
/ping, stops the server, and writes ``<out>/<date>-<host>.md`` and ``.json``. See README.md.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loadtest import BATCH_SIZE, BENCH_DIR, DIGITS_DIR, MAX_BATCH_DELAY_MS, archives, in_process
from loadtest import server as serving
from loadtest.environment import describe_environment
from loadtest.options import parse_load_args
from loadtest.report import LoadRun, Report, write
from loadtest.wrk import WrkError, WrkResult, run_wrk, wrk_binary

PING_CONCURRENCY = 64
WARM_UP_REQUESTS = 50
POST_SCRIPT = BENCH_DIR / "post_body.lua"
DIGITS_SAMPLE = DIGITS_DIR / "sample.json"
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class ServedModel:
    """A model under load: the body every request carries and how to tell a right answer."""

    name: str
    body_file: Path
    content_type: str
    answer_ok: Callable[[bytes], bool]


def noop_answer_ok(body: bytes) -> bool:
    """The no-op handler's bytes come back untouched."""
    return body == b"ok"


def digits_answer_ok(body: bytes) -> bool:
    """The digits handler answers with a JSON object holding the predicted digit."""
    try:
        return "digit" in json.loads(body)
    except ValueError:
        return False


def progress(message: str) -> None:
    """One line of progress, flushed at once so a slow stage shows where it is."""
    print(f"[run_load] {message}", flush=True)


def describe_run(result: WrkResult) -> str:
    """The headline numbers of a wrk run, for progress lines."""
    return (
        f"{result.requests_per_s:,.0f} req/s, p50 {result.p50_ms:.3f} ms, "
        f"p99 {result.p99_ms:.3f} ms, {result.errors} errors"
    )


def measure_in_process(artifacts: Path, duration_s: int) -> list[in_process.InProcessResult]:
    """The handlers alone: noop on one request; digits on one and on a full batch."""
    progress(f"in-process: noop, batch 1, {duration_s} s")
    limits = [in_process.noop_limit(duration_s)]
    progress(f"in-process: digits, batches of 1 and {BATCH_SIZE}, {duration_s} s each")
    sample = json.loads(DIGITS_SAMPLE.read_bytes())
    limits += in_process.digits_limits(artifacts, sample, duration_s, (1, BATCH_SIZE))
    for limit in limits:
        progress(
            f"  {limit.model} batch {limit.batch_size}: {limit.requests_per_s:,.0f} req/s, "
            f"p50 {limit.p50_ms:.4f} ms"
        )
    return limits


def load_model(
    server: serving.Server, model: ServedModel, duration_s: int, concurrency: list[int]
) -> list[LoadRun]:
    """Check that ``model`` answers right, then run wrk on it at each concurrency."""
    progress(f"warming up {model.name} with {WARM_UP_REQUESTS} requests")
    body = model.body_file.read_bytes()
    answer = serving.warm_up(server, model.name, body, model.content_type, WARM_UP_REQUESTS)
    if not model.answer_ok(answer):
        raise server.fail(f"{model.name} answered {answer[:200]!r}")
    url = f"{server.inference}/predictions/{model.name}"
    script_args = (str(model.body_file), model.content_type)
    runs = []
    for clients in concurrency:
        progress(f"wrk {model.name} c={clients} for {duration_s} s")
        result = run_wrk(url, clients, duration_s, POST_SCRIPT, script_args)
        progress(f"  {describe_run(result)}")
        runs.append(LoadRun(model.name, clients, result))
    return runs


def load_server(
    scratch: Path, store: Path, models: list[ServedModel], duration_s: int, concurrency: list[int]
) -> tuple[list[LoadRun], LoadRun]:
    """Serve ``models`` from ``store`` and run wrk on each, then on /ping; always stop it."""
    progress("starting the server")
    with serving.running_server(scratch / "server", store) as server:
        progress(f"server answering at {server.inference}")
        for model in models:
            progress(f"registering {model.name}")
            serving.register(
                server,
                f"{model.name}.mar",
                batch_size=BATCH_SIZE,
                max_batch_delay_ms=MAX_BATCH_DELAY_MS,
            )
        serving.wait_healthy(server)
        runs = [
            run for model in models for run in load_model(server, model, duration_s, concurrency)
        ]
        progress(f"wrk GET /ping c={PING_CONCURRENCY} for {duration_s} s")
        ping_result = run_wrk(server.inference + "/ping", PING_CONCURRENCY, duration_s)
        progress(f"  {describe_run(ping_result)}")
        progress("stopping the server")
    return runs, LoadRun("ping", PING_CONCURRENCY, ping_result)


def benchmark(scratch: Path, duration_s: int, concurrency: list[int]) -> Report:
    """Build the archives, measure in-process, then under load; everything temporary in scratch."""
    environment = describe_environment(duration_s)
    progress("building archives: noop, digits")
    store = scratch / "model_store"
    store.mkdir()
    archives.build_noop_archive(store)
    artifacts = archives.digits_artifacts(scratch / "digits")
    archives.build_digits_archive(store, artifacts)
    noop_body = scratch / "noop-body.json"
    noop_body.write_bytes(b"{}")
    models = [
        ServedModel("noop", noop_body, JSON_TYPE, noop_answer_ok),
        ServedModel("digits", DIGITS_SAMPLE, JSON_TYPE, digits_answer_ok),
    ]
    limits = measure_in_process(artifacts, duration_s)
    runs, ping = load_server(scratch, store, models, duration_s, concurrency)
    return Report(environment, runs, limits, ping)


def main(argv: list[str] | None = None) -> int:
    """Run the whole benchmark; 1 with a message when the server or wrk misbehaves."""
    args = parse_load_args(__doc__.splitlines()[0], argv)
    try:
        wrk_binary()  # before any training or serving
        with tempfile.TemporaryDirectory(prefix="modelserve-bench-") as scratch:
            report = benchmark(Path(scratch), args.duration, args.concurrency)
    except (serving.ServerError, WrkError) as exc:
        print(f"run_load: {exc}", file=sys.stderr)
        return 1
    markdown, data = write(report, args.out)
    print(report.markdown(), flush=True)
    progress(f"wrote {markdown} and {data}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
