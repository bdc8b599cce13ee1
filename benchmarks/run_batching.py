"""Dynamic batching on an accelerator-like model: what waiting ``max_batch_delay`` buys.

    python benchmarks/run_batching.py [--duration S] [--concurrency 1 4 8 32] [--rounds N]
                                      [--delays 0 5 20] [--out DIR] [--smoke]

The model (``handlers/accelerator.py``) costs the same 10 ms per batch whatever its size, as a
model on a GPU does; ``batch_size`` is 8. Three deployments: one worker; four workers sharing
one device (they take turns, as worker processes sharing one GPU do); four workers with a
device each. Each deployment is registered once per ``max_batch_delay`` (0: never wait for
batch-mates); at each concurrency the delays are loaded back to back, their order reversed
every round, for several rounds, and the report gives every run and the median per delay,
with the mean batch size the handler saw. ``--smoke``: 1 s runs at concurrency 1 and 4, one
round, the first two deployments. Writes ``<out>/<date>-<host>-batching.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest import BENCH_DIR
from loadtest import server as serving
from loadtest.environment import describe_environment
from loadtest.options import add_rounds_option, parse_load_args
from loadtest.report import median_rows, write_named
from loadtest.wrk import WrkError, run_wrk, wrk_binary
from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions

HANDLER = BENCH_DIR / "handlers" / "accelerator.py"
POST_SCRIPT = BENCH_DIR / "post_body.lua"
BATCH_SIZE = 8
BATCH_MS = 10
DEFAULT_DURATION_S = 5
DEFAULT_CONCURRENCY = (1, 4, 8, 32)
DEFAULT_DELAYS_MS = (0, 5, 20)
DEFAULT_ROUNDS = 3
WARM_UP_REQUESTS = 20
# The log is settled once it has not grown for one poll (batches take 10 ms).
SETTLE_POLL_S = 0.1
SETTLE_POLLS = 50
MEDIAN_KEYS = ("requests_per_s", "p50_ms", "p90_ms", "p99_ms", "mean_batch")


@dataclass(frozen=True)
class Deployment:
    """How many workers serve the model, and whether they share one device."""

    key: str
    label: str
    workers: int
    shared_device: bool

    def device_limit(self) -> float:
        """req/s the devices allow with full batches: the ceiling for this deployment."""
        devices = 1 if self.shared_device else self.workers
        return devices * BATCH_SIZE * 1000 / BATCH_MS


DEPLOYMENTS = (
    Deployment("one", "1 worker", 1, shared_device=True),
    Deployment("shared", "4 workers, one shared device", 4, shared_device=True),
    Deployment("own", "4 workers, a device each", 4, shared_device=False),
)
SMOKE_DEPLOYMENTS = DEPLOYMENTS[:2]


class BatchLog:
    """The file the handler appends each batch's size to; read by offset, run by run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def take(self) -> list[int]:
        """The sizes of the batches logged since the last call, once the server has finished
        the requests wrk left behind (they belong to the run that sent them)."""
        self._settle()
        if not self.path.exists():
            return []
        with self.path.open("rb") as log:
            log.seek(self._offset)
            text = log.read()
        self._offset += len(text)
        return [int(line) for line in text.split()]

    def _settle(self) -> None:
        size = -1
        for _ in range(SETTLE_POLLS):
            latest = self.path.stat().st_size if self.path.exists() else 0
            if latest == size:
                return
            size = latest
            time.sleep(SETTLE_POLL_S)


def progress(message: str) -> None:
    """One line of progress, flushed at once."""
    print(f"[run_batching] {message}", file=sys.stderr, flush=True)


def build_model(store: Path, scratch: Path, deployment: Deployment) -> tuple[str, BatchLog]:
    """The accelerator handler packed for ``deployment``; its archive name and batch log."""
    log = BatchLog(scratch / f"{deployment.key}-batches.log")
    config = scratch / f"{deployment.key}-model-config.yaml"
    settings = {"batch_ms": BATCH_MS, "shared_device": deployment.shared_device}
    config.write_text(json.dumps({"handler": {**settings, "batch_log": str(log.path)}}))
    options = ArchiveOptions(
        model_name=f"accelerator_{deployment.key}",
        version="1.0",
        handler=str(HANDLER),
        config_file=str(config),
        export_path=store,
        force=True,
    )
    return build_archive(options).name, log


def model_name(deployment: Deployment, delay_ms: int) -> str:
    """The registered name of ``deployment`` served with ``delay_ms``."""
    return f"{deployment.key}_delay{delay_ms}"


def load_deployment(
    server: serving.Server,
    archive: str,
    log: BatchLog,
    deployment: Deployment,
    args: argparse.Namespace,
    body_file: Path,
) -> list[dict[str, Any]]:
    """Register ``deployment`` once per delay, run every round, unregister."""
    names = {delay: model_name(deployment, delay) for delay in args.delays}
    for delay, name in names.items():
        progress(f"registering {name}: {deployment.label}, max_batch_delay {delay} ms")
        serving.register(
            server,
            archive,
            batch_size=BATCH_SIZE,
            max_batch_delay_ms=delay,
            workers=deployment.workers,
            name=name,
        )
        answer = serving.warm_up(
            server, name, body_file.read_bytes(), "application/json", WARM_UP_REQUESTS
        )
        if not answer.isdigit():
            raise server.fail(f"{name} answered {answer[:200]!r}")
    log.take()
    runs = []
    for round_index in range(args.rounds):
        # Reversing the order every round keeps a slow drift from favouring one delay.
        delays = args.delays if round_index % 2 == 0 else args.delays[::-1]
        for clients in args.concurrency:
            for delay in delays:
                url = f"{server.inference}/predictions/{names[delay]}"
                result = run_wrk(
                    url, clients, args.duration, POST_SCRIPT, (str(body_file), "application/json")
                )
                sizes = log.take()
                mean_batch = sum(sizes) / len(sizes) if sizes else 0.0
                progress(
                    f"round {round_index + 1} {deployment.key} c={clients} delay={delay}: "
                    f"{result.requests_per_s:,.0f} req/s, p50 {result.p50_ms:.1f} ms, "
                    f"p99 {result.p99_ms:.1f} ms, batch {mean_batch:.2f}, {result.errors} errors"
                )
                runs.append(
                    {
                        "deployment": deployment.key,
                        "max_batch_delay_ms": delay,
                        "concurrency": clients,
                        "round": round_index + 1,
                        **result.as_dict(),
                        "batches": len(sizes),
                        "mean_batch": mean_batch,
                    }
                )
    for name in names.values():
        serving.unregister(server, name)
    return runs


def medians(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per deployment, concurrency and delay: the median of each number over rounds."""
    return median_rows(runs, ("deployment", "concurrency", "max_batch_delay_ms"), MEDIAN_KEYS)


def markdown(report: dict[str, Any]) -> str:
    """The report: setup, then per deployment a table of medians with each delay side by side."""
    env, settings = report["environment"], report["settings"]
    lines = [
        f"## Dynamic batching ({env['date'][:10]}, {env['host']})",
        "",
        f"- machine: {env['cpus']} CPUs ({env['cpu_model']}), load average "
        f"{env['load_average_1min']} at start; Python {env['python']}, {env['wrk']}, "
        f"commit {env['commit']}",
        f"- model: {settings['batch_ms']} ms per batch whatever its size, batch_size "
        f"{settings['batch_size']}; {settings['duration_s']} s per wrk run, "
        f"{settings['rounds']} rounds, medians shown",
    ]
    baseline = settings["delays_ms"][0]
    for deployment in report["deployments"]:
        rows = [row for row in report["medians"] if row["deployment"] == deployment["key"]]
        reference = {
            row["concurrency"]: row["requests_per_s"]
            for row in rows
            if row["max_batch_delay_ms"] == baseline
        }
        lines += [
            "",
            f"### {deployment['label']} (device limit {deployment['device_limit']:,.0f} req/s)",
            "",
            "| c | max_batch_delay ms | req/s | p50 ms | p90 ms | p99 ms | mean batch "
            f"| req/s vs {baseline} ms | errors |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in sorted(rows, key=lambda r: (r["concurrency"], r["max_batch_delay_ms"])):
            ratio = row["requests_per_s"] / reference[row["concurrency"]]
            lines.append(
                f"| {row['concurrency']} | {row['max_batch_delay_ms']} "
                f"| {row['requests_per_s']:,.0f} | {row['p50_ms']:.2f} | {row['p90_ms']:.2f} "
                f"| {row['p99_ms']:.2f} | {row['mean_batch']:.2f} | {ratio:.2f}x "
                f"| {row['errors']} |"
            )
    return "\n".join(lines) + "\n"


def measure(scratch: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Start one server and load each deployment in turn; the server is always stopped."""
    store = scratch / "model_store"
    store.mkdir()
    body_file = scratch / "body.json"
    body_file.write_bytes(b"{}")
    models = [
        (deployment, *build_model(store, scratch, deployment)) for deployment in args.deployments
    ]
    runs: list[dict[str, Any]] = []
    with serving.running_server(scratch / "server", store) as server:
        for deployment, archive, log in models:
            runs += load_deployment(server, archive, log, deployment, args, body_file)
    return runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This script's own options."""
    add_rounds_option(parser, DEFAULT_ROUNDS)
    parser.add_argument(
        "--delays",
        type=int,
        nargs="+",
        metavar="MS",
        default=list(DEFAULT_DELAYS_MS),
        help="max_batch_delay values to compare, the first is the reference (default 0 5 20)",
    )


def main(argv: list[str] | None = None) -> int:
    """Run the batching benchmark; 1 with a message when the server or wrk misbehaves."""
    args = parse_load_args(
        __doc__.splitlines()[0],
        argv,
        duration_s=DEFAULT_DURATION_S,
        concurrency=DEFAULT_CONCURRENCY,
        add_arguments=add_arguments,
    )
    args.deployments = SMOKE_DEPLOYMENTS if args.smoke else DEPLOYMENTS
    started = time.monotonic()
    try:
        wrk_binary()
        environment = describe_environment(args.duration)
        with tempfile.TemporaryDirectory(prefix="modelserve-batching-") as scratch:
            runs = measure(Path(scratch), args)
    except (serving.ServerError, WrkError) as exc:
        print(f"run_batching: {exc}", file=sys.stderr)
        return 1
    report = {
        "environment": environment,
        "settings": {
            "batch_size": BATCH_SIZE,
            "batch_ms": BATCH_MS,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "delays_ms": args.delays,
            "concurrency": args.concurrency,
        },
        "deployments": [
            {
                "key": deployment.key,
                "label": deployment.label,
                "workers": deployment.workers,
                "shared_device": deployment.shared_device,
                "device_limit": deployment.device_limit(),
            }
            for deployment in args.deployments
        ],
        "runs": runs,
        "medians": medians(runs),
    }
    text = markdown(report)
    stem = write_named(args.out, "batching", report, text)
    print(text, flush=True)
    progress(f"wrote {stem}.md and .json in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
