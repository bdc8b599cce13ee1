"""A Docker engine for the image tests: the CLI, the base image built from Debian packages when
no registry is reachable, the CPU image built from a clean context, containers that are always
removed. Tests skip, saying why, where no engine runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Set to use a base image you already have (e.g. python:3.11-slim where a registry is reachable).
BASE_IMAGE_VARIABLE = "MODELSERVE_TEST_BASE_IMAGE"
LOCAL_BASE = "modelserve-base:bookworm"
CPU_IMAGE = "modelserve:cpu-test"
# What the build context holds: the .dockerignore allow-list, copied into a clean directory.
CONTEXT_PATHS = ("pyproject.toml", "README.md", "src", "handlers", "archiver", "docker")
TORCH_WHEELS = Path(os.environ.get("WHEELS", "/opt/wheels"))


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """``docker ARGS``, output captured as text."""
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=check
    )


def require_engine() -> None:
    """Skip unless a Docker engine answers."""
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI (apt-get install docker.io)")
    info = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    if info.returncode != 0:
        pytest.skip(f"no Docker engine answers (start dockerd): {info.stderr.strip()[-200:]}")


def base_image() -> str:
    """The base image to build on: the variable's, else the local Debian one (built once)."""
    if os.environ.get(BASE_IMAGE_VARIABLE):
        return os.environ[BASE_IMAGE_VARIABLE]
    if docker("image", "inspect", LOCAL_BASE, check=False).returncode == 0:
        return LOCAL_BASE
    if shutil.which("mmdebstrap") is None or os.geteuid() != 0:
        pytest.skip(f"no base image: set {BASE_IMAGE_VARIABLE}, or run as root with mmdebstrap")
    subprocess.run(
        [str(ROOT / "docker" / "base" / "build.sh"), LOCAL_BASE],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return LOCAL_BASE


@dataclass(frozen=True)
class BuiltImage:
    """The image under test and what building it took."""

    tag: str
    build_s: float
    size_bytes: int


def build_cpu_image(scratch: Path) -> BuiltImage:
    """The CPU image from a clean copy of the context, with the local torch CPU wheel in
    docker/wheels/ when there is one (pip then prefers it to any index)."""
    context = scratch / "context"
    context.mkdir()
    for name in CONTEXT_PATHS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, context / name)
    for wheel in TORCH_WHEELS.glob("torch-*+cpu-*.whl"):
        shutil.copy(wheel, context / "docker" / "wheels" / wheel.name)
    shutil.copy(ROOT / ".dockerignore", context / ".dockerignore")
    started = time.monotonic()
    built = docker(
        "build",
        "--quiet",
        "--file",
        str(context / "docker" / "Dockerfile"),
        "--build-arg",
        f"BASE_IMAGE={base_image()}",
        "--tag",
        CPU_IMAGE,
        str(context),
        timeout=1800,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    size = int(docker("image", "inspect", CPU_IMAGE, "--format", "{{.Size}}").stdout)
    return BuiltImage(CPU_IMAGE, time.monotonic() - started, size)


class Container:
    """A container of the image, started detached; removed on ``remove``."""

    def __init__(self, image: str, *run_args: str, command: tuple[str, ...] = ()) -> None:
        started = docker("run", "--detach", *run_args, image, *command, check=False)
        assert started.returncode == 0, started.stderr
        self.id = started.stdout.strip()

    def logs(self) -> str:
        result = docker("logs", self.id, check=False)
        return result.stdout + result.stderr

    def state(self) -> tuple[str, int]:
        """(status, exit code), e.g. ("running", 0) or ("exited", 1)."""
        inspected = docker("inspect", self.id, "--format", "{{.State.Status}} {{.State.ExitCode}}")
        status, code = inspected.stdout.split()
        return status, int(code)

    def stop(self, timeout_s: int = 10) -> None:
        docker("stop", "--time", str(timeout_s), self.id, timeout=timeout_s + 60)

    def remove(self) -> None:
        docker("rm", "--force", self.id, check=False)
