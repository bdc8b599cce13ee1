"""The data plane's statistics as the ``nv_inference_*`` metrics (Triton's statistics
extension, ``GET /v2/models[/{m}[/versions/{v}]]/stats``, is ``ModelStatistics.triton_json``)."""

from __future__ import annotations

from modelserve.engine.dataplane import DataPlane
from modelserve.telemetry.triton_metrics import TritonCollector, TritonSample

NS_PER_US = 1000


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
