"""The dashboard's time series, kept in memory: a point a second for the last minutes, a point
a minute for the last day, a point an hour for the last month.

``DashboardRecorder.sample`` runs once a second off the request path: it reads what the
metrics and statistics already count (nothing is counted twice), turns it into one second's
readings and adds them to each resolution's step in progress; a finished step becomes a point
in a fixed ring of float arrays (8 bytes a point, about 20 series per model version).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modelserve.telemetry.dashboard_readings import (
    GaugeMeans,
    SeriesKey,
    VersionReading,
    VersionReadout,
)
from modelserve.telemetry.process_usage import ProcessUsage

log = logging.getLogger("modelserve.dashboard")
NAN = float("nan")
# Decimals kept in the JSON: µs for latencies in ms, and plenty for rates, percents and MB.
DECIMALS = 3


@dataclass(frozen=True, slots=True)
class Resolution:
    """One range of the dashboard: a point every ``step_s`` seconds, the last ``points``
    (the step in progress among them)."""

    step_s: int
    points: int
    description: str


RESOLUTIONS = {
    "minutes": Resolution(1, 300, "the last 5 minutes, a point a second"),
    "hours": Resolution(60, 1440, "the last 24 hours, a point a minute"),
    "days": Resolution(3600, 720, "the last 30 days, a point an hour"),
}
# A model version (name, version), or None for the server's own series.
Owner = tuple[str, str] | None
ColumnKey = tuple[Owner, str, str]


def _json_value(value: float) -> float | None:
    return None if math.isnan(value) else round(value, DECIMALS)


class RingTable:
    """The last ``capacity`` points: a time column and one column per series, aligned (a
    series missing from a point holds NaN there; one missing from all of them is dropped)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.times = array("d", [NAN]) * capacity
        self.columns: dict[ColumnKey, array] = {}
        self._last_written: dict[ColumnKey, int] = {}
        self._pushed = 0

    def push(self, at: float, values: Mapping[ColumnKey, float | None]) -> None:
        """Add a point at time ``at``, overwriting the oldest once full."""
        slot = self._pushed % self.capacity
        self.times[slot] = at
        for key, value in values.items():
            column = self.columns.get(key)
            if column is None:
                column = self.columns[key] = array("d", [NAN]) * self.capacity
            column[slot] = NAN if value is None else value
            self._last_written[key] = self._pushed
        for key in [key for key in self.columns if key not in values]:
            if self._pushed - self._last_written[key] >= self.capacity:
                del self.columns[key], self._last_written[key]
            else:
                self.columns[key][slot] = NAN
        self._pushed += 1

    def read(self) -> tuple[list[float], dict[ColumnKey, list[float | None]]]:
        """The points, oldest first: times, and each series' values (None where it has none)."""
        count = min(self._pushed, self.capacity)
        start = self._pushed % self.capacity if self._pushed > self.capacity else 0

        def ordered(column: array) -> list[float]:
            return (column[start:] + column[:start]).tolist()[:count]

        times = ordered(self.times)
        columns = {
            key: [_json_value(value) for value in ordered(column)]
            for key, column in self.columns.items()
        }
        return times, columns


class Tier:
    """One resolution: its points, and the readings of the step in progress."""

    def __init__(self, resolution: Resolution) -> None:
        self.resolution = resolution
        # The step in progress is the last of the range's points.
        self.table = RingTable(resolution.points - 1)
        self._step: int | None = None
        self._versions: dict[Owner, VersionReading] = {}
        self._server = GaugeMeans()

    def add(
        self,
        started: float,
        versions: Mapping[Owner, VersionReading],
        server: Mapping[SeriesKey, float],
    ) -> None:
        """The readings of the second from ``started`` on; the step before becomes a point
        once ``started`` is past it."""
        step = int(started // self.resolution.step_s)
        if self._step is not None and step != self._step:
            self.table.push(self._step * self.resolution.step_s, self._pending_points())
            self._versions, self._server = {}, GaugeMeans()
        self._step = step
        for owner, reading in versions.items():
            pending = self._versions.get(owner)
            if pending is None:
                pending = self._versions[owner] = VersionReading(reading.batch_size)
            pending.merge(reading)
        self._server.add(server)

    def _pending_points(self) -> dict[ColumnKey, float | None]:
        points: dict[ColumnKey, float | None] = {
            (None, name, part): value for (name, part), value in self._server.means().items()
        }
        for owner, reading in self._versions.items():
            for (name, part), value in reading.points().items():
                points[owner, name, part] = value
        return points

    def read(self) -> tuple[list[float], dict[ColumnKey, list[float | None]]]:
        """The finished points, then the step in progress as it stands."""
        times, columns = self.table.read()
        if self._step is None:
            return times, columns
        times.append(float(self._step * self.resolution.step_s))
        pending = self._pending_points()
        for key, column in columns.items():
            value = pending.pop(key, None)
            column.append(None if value is None else _json_value(value))
        for key, value in pending.items():
            columns[key] = [None] * (len(times) - 1) + [
                None if value is None else _json_value(value)
            ]
        return times, columns


class DashboardRecorder:
    """Samples the model versions and the processes once a second into every resolution."""

    def __init__(
        self,
        read_versions: Callable[[], list[VersionReadout]],
        usage: ProcessUsage,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._read_versions = read_versions
        self._usage = usage
        self._clock = clock
        self._tiers = {name: Tier(resolution) for name, resolution in RESOLUTIONS.items()}
        self._previous: dict[Owner, VersionReadout] = {}
        self._previous_at: float | None = None
        self._table: list[dict[str, object]] = []

    def sample(self) -> None:
        """Read everything once and add the second since the last read to each resolution."""
        now = self._clock()
        seconds = 1.0 if self._previous_at is None else max(now - self._previous_at, 1e-3)
        readouts = self._read_versions()
        current: dict[Owner, VersionReadout] = {}
        readings: dict[Owner, VersionReading] = {}
        pids: list[int] = []
        for readout in readouts:
            owner = (readout.state.model_name, readout.state.model_version)
            readings[owner] = VersionReading.between(self._previous.get(owner), readout, seconds)
            current[owner] = readout
            pids.extend(readout.worker_pids)
        server = self._usage.read(pids)
        # A read just after second k covers second k - 1, where it is put.
        for tier in self._tiers.values():
            tier.add(now - seconds, readings, server)
        self._previous, self._previous_at = current, now
        self._table = [readout.table_row() for readout in readouts]

    async def run(self) -> None:
        """Sample just after each whole second until cancelled."""
        while True:
            await asyncio.sleep(1.0 - self._clock() % 1.0)
            try:
                self.sample()
            except Exception:  # a bad read must not end the dashboard; the next one may work
                log.exception("dashboard sampling failed")

    def series(self, range_name: str) -> dict[str, Any]:
        """Every series of one range (a key of ``RESOLUTIONS``), as the dashboard's JSON."""
        resolution = RESOLUTIONS[range_name]
        times, columns = self._tiers[range_name].read()
        server: dict[str, Any] = {}
        versions: dict[tuple[str, str], dict[str, Any]] = {}
        for (owner, name, part), values in sorted(columns.items(), key=_column_order):
            target = server if owner is None else versions.setdefault(owner, {})
            if part:
                target.setdefault(name, {})[part] = values
            else:
                target[name] = values
        gpus = self._usage.gpus
        return {
            "range": range_name,
            "description": resolution.description,
            "step_s": resolution.step_s,
            "time": times,
            "server": server,
            "gpus": {"count": len(gpus.handles), "unavailable": gpus.unavailable},
            "versions": [
                {"model": model, "version": version, "series": series}
                for (model, version), series in sorted(versions.items())
            ],
            "models": self._table,
        }


def _column_order(item: tuple[ColumnKey, object]) -> tuple[Any, ...]:
    (owner, name, part), _ = item
    # Numeric parts (GPU indexes, batch sizes) in numeric order: 2 before 10.
    leading = part.split("-")[0]
    return (owner or ("",), name, int(leading) if leading.isdigit() else math.inf, part)
