"""grps's own quick-deploy client examples, unchanged, against ``modelserve torch_serve`` and
``modelserve tf_serve`` (issue 20, acceptance 1): the HTTP request with gtensors, the one with
ndarray and ``return-ndarray=true``, and the gRPC ``GrpsServiceStub(...).Predict`` with a
GenericTensor, from a grps_apis generated from modelserve's grps.proto. The answers equal the
framework's own, in-process (TensorFlow: in a process of its own). Then ``modelserve ps -n``
and ``modelserve stop``, as ``grpst ps`` and ``grpst stop``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from grps_support import (
    GRPC_EXAMPLE,
    HTTP_GTENSORS_EXAMPLE,
    HTTP_NDARRAY_EXAMPLE,
    GrpsServer,
    grps_apis,
    grps_serve,
    run_example,
    save_summary_saved_model,
    save_summary_torchscript,
    tensorflow_answer,
    torch_answer,
)

# The same float32 function computed by two runtimes (threads may sum in another order).
CLOSE = {"rtol": 1e-5, "atol": 1e-6}
# The gtensors examples send the (1, 224, 224, 3) image with shape [1, 3, 224, 224].
GTENSOR_SHAPE = (1, 3, 224, 224)


@pytest.fixture(scope="module")
def apis(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return grps_apis(tmp_path_factory.mktemp("grps_apis"))


def _check_examples(
    server: GrpsServer, scratch: Path, apis: Path, answer: Callable[[np.ndarray], np.ndarray]
) -> None:
    for example in (HTTP_GTENSORS_EXAMPLE, GRPC_EXAMPLE):
        ran = run_example(example, server, scratch, apis)
        (tensor,) = ran["got"]
        assert (tensor["dtype"], tensor["shape"]) == ("DT_FLOAT32", [1, 2])
        got = np.reshape(tensor["flat_float32"], tensor["shape"])
        assert np.allclose(got, answer(ran["img"].reshape(GTENSOR_SHAPE)), **CLOSE)
    ran = run_example(HTTP_NDARRAY_EXAMPLE, server, scratch, apis)
    assert np.allclose(np.array(ran["got"]), answer(ran["img"]), **CLOSE)


def _check_dashboard_on_the_http_port(server: GrpsServer) -> None:
    """grps users find the monitoring page at / of the HTTP port: it is there, with its
    series listing the model."""
    page = httpx.get(f"{server.http}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "dashboard.js" in page.text
    series = httpx.get(f"{server.http}/dashboard/series").json()
    assert [row["model"] for row in series["models"]] == ["summary"]


def test_torch_serve_answers_grps_client_examples(tmp_path: Path, apis: Path) -> None:
    model, module = save_summary_torchscript(tmp_path)
    server = grps_serve(tmp_path, "torch_serve", model)
    try:
        _check_examples(server, tmp_path, apis, lambda x: torch_answer(module, x))
        _check_dashboard_on_the_http_port(server)
        listed = server.cli("ps", "-n", server.name).stdout.splitlines()
    finally:
        stopped = server.cli("stop", server.name)
    header, row = listed
    assert header.split() == [
        "NAME", "PID", "UPTIME", "INFERENCE", "MANAGEMENT", "METRICS", "GRPC", "MODELS", "PATH",
    ]  # fmt: skip
    name, pid, *_, grpc_ports, models, path = row.split()
    assert (name, int(pid), models, path) == (
        server.name,
        server.record["pid"],
        "summary",
        str(model),
    )
    assert grpc_ports.startswith(server.grpc_target)
    assert server.http_address in row
    assert stopped.returncode == 0 and f"modelserve {server.name} has stopped." in stopped.stdout
    assert server.cli("ps", "-n", server.name).stdout.strip() == "No modelserve is running."


def test_tf_serve_answers_grps_client_examples(tmp_path: Path, apis: Path) -> None:
    saved = save_summary_saved_model(tmp_path)
    server = grps_serve(tmp_path, "tf_serve", saved)
    try:
        _check_examples(server, tmp_path, apis, lambda x: tensorflow_answer(saved, x, tmp_path))
    finally:
        server.stop()
