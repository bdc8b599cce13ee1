"""The CPU image, built for real and run as Docker and KServe run it: the digits archive with a
read-only root, an arbitrary UID, ``PORT``, a CPU quota and the token from a mounted secret;
probes without a key; a ``docker stop`` while requests are in flight; a read-only root with no
tmp; and the container exactly as the rendered ServingRuntime describes it (the contract).

Needs a Docker engine (``.ci/run`` installs and starts one where it can) and a base image
(tests/container_engine.py); skips, saying why, without them.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import yaml
from container_engine import BuiltImage, Container, build_cpu_image, docker, require_engine
from digits_example import DIGITS, train_and_archive
from framework_models import SAMPLE, save_torchscript
from support import free_ports, wait_until

from modelserve.grpc.proto import open_inference_pb2 as v2
from modelserve.grpc.proto import open_inference_pb2_grpc as v2_grpc

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "a-long-enough-container-token-0123"
PROBE_PATHS = ("/ping", "/v2/health/live", "/v2/health/ready")
SAMPLE_DIGIT = 7  # examples/digits/sample.png
# torch.jit is deprecated in recent torch, and still what TorchScript users archive.
pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    require_engine()
    built = build_cpu_image(tmp_path_factory.mktemp("image"))
    print(f"\nimage {built.tag}: {built.size_bytes / 1e6:,.0f} MB, built in {built.build_s:.0f} s")
    return built


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, model_store: Path) -> Path:
    """/mnt/models: the digits archive (torch, numpy and Pillow in the worker) and probe."""
    store = tmp_path_factory.mktemp("mnt_models")
    train_and_archive(tmp_path_factory.mktemp("digits_build"), store)
    shutil.copy(model_store / "probe.mar", store / "probe.mar")
    store.chmod(0o755)
    return store


@pytest.fixture
def container() -> Iterator[list[Container]]:
    started: list[Container] = []
    yield started
    for each in started:
        each.remove()


def _token_file(directory: Path) -> Path:
    path = directory / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o644)  # the container's arbitrary UID reads it, as a mounted secret
    return path


def _until_ready(url: str, box: Container) -> float:
    """Seconds until ``url``/v2/health/ready answers 200 (the container must keep running)."""
    started = time.monotonic()

    def ready() -> bool:
        status, _ = box.state()
        assert status == "running", box.logs()
        try:
            return httpx.get(url + "/v2/health/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, timeout=180, interval=0.2)
    return time.monotonic() - started


def test_the_image_serves_digits_the_kserve_way(
    image: BuiltImage, models: Path, tmp_path: Path, container: list[Container]
) -> None:
    http, management, grpc_port = free_ports(3)
    box = Container(
        image.tag,
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--user",
        "54321:0",
        "--cpus",
        "1",
        "--env",
        "PORT=8085",
        "--env",
        "MODELSERVE_AUTH_TOKEN_FILE=/run/secrets/modelserve-token",
        "--volume",
        f"{_token_file(tmp_path)}:/run/secrets/modelserve-token:ro",
        "--volume",
        f"{models}:/mnt/models:ro",
        "--publish",
        f"127.0.0.1:{http}:8085",
        "--publish",
        f"127.0.0.1:{management}:8081",
        "--publish",
        f"127.0.0.1:{grpc_port}:7070",
    )
    container.append(box)
    url = f"http://127.0.0.1:{http}"
    cold_start = _until_ready(url, box)
    print(f"\ncold start to ready in the container: {cold_start:.1f} s")

    for path in PROBE_PATHS:  # what Kubernetes' HTTP probes call, with no key
        assert httpx.get(url + path).status_code == 200, path
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        assert v2_grpc.GRPCInferenceServiceStub(channel).ServerLive(v2.ServerLiveRequest()).live

    sample = (DIGITS / "sample.png").read_bytes()
    assert httpx.post(url + "/predictions/digits", content=sample).status_code == 401
    keyed = {"Authorization": f"Bearer {TOKEN}"}
    answer = httpx.post(url + "/predictions/digits", content=sample, headers=keyed, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["digit"] == SAMPLE_DIGIT

    described = httpx.get(f"http://127.0.0.1:{management}/models/digits", headers=keyed)
    assert described.status_code == 200, described.text
    # One worker: the container's CPU quota (--cpus 1), not the host's cores.
    assert len(described.json()[0]["workers"]) == 1
    logs = box.logs()
    assert "Traceback" not in logs
    assert "health checks answer without a key" in logs
    # Docker's own HEALTHCHECK (every 10 s) agrees.
    wait_until(lambda: _health(box) == "healthy", timeout=60, interval=1)


def _health(box: Container) -> str:
    return docker("inspect", box.id, "--format", "{{.State.Health.Status}}").stdout.strip()


def test_docker_stop_answers_the_requests_in_flight_and_exits_0(
    image: BuiltImage, models: Path, tmp_path: Path, container: list[Container]
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    markers.chmod(0o777)  # written by the container's arbitrary UID
    (http,) = free_ports(1)
    box = Container(
        image.tag,
        "--user",
        "54321:0",
        "--env",
        f"MODELSERVE_AUTH_TOKEN={TOKEN}",
        "--env",
        "MODELSERVE_DEFAULT_WORKERS_PER_MODEL=4",
        "--volume",
        f"{models}:/mnt/models:ro",
        "--volume",
        f"{markers}:/markers",
        "--publish",
        f"127.0.0.1:{http}:8080",
    )
    container.append(box)
    url = f"http://127.0.0.1:{http}"
    _until_ready(url, box)
    keyed = {"Authorization": f"Bearer {TOKEN}"}

    def post(index: int) -> httpx.Response:
        body = {"touch": f"/markers/{index}", "sleep": 3, "echo": index}
        return httpx.post(url + "/predictions/probe", json=body, headers=keyed, timeout=60)

    with ThreadPoolExecutor(4) as pool:
        answers = [pool.submit(post, index) for index in range(4)]
        wait_until(lambda: len(list(markers.iterdir())) == 4, timeout=60)
        box.stop(timeout_s=10)  # Docker's default: SIGTERM, then SIGKILL after 10 s
        for index, answer in enumerate(answers):
            response = answer.result(timeout=30)
            assert response.status_code == 200, response.text
            assert response.json()["echo"] == index
    assert box.state() == ("exited", 0), box.logs()
    # The arbitrary UID could write the state directory (group 0): the snapshots are there.
    state = tmp_path / "state"
    docker("cp", f"{box.id}:/var/lib/modelserve", str(state))
    assert list(state.rglob("*-snapshot.cfg")), box.logs()


def test_a_read_only_root_without_tmp_is_one_clear_error(
    image: BuiltImage, models: Path, container: list[Container]
) -> None:
    box = Container(image.tag, "--read-only", "--volume", f"{models}:/mnt/models:ro")
    container.append(box)
    wait_until(lambda: box.state()[0] == "exited", timeout=60)
    assert box.state()[1] != 0
    logs = box.logs()
    assert "runtime_dir: no writable temporary directory" in logs, logs
    assert "Traceback" not in logs


def test_generated_keys_on_a_read_only_root_are_one_clear_error(
    image: BuiltImage, models: Path, container: list[Container]
) -> None:
    """No token given and nowhere to write the generated keys: say so, and how to fix it."""
    box = Container(
        image.tag, "--read-only", "--tmpfs", "/tmp", "--volume", f"{models}:/mnt/models:ro"
    )
    container.append(box)
    wait_until(lambda: box.state()[0] == "exited", timeout=60)
    assert box.state()[1] != 0
    logs = box.logs()
    assert "key_file: cannot write /var/lib/modelserve/key_file.json" in logs, logs
    assert "auth_token_file" in logs and "Traceback" not in logs


def _serving_runtime() -> dict:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "deploy" / "kserve")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (runtime,) = [d for d in yaml.safe_load_all(rendered) if d["kind"] == "ClusterServingRuntime"]
    return runtime


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) is not installed")
def test_the_image_runs_as_the_serving_runtime_says(
    image: BuiltImage, tmp_path: Path, container: list[Container]
) -> None:
    """KServe's contract: args, env, port, probes and security context from the rendered
    ClusterServingRuntime; the InferenceService's name for {{.Name}}; one TorchScript file in
    /mnt/models, as the storage initializer leaves it."""
    (spec,) = _serving_runtime()["spec"]["containers"]
    model_dir = tmp_path / "mnt-models"
    model_dir.mkdir()
    _, reference = save_torchscript(model_dir)
    model_dir.chmod(0o755)
    (port,) = [entry["containerPort"] for entry in spec["ports"]]
    (published,) = free_ports(1)
    security = spec["securityContext"]
    run_args = [
        "--user",
        f"{security['runAsUser']}:0",
        "--cpus",
        spec["resources"]["limits"]["cpu"],
    ]
    if security.get("readOnlyRootFilesystem"):
        run_args.append("--read-only")
    for mount in spec.get("volumeMounts", []):
        run_args += ["--tmpfs", mount["mountPath"]]  # the runtime's emptyDir volumes
    for variable in spec["env"]:
        run_args += ["--env", f"{variable['name']}={variable['value']}"]
    run_args += [
        "--volume",
        f"{model_dir}:/mnt/models:ro",
        "--publish",
        f"127.0.0.1:{published}:{port}",
    ]
    args = tuple(arg.replace("{{.Name}}", "tiny-isvc") for arg in spec["args"])
    box = Container(image.tag, *run_args, command=args)
    container.append(box)
    url = f"http://127.0.0.1:{published}"
    wait_until(lambda: _answers(url + spec["readinessProbe"]["httpGet"]["path"], box), 180, 0.2)
    assert httpx.get(url + spec["livenessProbe"]["httpGet"]["path"]).status_code == 200
    metadata = httpx.get(url + "/v2/models/tiny-isvc").json()
    (tensor,) = metadata["inputs"]
    body = {
        "inputs": [
            {"name": tensor["name"], "shape": list(SAMPLE.shape), "datatype": "FP32",
             "data": SAMPLE.ravel().tolist()}
        ]
    }  # fmt: skip
    inferred = httpx.post(url + "/v2/models/tiny-isvc/infer", json=body, timeout=60)
    assert inferred.status_code == 200, inferred.text
    (output,) = inferred.json()["outputs"]
    got = np.array(output["data"], dtype=np.float32).reshape(output["shape"])
    assert np.allclose(got, reference(SAMPLE), atol=1e-5)


def _answers(url: str, box: Container) -> bool:
    assert box.state()[0] == "running", box.logs()
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False
