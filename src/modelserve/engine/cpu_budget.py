"""How many CPUs this server may really use: the cores it may run on, capped by its cgroup's CPU
quota.

A container limited to 2 CPUs (``docker run --cpus 2``, a Kubernetes ``limits.cpu: 2``) still
sees every core of the host in ``os.cpu_count()``. Sizing workers and their thread pools by the
host's cores then starts far more processes and threads than the quota lets run, and the
kernel throttles them all. The quota is in the cgroup files: ``cpu.max`` (cgroup v2) or
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (cgroup v1).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """The CPUs the cgroup's quota allows (e.g. 1.5), or None when it sets none."""
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        quota, _, period = v2.partition(" ")
        if quota == "max" or not period:
            return None
        return int(quota) / int(period)
    quota_us = _read(root / "cpu" / "cpu.cfs_quota_us") or _read(root / "cpu.cfs_quota_us")
    period_us = _read(root / "cpu" / "cpu.cfs_period_us") or _read(root / "cpu.cfs_period_us")
    if quota_us is None or period_us is None or int(quota_us) <= 0:
        return None
    return int(quota_us) / int(period_us)


def usable_cpus(root: Path = CGROUP_ROOT) -> int:
    """The cores this process may run on, capped by the cgroup quota rounded up (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    quota = cgroup_cpu_quota(root)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return cores


def compute_threads(configured: int, workers: int) -> int:
    """Compute threads for each of ``workers`` workers of one version: ``configured`` when set
    (``worker_threads``), else a share of the cores the frontend does not use (one stays
    with it), at least one."""
    if configured:
        return configured
    return max(1, (usable_cpus() - 1) // max(1, workers))
