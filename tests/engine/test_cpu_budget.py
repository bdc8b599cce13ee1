"""The CPUs a server sizes its workers by: the cgroup quota's, read from cgroup v2 and v1 files
laid out as the kernel lays them out (the container test checks a real ``--cpus`` limit)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelserve.engine.cpu_budget import cgroup_cpu_quota, usable_cpus

CORES = len(os.sched_getaffinity(0))


def _cgroup(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text + "\n")
    return tmp_path


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "150000 100000"}, 1.5),
        ({"cpu.max": "max 100000"}, None),
        ({"cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.cfs_period_us": "100000"}, 0.5),
        ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, None),
        ({}, None),
    ],
    ids=["v2 quota", "v2 unlimited", "v1 quota", "v1 unlimited", "no cgroup files"],
)
def test_the_quota_is_read_from_either_cgroup_version(
    tmp_path: Path, files: dict[str, str], quota: float | None
) -> None:
    assert cgroup_cpu_quota(_cgroup(tmp_path, files)) == quota


def test_a_quota_caps_the_cores_rounded_up(tmp_path: Path) -> None:
    root = _cgroup(tmp_path, {"cpu.max": "50000 100000"})
    assert usable_cpus(root) == 1  # half a CPU still runs one worker
    unlimited = _cgroup(tmp_path / "open", {"cpu.max": "max 100000"})
    assert usable_cpus(unlimited) == CORES
    generous = _cgroup(tmp_path / "big", {"cpu.max": f"{(CORES + 8) * 100000} 100000"})
    assert usable_cpus(generous) == CORES  # a quota above the cores adds none
