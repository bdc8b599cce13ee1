"""The results of one benchmark, as a markdown table and as JSON."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadtest import BATCH_SIZE, MAX_BATCH_DELAY_MS, WORKERS
from loadtest.wrk import WrkResult

if TYPE_CHECKING:  # numpy-free when run: the GPU check writes its report with a bare Python
    from loadtest.in_process import InProcessResult

OVERHEAD_CONCURRENCY = 1


@dataclass(frozen=True)
class LoadRun:
    """One wrk run against one endpoint at one concurrency."""

    target: str
    concurrency: int
    result: WrkResult

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the target, the concurrency and wrk's numbers."""
        return {"model": self.target, "concurrency": self.concurrency, **self.result.as_dict()}


@dataclass(frozen=True)
class Report:
    """Everything one benchmark measured."""

    environment: dict[str, Any]
    runs: list[LoadRun]
    in_process: list[InProcessResult]
    ping: LoadRun

    def in_process_single(self, model: str) -> InProcessResult | None:
        """The batch-of-one in-process result: what one request costs without a server."""
        return next((r for r in self.in_process if r.model == model and r.batch_size == 1), None)

    def overhead_ms(self, model: str) -> float | None:
        """Server p50 at concurrency 1 minus in-process p50, in ms; None if either is missing."""
        served = next(
            (
                run.result.p50_ms
                for run in self.runs
                if run.target == model and run.concurrency == OVERHEAD_CONCURRENCY
            ),
            None,
        )
        alone = self.in_process_single(model)
        if served is None or alone is None:
            return None
        return served - alone.p50_ms

    def models(self) -> list[str]:
        """The served models, in the order they were run."""
        return list(dict.fromkeys(run.target for run in self.runs))

    def as_json(self) -> dict[str, Any]:
        """The whole report as JSON-ready data."""
        return {
            "environment": self.environment,
            "serving": {
                "workers": WORKERS,
                "batch_size": BATCH_SIZE,
                "max_batch_delay_ms": MAX_BATCH_DELAY_MS,
            },
            "results": [run.as_dict() for run in self.runs],
            "in_process": [result.as_dict() for result in self.in_process],
            "overhead_c1_ms": {model: self.overhead_ms(model) for model in self.models()},
            "ping": self.ping.as_dict(),
        }

    def markdown(self) -> str:
        """The report as a markdown section: setup, the main table, in-process, HTTP ceiling."""
        env = self.environment
        lines = [
            f"## {env['date'][:10]} on {env['host']}",
            "",
            f"- machine: {env['cpus']} CPUs ({env['cpu_model']}), load average "
            f"{env['load_average_1min']} at start; Python {env['python']}, {env['wrk']}, "
            f"commit {env['commit']}",
            f"- serving: {WORKERS} worker per model, batch_size {BATCH_SIZE}, "
            f"max_batch_delay {MAX_BATCH_DELAY_MS} ms; wrk over keep-alive connections, "
            f"{env['duration_s']} s per run",
            "",
            "| model | concurrency | req/s | p50 ms | p90 ms | p99 ms | errors "
            "| in-process req/s | in-process p50 ms | overhead at c=1, ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for run in self.runs:
            result, alone = run.result, self.in_process_single(run.target)
            overhead = (
                self.overhead_ms(run.target) if run.concurrency == OVERHEAD_CONCURRENCY else None
            )
            lines.append(
                f"| {run.target} | {run.concurrency} | {result.requests_per_s:,.0f} "
                f"| {_ms(result.p50_ms)} | {_ms(result.p90_ms)} | {_ms(result.p99_ms)} "
                f"| {result.errors} | {_rate(alone)} | {_ms(alone.p50_ms if alone else None)} "
                f"| {_ms(overhead)} |"
            )
        lines += [
            "",
            "In-process limit (the handler called directly, back to back, for the same time):",
            "",
            "| model | batch | calls/s | req/s | p50 ms | p90 ms | p99 ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {r.model} | {r.batch_size} | {r.calls_per_s:,.0f} | {r.requests_per_s:,.0f} "
            f"| {_ms(r.p50_ms)} | {_ms(r.p90_ms)} | {_ms(r.p99_ms)} |"
            for r in self.in_process
        ]
        ping = self.ping.result
        lines += [
            "",
            f"HTTP ceiling, `GET /ping` at c={self.ping.concurrency} (wrk plus modelserve's "
            f"HTTP layer, no worker): {ping.requests_per_s:,.0f} req/s, "
            f"p50 {_ms(ping.p50_ms)} ms, p99 {_ms(ping.p99_ms)} ms, {ping.errors} errors.",
        ]
        return "\n".join(lines) + "\n"


def _ms(value: float | None) -> str:
    """Milliseconds with about three significant digits, down to tenths of a microsecond."""
    if value is None:
        return "—"
    decimals = 2 if abs(value) >= 10 else 3 if abs(value) >= 0.1 else 4
    return f"{value:.{decimals}f}"


def _rate(result: InProcessResult | None) -> str:
    return "—" if result is None else f"{result.requests_per_s:,.0f}"


def write(report: Report, out_dir: Path) -> tuple[Path, Path]:
    """Write ``<date>-<host>.md`` and ``.json`` into ``out_dir``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # Host names may contain dots, so the suffix is appended rather than swapped in.
    stem = f"{report.environment['date'][:10]}-{report.environment['host']}"
    markdown, data = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    markdown.write_text(report.markdown())
    data.write_text(json.dumps(report.as_json(), indent=2) + "\n")
    return markdown, data


def publish(
    out_dir: Path,
    kind: str,
    data: dict[str, Any],
    text: str,
    script: str,
    started: float | None = None,
) -> None:
    """:func:`write_named`, then ``text`` on stdout and where it went on stderr, as
    ``[script] wrote ...``, with the seconds since ``started`` (``time.monotonic()``) if given."""
    stem = write_named(out_dir, kind, data, text)
    print(text, flush=True)
    took = "" if started is None else f" in {time.monotonic() - started:.0f} s"
    print(f"[{script}] wrote {stem}.md and .json{took}", file=sys.stderr, flush=True)


def write_named(out_dir: Path, kind: str, data: dict[str, Any], text: str) -> Path:
    """Write ``<date>-<host>-<kind>.json`` (``data``, whose ``environment`` names the date and
    host) and ``.md`` (``text``) into ``out_dir``; returns the path without its suffix."""
    out_dir.mkdir(parents=True, exist_ok=True)
    environment = data["environment"]
    stem = out_dir / f"{environment['date'][:10]}-{environment['host']}-{kind}"
    Path(f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n")
    Path(f"{stem}.md").write_text(text)
    return stem


def median_rows(
    runs: list[dict[str, Any]], keys: Sequence[str], fields: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per distinct value of ``keys`` over the rounds: those values, how many rounds,
    their errors summed and the median of each of ``fields``."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(tuple(run[key] for key in keys), []).append(run)
    return [
        {
            **dict(zip(keys, values, strict=True)),
            "rounds": len(group),
            "errors": sum(run["errors"] for run in group),
            **{field: statistics.median(run[field] for run in group) for field in fields},
        }
        for values, group in groups.items()
    ]
