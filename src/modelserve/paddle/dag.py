"""A pipeline service's DAG, read by running its ``web_service.py`` in a process of its own
(``modelserve.worker.paddle_dag``): the frontend never runs user code."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelserve.config import ConfigError

# How much of a failed run's output is shown (the end of its traceback).
FAILURE_LINES = 15
# What an op's constructor may set, winning over config.yml (as in Paddle Serving).
OVERRIDES = (
    "concurrency",
    "fetch_list",
    "timeout",
    "retry",
    "batch_size",
    "auto_batching_timeout",
    "client_type",
)


@dataclass(frozen=True, slots=True)
class DescribedOp:
    """One op of the DAG: the ops it reads from (the request: ``@DAGExecutor``), its class,
    and what its constructor set."""

    name: str
    inputs: list[str]
    class_name: str
    overrides: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ServiceDag:
    """What ``web_service.py`` builds: the service's name, its configuration (the YAML file,
    or a dict), its ops (each after those it reads from) and the op that answers."""

    name: str
    config_file: Path | None
    config: Any
    ops: list[DescribedOp]
    last: str


def read_dag(service_file: Path, timeout_s: float) -> ServiceDag:
    """Run ``service_file`` up to its ``run_service()`` and read the DAG it prepared;
    ConfigError with the end of its output when it fails."""
    with tempfile.TemporaryDirectory(prefix="modelserve-paddle-dag-") as directory:
        out = Path(directory) / "dag.json"
        command = [
            sys.executable,
            "-m",
            "modelserve.worker.paddle_dag",
            str(service_file),
            str(out),
        ]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise ConfigError(
                f"{service_file}: still running after {timeout_s:g} s without reaching "
                "run_service()"
            ) from None
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip().splitlines()[-FAILURE_LINES:]
            raise ConfigError(f"{service_file} failed before run_service():\n" + "\n".join(output))
        description = json.loads(out.read_text())
    ops = [
        DescribedOp(
            op["name"],
            op["inputs"],
            op["class"],
            {key: op[key] for key in OVERRIDES if op.get(key) is not None},
        )
        for op in description["ops"]
    ]
    config_file = description["config_file"]
    return ServiceDag(
        description["name"],
        Path(config_file) if config_file is not None else None,
        description["config"],
        ops,
        description["last"],
    )
