"""The comparison's results as markdown: per-scenario tables, ratios and the stated goals.

Everything here reads the JSON-ready results dict that ``compare_servers.py`` also writes,
so a report can be rebuilt from a results file alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from compare.scenarios import BATCHED, MEETING_MODEL, UNBATCHED

Results = dict[str, Any]
Run = dict[str, Any]

BASELINE = "torchserve"
LABELS = {
    "modelserve": "modelserve /predictions",
    "modelserve-v2": "modelserve /v2/.../infer",
    "torchserve": "TorchServe",
    "triton": "Triton (PyTriton)",
    "rayserve": "Ray Serve (64 in flight)",
    "rayserve-default": "Ray Serve (default 5 in flight)",
    "bentoml": "BentoML",
    "mlserver": "MLServer",
    "litserve": "LitServe",
}
# modelserve's rows: the same server through two protocols.
OURS = ("modelserve", "modelserve-v2")
GOAL_CONCURRENCY = 64
THROUGHPUT_GOAL = 2.0  # x TorchServe's req/s, noop at c=64
P99_GOAL = 0.5  # x TorchServe's p99, noop at c=64
IN_PROCESS_GOAL = 0.9  # of the in-process limit, resnet with dynamic batching
COLD_START_GOAL = 0.2  # x TorchServe's cold start
# Where all servers meet: the tiny MLP with one worker, unbatched and batched.
MEETING_BATCHED = (MEETING_MODEL, 1, *BATCHED)
MEETING_UNBATCHED = (MEETING_MODEL, 1, *UNBATCHED)
BATCHED_THROUGHPUT_GOAL = 1.5  # x TorchServe's req/s
BATCHED_CPU_GOAL = 0.5  # x TorchServe's CPU seconds per 1k requests
NOT_MEASURED = "not measured"


def label(server: str) -> str:
    """How a server is named in the report."""
    return LABELS.get(server, server)


def deployment_key(run: Run) -> tuple[str, int, int, int]:
    """The deployment a run belongs to: model, workers, batch size, delay."""
    return (run["model"], run["workers"], run["batch_size"], run["max_batch_delay_ms"])


def describe_deployment(key: tuple[str, int, int, int]) -> str:
    """``digits, 2 workers, batch 8 within 5 ms``."""
    model, workers, batch_size, delay_ms = key
    batching = f"batch {batch_size} within {delay_ms} ms" if batch_size > 1 else "unbatched"
    return f"{model}, {workers} worker{'s' if workers > 1 else ''}, {batching}"


def deployments(results: Results) -> list[tuple[str, int, int, int]]:
    """Every deployment with runs, in the order they ran."""
    return list(dict.fromkeys(deployment_key(run) for run in results["runs"]))


def find_run(results: Results, server: str, key: tuple, concurrency: int) -> Run | None:
    """The run of ``server`` on deployment ``key`` at ``concurrency``, if there was one."""
    return next(
        (
            run
            for run in results["runs"]
            if run["server"] == server
            and deployment_key(run) == key
            and run["concurrency"] == concurrency
        ),
        None,
    )


def in_process_limit(results: Results, model: str, batch_size: int) -> dict | None:
    """The in-process limit for ``model`` called with batches of ``batch_size``."""
    return next(
        (
            limit
            for limit in results["in_process"]
            if limit["model"] == model and limit["batch_size"] == batch_size
        ),
        None,
    )


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def number(value: float | None, digits: int = 3) -> str:
    """A table cell: thousands separators for big numbers, a few significant digits else."""
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def times(value: float | None) -> str:
    """A ratio cell such as ``2.31x``."""
    return "—" if value is None else f"{value:.2f}x"


def share_of(value: float | None) -> str:
    """A fraction as a percentage cell; small ones keep two decimals so they are not 0%."""
    if value is None:
        return "—"
    return f"{value:.0%}" if value >= 0.1 else f"{value:.2%}"


def goals(results: Results) -> list[dict[str, Any]]:
    """The issue's goals, each with what was measured and whether it is met (None: unknown)."""
    found = []
    noop_keys = [key for key in deployments(results) if key[0] == "noop"]
    for key in noop_keys:
        ours = find_run(results, "modelserve", key, GOAL_CONCURRENCY)
        theirs = find_run(results, BASELINE, key, GOAL_CONCURRENCY)
        speedup = ratio(ours and ours["requests_per_s"], theirs and theirs["requests_per_s"])
        p99 = ratio(ours and ours["p99_ms"], theirs and theirs["p99_ms"])
        where = f"{describe_deployment(key)}, c={GOAL_CONCURRENCY}"
        found.append(goal(f"throughput vs TorchServe ({where})", THROUGHPUT_GOAL, speedup, True))
        found.append(goal(f"p99 vs TorchServe ({where})", P99_GOAL, p99, False))
    if not noop_keys:
        where = f"noop, c={GOAL_CONCURRENCY}"
        found.append(goal(f"throughput vs TorchServe ({where})", THROUGHPUT_GOAL, None, True))
        found.append(goal(f"p99 vs TorchServe ({where})", P99_GOAL, None, False))
    found.append(in_process_goal(results))
    found += meeting_goals(results)
    cold = results["cold_start_s"]
    found.append(
        goal(
            "cold start vs TorchServe",
            COLD_START_GOAL,
            ratio(cold.get("modelserve"), cold.get(BASELINE)),
            False,
        )
    )
    return found


def meeting_goals(results: Results) -> list[dict[str, Any]]:
    """Batched req/s and CPU per request of each modelserve row over TorchServe's, on the
    tiny MLP at c=64 (medians of the rounds)."""
    theirs = find_run(results, BASELINE, MEETING_BATCHED, GOAL_CONCURRENCY)
    found = []
    for server in OURS:
        if server not in results["settings"]["servers"]:
            continue
        ours = find_run(results, server, MEETING_BATCHED, GOAL_CONCURRENCY)
        where = f"{label(server)}, {describe_deployment(MEETING_BATCHED)}, c={GOAL_CONCURRENCY}"
        speedup = ratio(ours and ours["requests_per_s"], theirs and theirs["requests_per_s"])
        cpu = ratio(ours and ours.get("cpu_s_per_1k"), theirs and theirs.get("cpu_s_per_1k"))
        found.append(
            goal(f"throughput vs TorchServe ({where})", BATCHED_THROUGHPUT_GOAL, speedup, True)
        )
        found.append(goal(f"CPU-s per 1k vs TorchServe ({where})", BATCHED_CPU_GOAL, cpu, False))
    return found


def in_process_goal(results: Results) -> dict[str, Any]:
    """modelserve's best batched resnet throughput over the batch-8 in-process limit."""
    batched = [
        run
        for run in results["runs"]
        if run["server"] == "modelserve" and run["model"] == "resnet" and run["batch_size"] > 1
    ]
    best = max(batched, key=lambda run: run["requests_per_s"], default=None)
    limit = best and in_process_limit(results, "resnet", best["batch_size"])
    share = ratio(best and best["requests_per_s"], limit and limit["requests_per_s"])
    return {
        "goal": "share of the in-process limit (resnet, dynamic batching, best deployment)",
        "target": f">= {IN_PROCESS_GOAL:.0%}",
        "measured": share_of(share),
        "met": None if share is None else share >= IN_PROCESS_GOAL,
    }


def goal(name: str, bound: float, value: float | None, at_least: bool) -> dict[str, Any]:
    """A ratio goal: met when ``value`` is at least (or at most) ``bound``; None: unknown."""
    met = None if value is None else (value >= bound if at_least else value <= bound)
    target = f"{'>=' if at_least else '<='} {bound:g}x"
    return {"goal": name, "target": target, "measured": times(value), "met": met}


def verdict(met: bool | None) -> str:
    """A goal's status cell."""
    return NOT_MEASURED if met is None else ("met" if met else "**not met**")


def table(header: list[str], rows: list[list[str]], right_from: int = 1) -> Iterator[str]:
    """A markdown table; columns from ``right_from`` on are right-aligned."""
    yield "| " + " | ".join(header) + " |"
    yield "| " + " | ".join("---" if i < right_from else "---:" for i in range(len(header))) + " |"
    for row in rows:
        yield "| " + " | ".join(row) + " |"


def scenario_rows(results: Results, key: tuple) -> list[list[str]]:
    """One row per concurrency and server, with modelserve's ratios to that server."""
    model, _, batch_size, _ = key
    limit = in_process_limit(results, model, batch_size)
    rows = []
    for concurrency in results["settings"]["concurrency"]:
        ours = find_run(results, "modelserve", key, concurrency)
        for server in results["settings"]["servers"]:
            run = find_run(results, server, key, concurrency)
            if run is None:
                continue
            is_ours = server == "modelserve"
            speedup = (
                None if is_ours else ratio(ours and ours["requests_per_s"], run["requests_per_s"])
            )
            p99 = None if is_ours else ratio(ours and ours["p99_ms"], run["p99_ms"])
            share = ratio(run["requests_per_s"], limit and limit["requests_per_s"])
            rows.append(
                [
                    str(concurrency),
                    label(server),
                    number(run["requests_per_s"]),
                    number(run["p50_ms"]),
                    number(run["p90_ms"]),
                    number(run["p99_ms"]),
                    number(run["max_ms"]),
                    str(run["errors"]),
                    times(speedup),
                    times(p99),
                    share_of(share),
                    number(run.get("cpu_s_per_1k")),
                    number(run.get("rss_mib"), 4),
                    spread(run),
                ]
            )
    return rows


SCENARIO_HEADER = [
    "c",
    "server",
    "req/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "errors",
    "modelserve ÷ this, req/s",
    "modelserve ÷ this, p99",
    "of in-process",
    "CPU-s / 1k req",
    "RSS MiB",
    "req/s of each round",
]


def spread(run: Run) -> str:
    """Every round's req/s, the spread the median hides."""
    return " / ".join(number(value) for value in run.get("requests_per_s_rounds", []))


def meeting_rows(results: Results) -> list[list[str]]:
    """Every server on the tiny MLP at the run's highest concurrency: unbatched and batched
    throughput, batched p99, CPU per request and memory."""
    concurrency = max(results["settings"]["concurrency"])
    rows = []
    for server in results["settings"]["servers"]:
        plain = find_run(results, server, MEETING_UNBATCHED, concurrency)
        batched = find_run(results, server, MEETING_BATCHED, concurrency)
        if plain is None and batched is None:
            continue
        runs = [plain, batched]
        rows.append(
            [
                label(server),
                number(plain and plain["requests_per_s"]),
                number(batched and batched["requests_per_s"]),
                number(batched and batched["p99_ms"]),
                " / ".join(number(run and run.get("cpu_s_per_1k")) for run in runs),
                " / ".join(number(run and run.get("rss_mib"), 4) for run in runs),
            ]
        )
    return rows


MEETING_HEADER = [
    "server",
    "unbatched req/s",
    "batch 8 / 5 ms req/s",
    "batched p99 ms",
    "CPU-s per 1k req (unbatched / batched)",
    "RSS MiB (unbatched / batched)",
]


def startup_rows(results: Results) -> list[list[str]]:
    """Cold start, register-to-ready and memory per server, with modelserve's ratios."""
    cold, ready, memory = results["cold_start_s"], results["register_s"], results["memory_mb"]
    ours_total = sum(memory["modelserve"].values()) if "modelserve" in memory else None
    rows = []
    for server in results["settings"]["servers"]:
        used = memory.get(server)
        total = sum(used.values()) if used else None
        rows.append(
            [
                label(server),
                number(cold.get(server)),
                times(
                    None
                    if server == "modelserve"
                    else ratio(cold.get("modelserve"), cold.get(server))
                ),
                number(ready.get(server)),
                number(used and used["frontend"], 4),
                number(used and used["workers"], 4),
                number(total, 4),
                times(None if server == "modelserve" else ratio(ours_total, total)),
            ]
        )
    return rows


STARTUP_HEADER = [
    "server",
    "cold start s",
    "modelserve ÷ this",
    "register to ready s (tiny MLP)",
    "frontend MiB",
    "workers MiB",
    "total MiB",
    "modelserve ÷ this, memory",
]


def markdown(results: Results, plots: list[str]) -> str:
    """The whole report; ``plots`` are PNG file names next to it."""
    env, settings = results["environment"], results["settings"]
    lines = [
        f"# modelserve vs {', '.join(label(s) for s in settings['servers'] if s not in OURS)}: "
        f"{env['date'][:10]} on {env['host']}",
        "",
        f"- machine: {env['cpus']} CPUs ({env['cpu_model']}), load average "
        f"{env['load_average_1min']} at start; Python {env['python']}, {env['wrk']}, "
        f"commit {env['commit']}",
        f"- servers: {', '.join(label(s) for s in settings['servers'])}; "
        f"{settings['duration_s']} s per wrk run over keep-alive connections, at concurrency "
        f"{', '.join(map(str, settings['concurrency']))}; for each deployment every server runs "
        f"back to back at each concurrency, in {settings['rounds']} round(s); every number is "
        "the median of the rounds"
        + (" (smoke run: counts far too small to judge by)" if settings["smoke"] else ""),
        f"- wall time: {results['wall_s']:.0f} s",
        "",
        "## Goals",
        "",
        *table(
            ["goal", "target", "measured", "status"],
            [[g["goal"], g["target"], g["measured"], verdict(g["met"])] for g in results["goals"]],
            right_from=2,
        ),
        "",
        "## Start-up and memory",
        "",
        "Cold start: process start to a healthy /ping with no model. Register to ready: the "
        "register call (or, for servers that load models only at start, process start) to the "
        "first answer of the tiny MLP with 1 worker, unbatched; memory is resident set size right "
        "after that deployment. A cold start of — means the server loads its model as it "
        "starts, so its whole start is in register to ready.",
        "",
        *table(STARTUP_HEADER, startup_rows(results)),
        "",
        f"## All servers on the tiny MLP (c={max(settings['concurrency'])})",
        "",
        "MLP 64-64-10, one worker or replica each, medians of the rounds. "
        "CPU-s per 1k req: user plus system CPU seconds of all the server's processes during "
        "the run, per 1,000 answered requests; RSS: resident memory summed over the server's "
        "processes after the run.",
        "",
        *table(MEETING_HEADER, meeting_rows(results)),
        "",
        "## Throughput and latency",
        "",
        "Ratios are modelserve's value over the row's server: above 1 is better for req/s, "
        "below 1 is better for p99. *Of in-process* is the row's req/s over the handler's own "
        "rate called in-process with the same batch size (one thread, no server). CPU-s / 1k "
        "req and RSS MiB as in the table above.",
    ]
    for key in deployments(results):
        lines += [
            "",
            f"### {describe_deployment(key)}",
            "",
            *table(SCENARIO_HEADER, scenario_rows(results, key), 2),
        ]
    lines += ["", "## In-process limit", "", *in_process_lines(results)]
    lines += ["", "## wrk's ceiling", "", ceiling_line(results)]
    if plots:
        lines += ["", "## Plots", "", *(f"![{name}]({name})" for name in plots)]
    if results["skipped"] or results["failures"]:
        lines += ["", "## Not measured", ""]
        lines += [
            f"- skipped: {s['server']} on {s['deployment']}: {s['reason']}"
            for s in results["skipped"]
        ]
        lines += [
            f"- **failed**: {f['server']} ({f['stage']}): {f['error']}" for f in results["failures"]
        ]
    return "\n".join(lines) + "\n"


def in_process_lines(results: Results) -> list[str]:
    """The handlers called directly: the ceiling a server's workers could reach."""
    rows = [
        [
            limit["model"],
            str(limit["batch_size"]),
            number(limit["calls_per_s"]),
            number(limit["requests_per_s"]),
            number(limit["p50_ms"]),
            number(limit["p99_ms"]),
        ]
        for limit in results["in_process"]
    ]
    header = ["model", "batch", "calls/s", "req/s", "p50 ms per call", "p99 ms per call"]
    return list(table(header, rows))


def ceiling_line(results: Results) -> str:
    """GET /ping on modelserve: what wrk and our HTTP layer manage with no model at all."""
    ping = results["ping"]
    if ping is None:
        return f"Not measured (modelserve was not run). {NOT_MEASURED}."
    return (
        f"`GET /ping` on modelserve at c={ping['concurrency']}: "
        f"{number(ping['requests_per_s'])} req/s, p99 {number(ping['p99_ms'])} ms, "
        f"{ping['errors']} errors. No model and no worker: wrk and our HTTP stack together "
        "cannot go faster than this on this machine."
    )
