"""PNG plots of a comparison: throughput against concurrency, latency distributions, and
what serving cost (CPU per request, memory)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI

# pyplot after the backend is chosen
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, NullFormatter

from compare.report import (
    Results,
    deployment_key,
    deployments,
    describe_deployment,
    find_run,
    in_process_limit,
    label,
)

PANEL_SIZE = (5.0, 3.6)  # inches per subplot
DPI = 110


def _panels(count: int) -> tuple[plt.Figure, list[plt.Axes]]:
    """A figure with ``count`` subplots, two per row."""
    columns = min(count, 2)
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows), squeeze=False
    )
    flat = list(axes.flat)
    for unused in flat[count:]:
        unused.set_visible(False)
    return figure, flat[:count]


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def _lines_over_concurrency(axis: plt.Axes, results: Results, key: tuple, field: str) -> None:
    """A line per server of its runs' ``field`` on deployment ``key`` against concurrency
    (log 2 axis, ticks at the run's concurrencies); runs without the number are left out."""
    for server in results["settings"]["servers"]:
        runs = [
            r
            for r in results["runs"]
            if r["server"] == server and deployment_key(r) == key and r.get(field) is not None
        ]
        if runs:
            axis.plot(
                [r["concurrency"] for r in runs],
                [r[field] for r in runs],
                marker="o",
                label=label(server),
            )
    axis.set_xscale("log", base=2)
    concurrency = results["settings"]["concurrency"]
    axis.set_xticks(concurrency, map(str, concurrency))


def throughput(results: Results, model: str, path: Path) -> Path:
    """req/s against concurrency, a panel per deployment of ``model``, a line per server;
    the in-process limit for the same batch size as a dashed line."""
    keys = [key for key in deployments(results) if key[0] == model]
    figure, axes = _panels(len(keys))
    for axis, key in zip(axes, keys, strict=True):
        _lines_over_concurrency(axis, results, key, "requests_per_s")
        limit = in_process_limit(results, model, key[2])
        # noop's in-process rate is millions per second: drawn, it would flatten every line.
        if limit is not None and model != "noop":
            axis.axhline(limit["requests_per_s"], linestyle="--", color="grey", label="in-process")
        axis.set_ylim(bottom=0)
        axis.set_title(describe_deployment(key), fontsize=10)
        axis.set_xlabel("concurrent connections")
        axis.set_ylabel("requests/s")
        axis.legend(fontsize=8)
    return _save(figure, path)


def latency_cdf(results: Results, model: str, path: Path) -> Path:
    """The latency distribution at the highest concurrency, a panel per deployment of
    ``model``, a line per server (from latency_cdf.lua's percentile table)."""
    concurrency = max(results["settings"]["concurrency"])
    keys = [key for key in deployments(results) if key[0] == model]
    figure, axes = _panels(len(keys))
    for axis, key in zip(axes, keys, strict=True):
        for server in results["settings"]["servers"]:
            run = find_run(results, server, key, concurrency)
            if run is not None:
                percents, latencies = zip(*run["cdf"], strict=True)
                axis.plot(latencies, percents, label=label(server))
        axis.set_xscale("log")
        # Plain numbers (0.5, 2, 10) rather than powers of ten; minor ticks unlabelled.
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_ylim(0, 100)
        axis.set_title(f"{describe_deployment(key)}, c={concurrency}", fontsize=10)
        axis.set_xlabel("latency, ms (log)")
        axis.set_ylabel("percentile")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    return _save(figure, path)


def cost(results: Results, model: str, path: Path) -> Path:
    """What serving cost each server, a row per deployment of ``model``: CPU seconds per
    1,000 requests against concurrency (left, a line per server) and the RSS of the server's
    processes at the highest concurrency (right, a bar per server)."""
    concurrency = max(results["settings"]["concurrency"])
    keys = [key for key in deployments(results) if key[0] == model]
    figure, axes = _panels(2 * len(keys))
    for (cpu_axis, rss_axis), key in zip(
        zip(axes[::2], axes[1::2], strict=True), keys, strict=True
    ):
        _lines_over_concurrency(cpu_axis, results, key, "cpu_s_per_1k")
        names, rss = [], []
        for server in results["settings"]["servers"]:
            top = find_run(results, server, key, concurrency)
            if top is not None and top.get("rss_mib") is not None:
                names.append(label(server))
                rss.append(top["rss_mib"])
        cpu_axis.set_yscale("log")
        # Plain numbers on every tick: a narrow range has only minor ticks on a log axis.
        plain = FuncFormatter(lambda value, _: f"{value:.3g}")
        cpu_axis.yaxis.set_major_formatter(plain)
        cpu_axis.yaxis.set_minor_formatter(plain)
        cpu_axis.set_title(f"{describe_deployment(key)}: CPU", fontsize=10)
        cpu_axis.set_xlabel("concurrent connections")
        cpu_axis.set_ylabel("CPU-s per 1,000 requests (log)")
        cpu_axis.grid(True, which="both", alpha=0.3)
        cpu_axis.legend(fontsize=7)
        rss_axis.barh(names, rss)
        rss_axis.invert_yaxis()  # servers top to bottom in the run's order
        rss_axis.tick_params(axis="y", labelsize=7)
        rss_axis.set_title(f"{describe_deployment(key)}: memory, c={concurrency}", fontsize=10)
        rss_axis.set_xlabel("RSS of all the server's processes, MiB")
    return _save(figure, path)


def write_plots(results: Results, out_dir: Path, stem: str) -> list[Path]:
    """The three plots for every model that was run; returns the files written."""
    models = list(dict.fromkeys(key[0] for key in deployments(results)))
    written = []
    for model in models:
        written.append(throughput(results, model, out_dir / f"{stem}-throughput-{model}.png"))
        written.append(latency_cdf(results, model, out_dir / f"{stem}-latency-{model}.png"))
        written.append(cost(results, model, out_dir / f"{stem}-cost-{model}.png"))
    return written
