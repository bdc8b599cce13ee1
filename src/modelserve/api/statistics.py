"""The data plane's statistics in the shapes clients read: Triton's statistics extension
(``GET /v2/models[/{m}[/versions/{v}]]/stats``) and the ``nv_inference_*`` metrics."""

from __future__ import annotations

from typing import Any

from modelserve.engine.dataplane import DataPlane
from modelserve.engine.results import ModelStatistics
from modelserve.engine.statistics import Duration
from modelserve.telemetry.triton_metrics import TritonCollector, TritonSample

NS_PER_US = 1000
# Triton reports these too; modelserve has no response cache, so they stay zero.
NO_CACHE = {"cache_hit": {"count": 0, "ns": 0}, "cache_miss": {"count": 0, "ns": 0}}


def _duration(duration: Duration) -> dict[str, int]:
    return {"count": duration.count, "ns": duration.ns}


def statistics_json(entry: ModelStatistics) -> dict[str, Any]:
    """One version's statistics as Triton's statistics extension writes them."""
    stats = entry.statistics
    return {
        "name": entry.name,
        "version": entry.version,
        "last_inference": stats.last_inference_ms,
        "inference_count": stats.inference_count,
        "execution_count": stats.execution_count,
        "inference_stats": {
            "success": _duration(stats.success),
            "fail": _duration(stats.fail),
            "queue": _duration(stats.queue),
            "compute_input": _duration(stats.compute_input),
            "compute_infer": _duration(stats.compute_infer),
            "compute_output": _duration(stats.compute_output),
            **NO_CACHE,
        },
        "batch_stats": [
            {
                "batch_size": size,
                "compute_input": _duration(batch.compute_input),
                "compute_infer": _duration(batch.compute_infer),
                "compute_output": _duration(batch.compute_output),
            }
            for size, batch in sorted(stats.batches.items())
        ],
        "memory_usage": [],
    }


def triton_collector(plane: DataPlane) -> TritonCollector:
    """The ``nv_inference_*`` metrics of every model version, read at each scrape."""

    def samples() -> list[TritonSample]:
        return [
            TritonSample(
                model=entry.name,
                version=entry.version,
                success=entry.statistics.success.count,
                failure=entry.statistics.fail.count,
                inference_count=entry.statistics.inference_count,
                execution_count=entry.statistics.execution_count,
                request_us=(entry.statistics.success.ns + entry.statistics.fail.ns) // NS_PER_US,
                queue_us=entry.statistics.queue.ns // NS_PER_US,
                compute_input_us=entry.statistics.compute_input.ns // NS_PER_US,
                compute_infer_us=entry.statistics.compute_infer.ns // NS_PER_US,
                compute_output_us=entry.statistics.compute_output.ns // NS_PER_US,
                pending=entry.pending,
            )
            for entry in plane.statistics()
        ]

    return TritonCollector(samples)
