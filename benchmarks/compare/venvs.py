"""Isolated virtualenvs for the servers compared with modelserve, created once and reused.

Each server under comparison gets its own venv under a cache directory, so their pinned
dependencies neither clash with each other nor with modelserve's own environment. Torch comes
from the local CPU wheel when the machine has one (``/opt/wheels``), otherwise from PyTorch's
CPU index: a plain ``pip install torch`` would pull gigabytes of CUDA libraries.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

TORCH_WHEEL_DIR = Path("/opt/wheels")
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
STAMP_NAME = "bench-requirements.json"
PIP_TAIL_LINES = 40
# Variables that would point the venv's interpreter at another environment's packages.
LEAKY_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")


class VenvError(RuntimeError):
    """Creating a venv or installing into it failed."""


def local_torch_wheel() -> Path | None:
    """The local CPU torch wheel built for this interpreter's version, if the machine has one."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    wheels = sorted(TORCH_WHEEL_DIR.glob(f"torch-*-{tag}-*.whl"))
    return wheels[-1] if wheels else None


def torch_install_args() -> list[str]:
    """``pip install`` arguments that install a CPU-only torch."""
    wheel = local_torch_wheel()
    if wheel is not None:
        return [str(wheel)]
    return ["--index-url", TORCH_CPU_INDEX, "torch"]


def venv_env(python: Path) -> dict[str, str]:
    """The environment to run ``python`` (or its venv's scripts) in, isolated from ours.

    The venv's ``bin`` goes first on ``PATH`` because servers such as TorchServe start their
    workers with whatever ``python`` they find there.
    """
    env = {key: value for key, value in os.environ.items() if key not in LEAKY_VARIABLES}
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(python.parent.parent)
    return env


def _run(command: list[str], what: str, env: dict[str, str]) -> None:
    """Run an install step; on failure raise with the tail of what it printed."""
    result = subprocess.run(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-PIP_TAIL_LINES:])
        raise VenvError(
            f"{what} failed with exit code {result.returncode}: {' '.join(command)}\n{tail}"
        )


def ensure_venv(cache: Path, name: str, requirements: list[str], torch: bool = True) -> Path:
    """Create ``cache/name`` with ``requirements`` (and torch) installed; return its python.

    Idempotent: a stamp written after a successful install records what was asked for, so a
    second call with the same arguments returns at once, while changed requirements or an
    install cut short rebuild the venv from scratch.
    """
    root = cache / name
    python = root / "bin" / "python"
    stamp = root / STAMP_NAME
    wanted = {"requirements": requirements, "torch": torch_install_args() if torch else None}
    if python.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return python
    started = time.monotonic()
    if root.exists():
        print(f"[venv {name}] requirements changed or last install incomplete; rebuilding")
        shutil.rmtree(root)
    print(f"[venv {name}] creating {root}", flush=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    # The base interpreter, not ours: a venv nested on modelserve's venv would see nothing
    # of it anyway, and this keeps the new one independent of where it was made from.
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", str(root)], f"creating venv {name}", dict(os.environ))
    env = venv_env(python)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
    if torch:
        # Torch first and on its own, so the requirements' own torch dependency is already met
        # and pip never reaches for PyPI's CUDA build.
        print(f"[venv {name}] installing torch ({' '.join(wanted['torch'])})", flush=True)
        _run(pip + wanted["torch"], f"installing torch into {name}", env)
    if requirements:
        print(f"[venv {name}] installing {' '.join(requirements)}", flush=True)
        _run(pip + requirements, f"installing requirements into {name}", env)
    stamp.write_text(json.dumps(wanted, indent=2) + "\n")
    print(f"[venv {name}] ready in {time.monotonic() - started:.0f} s", flush=True)
    return python
