"""What the KServe v2 test modules share (REST, gRPC and the tensor handler's codecs): the real
models they serve with the built-in ``tensor`` handler, a server that serves them, and the
integer input the ``pair`` model takes beside ``framework_models.SAMPLE``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
from framework_models import save_onnx_pair, save_torchscript, tensor_archive
from support import RunningServer, start_server

# torch.jit is deprecated in recent torch, and still what TorchScript users archive.
TORCHSCRIPT_WARNINGS = [
    pytest.mark.filterwarnings("ignore:.*is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*is deprecated:DeprecationWarning"),
]
# ``pair``'s second input (int64, N by 4).
B = np.array([[1, 2, 3, 4], [-1, 0, 1, 2]], dtype=np.int64)


@dataclass
class Served:
    """A running server, where its models were built, and each model's in-process answer."""

    server: RunningServer
    build: Path
    store: Path
    references: dict[str, Any] = field(default_factory=dict)


S = TypeVar("S", bound=Served)


@dataclass
class TensorModels:
    """``pair`` (ONNX: inputs a, float32 and b, int64; outputs sum and product) and
    ``torchscript`` (TinyNet), archived for the tensor handler in ``store``."""

    build: Path
    store: Path
    files: dict[str, Path]
    references: dict[str, Any]


def tensor_models(factory: pytest.TempPathFactory, prefix: str) -> TensorModels:
    """Build both models and their archives in fresh directories named after ``prefix``."""
    build = factory.mktemp(f"{prefix}_models")
    store = factory.mktemp(f"{prefix}_store")
    pair_file, pair_reference = save_onnx_pair(build)
    script_file, script_reference = save_torchscript(build)
    tensor_archive(store, "pair", pair_file)
    tensor_archive(store, "torchscript", script_file)
    return TensorModels(
        build,
        store,
        {"pair": pair_file, "torchscript": script_file},
        {"pair": pair_reference, "torchscript": script_reference},
    )


@contextmanager
def serving(
    factory: pytest.TempPathFactory,
    models: TensorModels,
    workers: dict[str, int],
    *,
    register: dict[str, Any] | None = None,
    config: dict[str, str] | None = None,
    kind: type[S] = Served,  # type: ignore[assignment]
) -> Iterator[S]:
    """A server on ``models.store`` with each archive of ``workers`` registered with that many
    initial workers (and the further ``register`` parameters); stopped on exit."""
    server = start_server(
        factory.mktemp(f"{models.store.name}_server"), models.store, config=config
    )
    try:
        with httpx.Client(base_url=server.management, timeout=120) as management:
            for url, count in workers.items():
                params = {"url": url, "initial_workers": count, **(register or {})}
                response = management.post("/models", params=params)
                assert response.status_code == 200, response.text
        yield kind(server, models.build, models.store, models.references)
    finally:
        server.stop()
