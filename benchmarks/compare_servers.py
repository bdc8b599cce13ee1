"""Compare modelserve with TorchServe 0.12, Triton (PyTriton), Ray Serve, BentoML, MLServer,
LitServe and the in-process limit.

    python benchmarks/compare_servers.py [--smoke] [--out DIR] [--only modelserve,torchserve]
                                         [--models mlp] [--duration S] [--rounds N] [--cache DIR]

Installs each competitor into its own venv under the cache (default ``.bench-cache/``), builds
four models (no-op, digits CNN, tiny MLP, ResNet-18-sized CNN), measures each handler in this
process, then starts every server and, for each deployment, deploys it on every server that
can take it and runs wrk against them back to back at each concurrency, round after round, so
slow drifts of the machine hit all servers alike; the report shows each run's median over the
rounds, with the CPU seconds per 1,000 requests and the resident memory of the server's whole
process tree. Writes ``<out>/<date>-<host>-compare.json``, ``.md`` and PNG plots.
See docs/performance.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import astuple
from pathlib import Path
from typing import Any

from compare import report
from compare.load import LoadResult, load, warm_up
from compare.models import ModelFiles, in_process_limit, prepare_models
from compare.plots import write_plots
from compare.resources import cpu_s_per_1k, cpu_seconds, paused, rss_mib
from compare.rounds import median_of_rounds
from compare.scenarios import (
    DEPLOY_S,
    PROFILED,
    SERVER_ORDER,
    SLOW_DEPLOY_S,
    WRK_OVERHEAD_S,
    Group,
    estimate_s,
    in_process_configs,
    plan,
)
from compare.servers import NotSupported, ServerTarget, request_body
from compare.venvs import STAMP_NAME
from loadtest import BENCH_DIR, REPO_ROOT
from loadtest.environment import describe_environment
from loadtest.wrk import WrkError, run_wrk, wrk_binary

DEFAULT_DURATION_S = 10
DEFAULT_ROUNDS = 3
SMOKE_DURATION_S = 1
DEFAULT_CONCURRENCY = [1, 16, 64]
SMOKE_CONCURRENCY = [1, 4]
MODELS = ["noop", "digits", "mlp", "resnet"]
SMOKE_MODELS = ["noop", "digits", "mlp"]
PING_CONCURRENCY = 64
WARM_UP_REQUESTS = 20
DEFAULT_CACHE = REPO_ROOT / ".bench-cache"
# Servers that run from this venv, so smoke runs always include them.
IN_TREE = {"modelserve", "modelserve-v2"}
# Imported only when asked for, so a competitor's module cannot get in the way of the others.
TARGETS = {
    "modelserve": ("compare.modelserve_target", "ModelserveTarget"),
    "modelserve-v2": ("compare.modelserve_target", "ModelserveV2Target"),
    "torchserve": ("compare.torchserve_target", "TorchServeTarget"),
    "triton": ("compare.triton_target", "TritonTarget"),
    "rayserve": ("compare.rayserve_target", "RayServeTarget"),
    "rayserve-default": ("compare.rayserve_target", "RayServeDefaultTarget"),
    "bentoml": ("compare.bentoml_target", "BentoMLTarget"),
    "mlserver": ("compare.mlserver_target", "MLServerTarget"),
    "litserve": ("compare.litserve_target", "LitServeTarget"),
}


def progress(message: str) -> None:
    """One line of progress, flushed at once."""
    print(f"[compare] {message}", flush=True)


def minutes(seconds: float) -> str:
    """``3m05s``."""
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def make_target(name: str) -> ServerTarget:
    """A fresh target for server ``name``."""
    module, cls = TARGETS[name]
    return getattr(importlib.import_module(module), cls)()


def venv_cached(cache: Path, name: str) -> bool:
    """Whether a completed venv for ``name`` is in the cache already (smoke runs use only
    those, since installing needs the network and minutes)."""
    return any(cache.glob(f"{name}*/{STAMP_NAME}"))


class Comparison:
    """One comparison run: its targets, what it measured so far and its progress."""

    def __init__(
        self, servers: list[str], duration_s: int, rounds: int, groups: list[Group]
    ) -> None:
        self.targets = {name: make_target(name) for name in servers}
        self.alive = set(servers)
        self.duration_s = duration_s
        self.rounds = rounds
        self.groups = groups
        self.started = time.monotonic()
        self.runs_total = sum(group.runs for group in groups) * rounds
        self.runs_done = 0
        self.runs: list[dict[str, Any]] = []
        self.cold_start_s: dict[str, float | None] = {}
        self.register_s: dict[str, float] = {}
        self.memory_mb: dict[str, dict[str, float]] = {}
        self.skipped: list[dict[str, str]] = []
        self.failures: list[dict[str, str]] = []

    def fail(self, server: str, stage: str, error: BaseException, drop: bool = True) -> None:
        """Record a server's failure and, with ``drop``, leave it out of everything after."""
        progress(f"FAILED: {server} ({stage}): {error}")
        self.failures.append({"server": server, "stage": stage, "error": str(error)[-2000:]})
        if drop:
            self.alive.discard(server)

    def install(self, cache: Path) -> None:
        """Every target's venv, created once under ``cache``."""
        for name, target in self.targets.items():
            progress(f"installing {name} (cached after the first time)")
            started = time.monotonic()
            try:
                target.install(cache)
            except Exception as exc:  # no Java, no network: the others still get measured
                self.fail(name, "install", exc)
                continue
            progress(f"  {name} ready in {time.monotonic() - started:.0f} s")

    def start(self, scratch: Path) -> None:
        """Start every server, one at a time so each cold start has the machine alone."""
        for name, target in self.targets.items():
            if name not in self.alive:
                continue
            progress(f"starting {name}")
            try:
                cold = target.start(scratch / name)
            # Competitors fail in their own ways (a JVM, pip-installed servers); one failing
            # must not cost the measurements of the others.
            except Exception as exc:
                self.fail(name, "start", exc)
                continue
            # 0.0: the server loads its model at start, so deploy() does the real start.
            self.cold_start_s[name] = cold or None
            progress(f"  {name} answering after {cold:.2f} s")

    def stop(self) -> None:
        """Stop every server; each gets its stop() whatever the others do."""
        for name, target in self.targets.items():
            try:
                target.stop()
            except Exception as exc:
                self.fail(name, "stop", exc)

    def deploy(
        self, group: Group, files: ModelFiles, bodies: Path
    ) -> dict[str, tuple[str, Path, str]]:
        """Deploy the group's deployment on each live server and warm it up; for each server
        that took it: the URL, the request body's file and its content type."""
        deployment = group.deployment
        where = report.describe_deployment(astuple(deployment))
        endpoints = {}
        for name in group.servers:
            if name not in self.alive:
                continue
            target = self.targets[name]
            progress(f"deploying {where} on {name}")
            try:
                endpoint = target.deploy(deployment, files)
                body, content_type = request_body(target, files)
                warm_up(endpoint.url, body, content_type, WARM_UP_REQUESTS)
            except NotSupported as exc:
                self.skipped.append({"server": name, "deployment": where, "reason": str(exc)})
                progress(f"  {name} cannot: {exc}")
                continue
            except Exception as exc:
                self.fail(name, f"deploy {where}", exc)
                continue
            body_file = bodies / f"{name}-{files.name}.body"
            body_file.write_bytes(body)
            endpoints[name] = (endpoint.url, body_file, content_type)
            if deployment == PROFILED:
                self.register_s[name] = endpoint.register_s
                self.memory_mb[name] = target.memory_mb()
                used = ", ".join(
                    f"{part} {mib:.0f} MiB" for part, mib in self.memory_mb[name].items()
                )
                progress(f"  {name}: ready {endpoint.register_s:.2f} s after register; {used}")
        return endpoints

    def clock(self) -> str:
        """``[12/73, 2m05s elapsed, ~5m10s of wrk left]`` for progress lines."""
        elapsed = minutes(time.monotonic() - self.started)
        left = (self.runs_total - self.runs_done + 1) * (self.duration_s + WRK_OVERHEAD_S)
        return (
            f"[{self.runs_done}/{self.runs_total}, {elapsed} elapsed, ~{minutes(left)} of wrk left]"
        )

    def run_group(self, group: Group, files: ModelFiles, bodies: Path) -> None:
        """Deploy; in each round, load every server at each concurrency back to back;
        undeploy."""
        endpoints = self.deploy(group, files, bodies)
        for round_index in range(1, self.rounds + 1):
            for concurrency in group.concurrency:
                for name, (url, body_file, content_type) in endpoints.items():
                    self.runs_done += 1
                    progress(
                        f"{self.clock()} round {round_index}: wrk {name} {files.name} "
                        f"c={concurrency}"
                    )
                    pid = self.targets[name].root_pid()
                    # The other servers stay deployed but stopped, so they take no CPU from it.
                    others = {
                        self.targets[other].root_pid()
                        for other in endpoints
                        if getattr(self.targets[other], "pausable", True)
                    } - {pid}
                    cpu_before = cpu_seconds(pid)
                    try:
                        with paused(others):
                            result = load(
                                url, body_file, content_type, concurrency, self.duration_s
                            )
                    except WrkError as exc:
                        # One bad run (too short for a slow model, say): the server stays in.
                        self.fail(name, f"wrk {files.name} c={concurrency}", exc, drop=False)
                        continue
                    usage = {
                        "cpu_s": cpu_seconds(pid) - cpu_before,
                        "rss_mib": rss_mib(pid),
                        "round": round_index,
                    }
                    self.record(name, group, concurrency, result, usage)
        for name in endpoints:
            try:
                self.targets[name].undeploy(group.deployment.model)
            except Exception as exc:
                self.fail(name, f"undeploy {group.deployment.model}", exc)

    def record(
        self,
        server: str,
        group: Group,
        concurrency: int,
        result: LoadResult,
        usage: dict[str, Any],
    ) -> None:
        """Keep one wrk run with what it cost the server (``usage``: ``cpu_s`` over the run,
        ``rss_mib`` after it, ``round``) and print its headline numbers."""
        wrk = result.wrk
        per_1k = cpu_s_per_1k(usage["cpu_s"], wrk.requests)
        progress(
            f"  {wrk.requests_per_s:,.0f} req/s, p50 {wrk.p50_ms:.2f} ms, p99 {wrk.p99_ms:.2f} ms,"
            f" max {wrk.max_ms:.1f} ms, {wrk.errors} errors; CPU {usage['cpu_s']:.1f} s"
            f" ({'—' if per_1k is None else f'{per_1k:.2f}'} s per 1k requests),"
            f" RSS {usage['rss_mib']:,.0f} MiB"
        )
        deployment = group.deployment
        self.runs.append(
            {
                "server": server,
                "model": deployment.model,
                "workers": deployment.workers,
                "batch_size": deployment.batch_size,
                "max_batch_delay_ms": deployment.max_batch_delay_ms,
                "concurrency": concurrency,
                **result.as_dict(),
                **usage,
                "cpu_s_per_1k": per_1k,
            }
        )

    def ping_ceiling(self) -> dict[str, Any] | None:
        """wrk against modelserve's GET /ping: the most this load generator and our HTTP
        layer do together on this machine."""
        if "modelserve" not in self.alive:
            return None
        progress(f"wrk GET /ping on modelserve, c={PING_CONCURRENCY}")
        url = self.targets["modelserve"].ping_url
        result = run_wrk(url, PING_CONCURRENCY, self.duration_s)
        progress(f"  {result.requests_per_s:,.0f} req/s, {result.errors} errors")
        return {"concurrency": PING_CONCURRENCY, **result.as_dict()}


def measure_in_process(
    groups: list[Group], files: dict[str, ModelFiles], duration_s: int
) -> list[dict[str, Any]]:
    """Each handler called in this process at each batch size the groups use; done before
    any server starts so nothing else competes for the CPU."""
    limits = []
    for model, batch_size in in_process_configs(groups):
        progress(f"in-process limit: {model}, batch {batch_size}, {duration_s} s")
        limit = in_process_limit(files[model], batch_size, duration_s)
        progress(f"  {limit['requests_per_s']:,.0f} req/s, p50 {limit['p50_ms']:.4f} ms per call")
        limits.append({**limit, "model": model, "batch_size": batch_size})
    return limits


def compare(args: argparse.Namespace, servers: list[str], groups: list[Group]) -> dict[str, Any]:
    """Run everything in a scratch folder; every server is stopped whatever happens."""
    environment = describe_environment(args.duration)
    comparison = Comparison(servers, args.duration, args.rounds, groups)
    comparison.install(args.cache)
    with tempfile.TemporaryDirectory(prefix="modelserve-compare-") as tmp:
        scratch = Path(tmp)
        progress("building the models")
        files = prepare_models(scratch)
        limits = measure_in_process(groups, files, args.duration)
        bodies = scratch / "bodies"
        bodies.mkdir()
        try:
            comparison.start(scratch)
            for group in groups:
                comparison.run_group(group, files[group.deployment.model], bodies)
            ping = comparison.ping_ceiling()
        finally:
            progress("stopping every server")
            comparison.stop()
    results = {
        "environment": environment,
        "settings": {
            "servers": servers,
            "models": args.models,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "smoke": args.smoke,
        },
        "wall_s": time.monotonic() - comparison.started,
        "cold_start_s": comparison.cold_start_s,
        "register_s": comparison.register_s,
        "memory_mb": comparison.memory_mb,
        "in_process": limits,
        # The report reads the medians; every round's own numbers stay beside them.
        "runs": median_of_rounds(comparison.runs),
        "round_runs": comparison.runs,
        "ping": ping,
        "skipped": comparison.skipped,
        "failures": comparison.failures,
    }
    results["goals"] = report.goals(results)
    return results


def write(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """The JSON, the plots and the markdown report that shows them; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = results["environment"]
    # Not "<date>-<host>.json": run_load.py writes that one into the same folder.
    stem = f"{env['date'][:10]}-{env['host']}-compare"
    data = out_dir / f"{stem}.json"
    data.write_text(json.dumps(results, indent=2) + "\n")
    plots = write_plots(results, out_dir, stem)
    markdown = out_dir / f"{stem}.md"
    markdown.write_text(report.markdown(results, [plot.name for plot in plots]))
    return [data, markdown, *plots]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; ``--smoke`` changes the defaults, explicit flags still win."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument(
        "--duration",
        type=int,
        metavar="S",
        help=f"seconds per wrk run (default {DEFAULT_DURATION_S})",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help=f"runs of every server, alternating, whose median is reported (default "
        f"{DEFAULT_ROUNDS}; 1 with --smoke)",
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="results folder")
    parser.add_argument(
        "--only", metavar="NAMES", help=f"comma-separated servers of {','.join(TARGETS)}"
    )
    parser.add_argument(
        "--models", metavar="NAMES", help=f"comma-separated models of {','.join(MODELS)}"
    )
    parser.add_argument(
        "--concurrency",
        metavar="LIST",
        help="comma-separated concurrencies of every run (default "
        f"{','.join(map(str, DEFAULT_CONCURRENCY))}; 1,4 with --smoke)",
    )
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help="where competitors' venvs live"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="1 s runs at concurrency 1 and 4, noop, digits and mlp unbatched, 1 worker, 1 round; "
        "modelserve (both rows), competitors only when their venv is cached",
    )
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = SMOKE_DURATION_S if args.smoke else DEFAULT_DURATION_S
    if args.rounds is None:
        args.rounds = 1 if args.smoke else DEFAULT_ROUNDS
    if args.duration < 1:
        parser.error("--duration must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.concurrency:
        try:
            args.concurrency = [int(value) for value in args.concurrency.split(",")]
        except ValueError:
            parser.error(f"--concurrency takes whole numbers, not {args.concurrency!r}")
        if min(args.concurrency) < 1:
            parser.error("--concurrency values must be at least 1")
    else:
        args.concurrency = SMOKE_CONCURRENCY if args.smoke else DEFAULT_CONCURRENCY
    wanted = args.only.split(",") if args.only else list(TARGETS)
    unknown = set(wanted) - set(TARGETS)
    if unknown:
        parser.error(f"unknown server(s) {', '.join(sorted(unknown))}; known: {', '.join(TARGETS)}")
    args.servers = [name for name in SERVER_ORDER if name in wanted]
    models = args.models.split(",") if args.models else MODELS
    unknown = set(models) - set(MODELS)
    if unknown:
        parser.error(f"unknown model(s) {', '.join(sorted(unknown))}; known: {', '.join(MODELS)}")
    default_models = SMOKE_MODELS if args.smoke else MODELS
    args.models = [name for name in default_models if name in models]
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; 1 when wrk is missing or any server failed (after reporting)."""
    args = parse_args(argv)
    servers = args.servers
    if args.smoke:
        servers = [s for s in servers if s in IN_TREE or venv_cached(args.cache, s)]
    workers = sorted({1, os.cpu_count() or 1}) if not args.smoke else [1]
    groups = plan(args.models, servers, workers, args.concurrency, args.smoke)
    try:
        wrk_binary()
    except WrkError as exc:
        print(f"compare_servers: {exc}", file=sys.stderr)
        return 1
    progress(
        f"servers {', '.join(servers)}; {len(groups)} deployments, {args.rounds} round(s) of "
        f"{sum(g.runs for g in groups)} wrk runs of {args.duration} s; expect about "
        f"{minutes(estimate_s(groups, len(servers), args.duration, args.rounds))} once venvs "
        "are installed "
        f"(per run ~{args.duration + WRK_OVERHEAD_S:.1f} s, per deployment "
        f"~{DEPLOY_S:.0f}-{max(SLOW_DEPLOY_S.values()):.0f} s)"
    )
    # `kill` and CI cancellations send SIGTERM: make it unwind like Ctrl-C, through the
    # finally blocks that stop the servers.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    results = compare(args, servers, groups)
    for path in write(results, args.out):
        progress(f"wrote {path}")
    for goal in results["goals"]:
        progress(f"goal: {goal['goal']}: {goal['measured']} ({report.verdict(goal['met'])})")
    progress(f"done in {minutes(results['wall_s'])}")
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
