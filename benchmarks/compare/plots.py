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


def _number(value: float) -> str:
    """4,323 or 0.374: whole numbers with separators, small ones to 3 significant digits."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _per_server(axis: plt.Axes, results: Results, key: tuple, field: str) -> bool:
    """Each server's runs' ``field`` on deployment ``key``: a line per server against
    concurrency (log 2 axis, ticks at the run's concurrencies), or, when the run had one
    concurrency, a bar per server with its value. Runs without the number are left out.
    Returns whether it drew bars (the value then runs along the x axis)."""
    concurrency = results["settings"]["concurrency"]
    measured = []
    for server in results["settings"]["servers"]:
        runs = [
            r
            for r in results["runs"]
            if r["server"] == server and deployment_key(r) == key and r.get(field) is not None
        ]
        if runs:
            measured.append((label(server), runs))
    if len(concurrency) == 1:
        bars = axis.barh([name for name, _ in measured], [runs[0][field] for _, runs in measured])
        axis.bar_label(bars, labels=[_number(bar.get_width()) for bar in bars], fontsize=7)
        axis.invert_yaxis()  # servers top to bottom in the run's order
        axis.tick_params(axis="y", labelsize=7)
        return True
    for name, runs in measured:
        axis.plot(
            [r["concurrency"] for r in runs], [r[field] for r in runs], marker="o", label=name
        )
    axis.set_xscale("log", base=2)
    axis.set_xticks(concurrency, map(str, concurrency))
    axis.legend(fontsize=7)
    return False


def throughput(results: Results, model: str, path: Path) -> Path:
    """req/s against concurrency, a panel per deployment of ``model``, a line per server;
    the in-process limit for the same batch size as a dashed line."""
    keys = [key for key in deployments(results) if key[0] == model]
    figure, axes = _panels(len(keys))
    for axis, key in zip(axes, keys, strict=True):
        title = describe_deployment(key)
        limit = in_process_limit(results, model, key[2])
        if _per_server(axis, results, key, "requests_per_s"):
            concurrency = results["settings"]["concurrency"][0]
            title += f", c={concurrency}"
            if limit is not None:  # tens of times the bars: named, not drawn
                title += f"\nin-process: {limit['requests_per_s']:,.0f} req/s"
            axis.set_xlabel("requests/s")
        else:
            # noop's in-process rate is millions per second: drawn, it would flatten every line.
            if limit is not None and model != "noop":
                axis.axhline(
                    limit["requests_per_s"], linestyle="--", color="grey", label="in-process"
                )
                axis.legend(fontsize=7)
            axis.set_ylim(bottom=0)
            axis.set_xlabel("concurrent connections")
            axis.set_ylabel("requests/s")
        axis.set_title(title, fontsize=9)
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
        bars = _per_server(cpu_axis, results, key, "cpu_s_per_1k")
        names, rss = [], []
        for server in results["settings"]["servers"]:
            top = find_run(results, server, key, concurrency)
            if top is not None and top.get("rss_mib") is not None:
                names.append(label(server))
                rss.append(top["rss_mib"])
        # Plain numbers on every tick: a narrow range has only minor ticks on a log axis.
        plain = FuncFormatter(lambda value, _: f"{value:.3g}")
        value_axis = cpu_axis.xaxis if bars else cpu_axis.yaxis
        if bars:
            cpu_axis.set_xscale("log")
        else:
            cpu_axis.set_yscale("log")
        value_axis.set_major_formatter(plain)
        # Bars span decades, where labelled minor ticks would run into each other.
        value_axis.set_minor_formatter(NullFormatter() if bars else plain)
        value_axis.set_label_text("CPU-s per 1,000 requests (log)")
        if not bars:
            cpu_axis.set_xlabel("concurrent connections")
        cpu_axis.set_title(f"{describe_deployment(key)}: CPU", fontsize=10)
        cpu_axis.grid(True, which="both", alpha=0.3)
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
