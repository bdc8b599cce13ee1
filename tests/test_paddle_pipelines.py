"""Paddle Serving pipeline services served unchanged by ``modelserve paddle``: the example's
web_service.py (one op: a base64 image → the ONNX digits classifier → the digit) answers the
request Paddle's own pipeline_http_client.py sends as the model called in-process answers,
with the op's model batching the requests of the op's workers; a DAG that branches and joins
(tests/fixtures/paddle/branches); Paddle's error format for a bad body, an unknown service,
an op's err_code, an exception in an op, a model that refuses its feed and one that does not
answer in time; Paddle's gRPC PipelineService; the pipeline metrics (requests, failures by
reason and op, latency end to end and per op); the service described on the management API
(its ops, the models they call, its edges and state); a client that goes away (REST or gRPC)
cancels the op it waits on, and the ops after it never run; config.yml checked key by key;
the DAG read in a process of its own; Paddle inference models."""

from __future__ import annotations

import base64
import io
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import onnx
import onnxruntime
import pytest
import requests
import yaml
from modelserve_handlers.backends import ModelLoadError, load_model
from PIL import Image
from sklearn.datasets import load_digits
from support import (
    RunningServer,
    pipeline_samples,
    queue_depth,
    ready_workers,
    request_counts,
    run_cli,
    send_and_leave,
    start_server,
    wait_until,
)

from modelserve.config import ConfigError
from modelserve.grpc.proto import paddle_pipeline_pb2, paddle_pipeline_pb2_grpc
from modelserve.paddle.config import load_config
from modelserve.paddle.dag import read_dag
from modelserve.quick_deploy import servable_in

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "paddle"
BRANCHES = Path(__file__).parent / "fixtures" / "paddle" / "branches"
IMAGES = 12
BRANCHES_OPS = ("decode", "classify", "brightness", "join")


@pytest.fixture(scope="module")
def classifier() -> onnx.ModelProto:
    """The digits classifier the examples serve, as examples/triton/build.py builds it."""
    build = runpy.run_path(str(ROOT / "examples" / "triton" / "build.py"))
    return build["onnx_model"](build["train"]())


def _service(source: Path, target: Path, model_dir: str, model: onnx.ModelProto) -> Path:
    """A copy of the service at ``source`` with its model written, its ports left to the
    test (config.yml's http_port and rpc_port are fixed ports)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(model_dir, "__pycache__"))
    config = yaml.safe_load((target / "config.yml").read_text())
    for key in ("http_port", "rpc_port"):
        config.pop(key, None)
    (target / "config.yml").write_text(yaml.safe_dump(config))
    (target / model_dir).mkdir()
    onnx.save(model, target / model_dir / "model.onnx")
    return target / "web_service.py"


def _serve(workdir: Path, service_file: Path, models: dict[str, int]) -> RunningServer:
    """``modelserve paddle SERVICE`` on free ports, once every model has its workers."""
    server = start_server(workdir, workdir, command=("paddle", str(service_file)))
    try:
        for model, workers in models.items():
            wait_until(lambda model=model, n=workers: ready_workers(server, model) == n, 120)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory, classifier: Any) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("digits")
    service = _service(EXAMPLE, root / "service", "digits_model", classifier)
    server = _serve(root / "server", service, {"digits__digits": 3, "digits__digits__model": 1})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def branches(tmp_path_factory: pytest.TempPathFactory, classifier: Any) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("branches")
    service = _service(BRANCHES, root / "service", "model", classifier)
    ops = (*BRANCHES_OPS, "classify__model")
    server = _serve(root / "server", service, {f"branches__{op}": 1 for op in ops})
    yield server
    server.stop()


def _png(pixels: np.ndarray) -> bytes:
    """An 8x8 grey PNG of ``pixels`` (0..1)."""
    buffer = io.BytesIO()
    Image.fromarray((pixels * 255).round().astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _paddle_http_client(url: str, image: bytes, **extra: Any) -> requests.Response:
    """The request as Paddle's pipeline_http_client.py examples send it."""
    data = {"key": ["image"], "value": [base64.b64encode(image).decode("utf8")], **extra}
    return requests.post(url=url, data=json.dumps(data), timeout=120)


def _digit_images() -> list[np.ndarray]:
    """The first digits of scikit-learn's set as 8x8 grey levels in 0..1, as PNG pixels hold
    them (what the service's preprocess reads back)."""
    digits = load_digits()
    return [(image / 16 * 255).round() / 255 for image in digits.images[:IMAGES]]


def _gains(before: dict[tuple, float], after: dict[tuple, float]) -> dict[tuple, float]:
    """What each sample of ``pipeline_samples`` gained (a new series: its whole value)."""
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def _in_process(model: onnx.ModelProto, pixels: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(model.SerializeToString())
    return session.run(["probabilities"], {"pixels": pixels.astype(np.float32).reshape(1, 64)})[0]


def test_the_image_request_of_paddles_http_client_is_answered_as_in_process(
    digits: RunningServer, classifier: Any
) -> None:
    url = f"{digits.inference}/digits/prediction"
    for pixels in _digit_images():
        expected = _in_process(classifier, pixels)[0]
        answer = _paddle_http_client(url, _png(pixels), logid=10000)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["err_no"], body["err_msg"], body["key"]) == (0, "", ["label", "prob"])
        assert body["tensors"] == []
        label, prob = body["value"]
        assert int(label) == int(expected.argmax())
        assert float(prob) == pytest.approx(float(expected.max()), rel=1e-5)


def test_the_examples_own_client_reads_the_sample_digit(digits: RunningServer) -> None:
    client = EXAMPLE / "pipeline_http_client.py"
    url = f"{digits.inference}/digits/prediction"
    result = subprocess.run(
        [sys.executable, str(client), "--url", url, str(ROOT / "examples/digits/sample.png")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.splitlines()[0] == "erro_no:0, err_msg:"
    assert "'label': '7'" in result.stdout


def test_bad_requests_are_answered_in_paddles_format(digits: RunningServer) -> None:
    url = f"{digits.inference}/digits/prediction"
    before = pipeline_samples(digits, "digits", "paddle")
    not_json = httpx.post(url, content=b"{nope")
    assert not_json.status_code == 400  # the gateway refuses what is not a Request
    error = not_json.json()
    assert error["code"] == 3 and error["details"] == [] and error["error"] == error["message"]
    assert "not JSON" in error["message"]
    wrong = httpx.post(url, json={"key": "image", "value": ["x"]})
    assert wrong.status_code == 400 and "key must be a list of strings" in wrong.json()["error"]

    unknown = httpx.post(f"{digits.inference}/no_such/prediction", json={"key": [], "value": []})
    assert unknown.status_code == 200
    assert unknown.json() == {
        "err_no": 3002,
        "err_msg": "Failed to inference: Service name error.",
        "key": [],
        "value": [],
        "tensors": [],
    }
    missing = httpx.post(url, json={"key": ["image", "more"], "value": ["x"]}).json()
    assert missing["err_no"] == 8000 and "2 keys but 1 values" in missing["err_msg"]
    tensors = httpx.post(url, json={"tensors": [{"name": "image", "elem_type": 12}]}).json()
    assert tensors["err_no"] == 8000 and "tensors are not supported yet" in tensors["err_msg"]
    # The op's preprocess answers an error code of its own (51) for what is not an image.
    bad_image = _paddle_http_client(url, b"not an image")
    assert bad_image.status_code == 200
    assert bad_image.json()["err_no"] == 51
    assert bad_image.json()["err_msg"].startswith("image: not a base64 PNG or JPEG")
    # ...and serves on.
    assert _paddle_http_client(url, _png(_digit_images()[0])).json()["err_no"] == 0
    # Every request the service took counts; those it refused before any op ran as "other",
    # the op's own error as a failure of that op. Unreadable bodies and unknown services
    # never reached it.
    gained = _gains(before, pipeline_samples(digits, "digits", "paddle"))
    assert gained[("modelserve_pipeline_requests_total", ())] == 4
    other = ("modelserve_pipeline_failures_total", (("reason", "other"), ("step", "")))
    in_op = ("modelserve_pipeline_failures_total", (("reason", "step"), ("step", "digits")))
    assert (gained[other], gained[in_op]) == (2, 1)
    assert pipeline_samples(digits, "no_such", "paddle") == {}


def test_paddles_grpc_pipeline_service_answers_as_http(
    digits: RunningServer, classifier: Any
) -> None:
    pixels = _digit_images()[5]
    image = base64.b64encode(_png(pixels)).decode("utf8")
    with grpc.insecure_channel(digits.grpc_inference) as channel:
        stub = paddle_pipeline_pb2_grpc.PipelineServiceStub(channel)
        # As Paddle's PipelineClient packs a feed dict: no service name, a logid, its address.
        request = paddle_pipeline_pb2.Request(
            key=["image"], value=[image], logid=3, clientip="127.0.0.1"
        )
        answer = stub.inference(request, timeout=120)
        unknown = stub.inference(paddle_pipeline_pb2.Request(name="other"), timeout=120)
    assert (answer.err_no, answer.err_msg, list(answer.key)) == (0, "", ["label", "prob"])
    assert int(answer.value[0]) == int(_in_process(classifier, pixels).argmax())
    assert (unknown.err_no, unknown.err_msg) == (3002, "Failed to inference: Service name error.")


def _model_batches(server: RunningServer, model: str) -> list[int]:
    stats = httpx.get(f"{server.inference}/v2/models/{model}/stats").json()
    return [entry["batch_size"] for entry in stats["model_stats"][0]["batch_stats"]]


def test_the_ops_workers_share_their_models_batches(digits: RunningServer) -> None:
    url = f"{digits.inference}/digits/prediction"
    model = "digits__digits__model"
    workers = httpx.get(f"{digits.management}/models/{model}").json()[0]["workers"]
    images = [_png(pixels) for pixels in _digit_images()]
    # The op's three workers call its one model worker at once only while it is held: then
    # two calls wait in its queue together and leave as one batch.
    for worker in workers:
        os.kill(worker["pid"], signal.SIGSTOP)
    with ThreadPoolExecutor(len(images)) as pool:
        try:
            running = [pool.submit(_paddle_http_client, url, image) for image in images]
            wait_until(lambda: (queue_depth(digits, model) or 0) >= 2, 60)
        finally:
            for worker in workers:
                os.kill(worker["pid"], signal.SIGCONT)
        answers = [future.result().json() for future in running]
    assert [answer["err_no"] for answer in answers] == [0] * len(images)
    assert max(_model_batches(digits, model)) > 1
    # The op is a model version like any other: its own statistics count every request.
    op_stats = httpx.get(f"{digits.inference}/v2/models/digits__digits/stats").json()
    assert op_stats["model_stats"][0]["inference_count"] >= len(images)


def test_a_dag_that_branches_and_joins(branches: RunningServer, classifier: Any) -> None:
    pixels = _digit_images()[3]
    answer = _paddle_http_client(f"{branches.inference}/branches/prediction", _png(pixels), logid=7)
    body = answer.json()
    assert body["err_no"] == 0, body
    assert body["key"] == ["label", "mean", "inputs", "log_id"]
    label, mean, inputs, log_id = body["value"]
    assert int(label) == int(_in_process(classifier, pixels).argmax())
    assert float(mean) == pytest.approx(float(pixels.astype(np.float32).mean()), rel=1e-6)
    assert inputs == "brightness,classify"  # join read both branches, by op name
    assert log_id == "7"


def test_every_request_and_op_is_measured(branches: RunningServer) -> None:
    before = pipeline_samples(branches, "branches", "paddle")
    url = f"{branches.inference}/branches/prediction"
    answer = _paddle_http_client(url, _png(_digit_images()[0]))
    assert answer.json()["err_no"] == 0
    gained = _gains(before, pipeline_samples(branches, "branches", "paddle"))
    assert gained[("modelserve_pipeline_requests_total", ())] == 1
    assert gained[("modelserve_pipeline_latency_seconds_count", ())] == 1
    for op in BRANCHES_OPS:  # each op, labelled with the model that serves it
        key = (("model", f"branches__{op}"), ("step", op))
        assert gained[("modelserve_pipeline_step_latency_seconds_count", key)] == 1
    assert not any(value for (name, _), value in gained.items() if name.endswith("failures_total"))


def test_failures_in_ops_and_models_name_them(branches: RunningServer) -> None:
    url = f"{branches.inference}/branches/prediction"
    before = pipeline_samples(branches, "branches", "paddle")
    image = base64.b64encode(_png(_digit_images()[0])).decode()

    def call(**request: str) -> dict[str, Any]:
        body = {"key": list(request), "value": list(request.values())}
        answer = httpx.post(url, json=body, timeout=120)
        assert answer.status_code == 200, answer.text
        return answer.json()

    refused = call(image=image, width="10")  # pixels the model does not take
    assert refused["err_no"] == 5000
    assert refused["err_msg"].startswith("[classify] failed to predict.")
    assert "branches__classify__model answered 400" in refused["err_msg"]
    raised = call(image=image, **{"raise": "now"})
    assert raised["err_no"] == 10000
    assert "Raise_msg: told to fail: now" in raised["err_msg"]
    assert "ClassName: DecodeOp.preprocess" in raised["err_msg"]
    assert call(image=image)["err_no"] == 0
    gained = _gains(before, pipeline_samples(branches, "branches", "paddle"))
    failures = {
        labels: value
        for (name, labels), value in gained.items()
        if name == "modelserve_pipeline_failures_total" and value
    }
    assert failures == {
        (("reason", "step"), ("step", "classify")): 1,
        (("reason", "step"), ("step", "decode")): 1,
    }


def test_a_model_that_does_not_answer_in_time_is_a_timeout(branches: RunningServer) -> None:
    model = "branches__classify__model"
    worker = httpx.get(f"{branches.management}/models/{model}").json()[0]["workers"][0]
    url = f"{branches.inference}/branches/prediction"
    image = _png(_digit_images()[0])
    os.kill(worker["pid"], signal.SIGSTOP)
    try:
        late = _paddle_http_client(url, image).json()  # the op's timeout: 2 s, two attempts
    finally:
        os.kill(worker["pid"], signal.SIGCONT)
    assert late["err_no"] == 6000
    assert "[classify] failed to predict." in late["err_msg"]
    assert "exceeded retry count" in late["err_msg"]
    assert _paddle_http_client(url, image).json()["err_no"] == 0


def test_the_service_is_described_on_the_management_api(branches: RunningServer) -> None:
    api = httpx.Client(base_url=branches.management, timeout=120)
    (described,) = api.get("/services/branches").json()
    assert {key: described[key] for key in ("serviceName", "platform", "ready")} == {
        "serviceName": "branches",
        "platform": "paddle",
        "ready": True,
    }
    nodes = {node["name"]: node for node in described["nodes"]}
    assert list(nodes) == list(BRANCHES_OPS)
    for op, node in nodes.items():
        assert (node["modelName"], node["state"]) == (f"branches__{op}", "AVAILABLE")
        assert len(node["workers"]) == 1
        assert node["outputMap"] == {"output": op}  # an op's answer flows on under its name
    assert nodes["decode"]["inputMap"] == {"@DAGExecutor": "@DAGExecutor"}  # the request
    assert nodes["join"]["inputMap"] == {"classify": "classify", "brightness": "brightness"}
    # The op that calls a model shows it; the others call none.
    model = nodes["classify"]["model"]
    assert (model["modelName"], model["state"]) == ("branches__classify__model", "AVAILABLE")
    assert [op for op, node in nodes.items() if "model" in node] == ["classify"]
    assert [(edge["from"], edge["to"], edge["tensors"]) for edge in described["edges"]] == [
        ("decode", "classify", ["decode"]),
        ("decode", "brightness", ["decode"]),
        ("classify", "join", ["classify"]),
        ("brightness", "join", ["brightness"]),
    ]
    # Without its op's model the service cannot answer: it is not ready, and says why.
    scaled = "/models/branches__classify__model"
    assert api.put(scaled, params={"min_worker": 0, "max_worker": 0}).is_success
    try:
        (described,) = api.get("/services/branches").json()
        classify = next(node for node in described["nodes"] if node["name"] == "classify")
        assert (described["ready"], classify["model"]["state"]) == (False, "END")
    finally:
        assert api.put(scaled, params={"min_worker": 1, "synchronous": "true"}).is_success
    assert api.get("/services/branches").json()[0]["ready"] is True
    unknown = api.get("/services/no_such")
    assert unknown.status_code == 404
    assert unknown.json()["message"] == "Paddle Serving service not found: no_such"


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_a_client_that_goes_away_cancels_the_ops_not_yet_answered(
    branches: RunningServer, protocol: str, tmp_path: Path
) -> None:
    image = base64.b64encode(_png(_digit_images()[0])).decode()
    before = {op: request_counts(branches, f"branches__{op}") for op in BRANCHES_OPS}
    samples_before = pipeline_samples(branches, "branches", "paddle")
    # decode, the first op, naps on this request until the release file exists.
    keys, values = ["image", "nap"], [image, str(tmp_path)]
    try:
        if protocol == "rest":
            body = json.dumps({"key": keys, "value": values}).encode()
            path = "/branches/prediction"
            connection = send_and_leave(branches.inference, path, body, "application/json")
            leave = connection.close
        else:
            channel = grpc.insecure_channel(branches.grpc_inference)
            stub = paddle_pipeline_pb2_grpc.PipelineServiceStub(channel)
            call = stub.inference.future(paddle_pipeline_pb2.Request(key=keys, value=values))
            leave = call.cancel
        try:
            wait_until((tmp_path / "started").exists, 60)
        finally:
            leave()
        # decode's request is cancelled at once, while decode's worker still naps on it ...
        wait_until(
            lambda: (
                request_counts(branches, "branches__decode")["fail"] == before["decode"]["fail"] + 1
            ),
            60,
        )
    finally:
        (tmp_path / "release").touch()
        if protocol == "grpc":
            channel.close()
    # ... and once decode's worker is done with it, the ops after decode never hear of it: a
    # request of our own, queued after anything the service would have sent them, is all
    # they get.
    wait_until(
        lambda: (
            request_counts(branches, "branches__decode")["executions"]
            == before["decode"]["executions"] + 1
        ),
        60,
    )
    url = f"{branches.inference}/branches/prediction"
    assert _paddle_http_client(url, _png(_digit_images()[0])).json()["err_no"] == 0
    for op in BRANCHES_OPS[1:]:
        counts = request_counts(branches, f"branches__{op}")
        gained = {key: counts[key] - before[op][key] for key in counts}
        assert gained == {"success": 1, "fail": 0, "executions": 1}, op
    gained = _gains(samples_before, pipeline_samples(branches, "branches", "paddle"))
    cancelled = ("modelserve_pipeline_failures_total", (("reason", "cancelled"), ("step", "")))
    assert gained[cancelled] == 1


def test_config_yml_is_checked_key_by_key() -> None:
    config = load_config(
        None,
        {
            "http_port": 18082,
            "worker_num": 4,
            "colour": "blue",
            "op": {
                "det": {
                    "concurrency": 3,
                    "batch_size": 8,
                    "local_service_conf": {"model_config": "m", "devices": "0,1", "ir_optim": True},
                }
            },
        },
    )
    det = config.ops["det"]
    assert (config.http_port, det.concurrency, det.batch_size) == (18082, 3, 8)
    assert (det.model_config, det.gpus) == ("m", (0, 1))
    assert any("worker_num is ignored" in notice for notice in config.notices)
    assert any("colour is not a key modelserve knows" in notice for notice in config.notices)
    assert any("op.det.local_service_conf.ir_optim is ignored" in n for n in config.notices)
    for document, words in (
        ({"http_port": "18082"}, "http_port must be a port number"),
        ({"op": {"det": {"concurrency": 0}}}, "op.det.concurrency must be a whole number ≥ 1"),
        ({"op": {"det": {"fetch_list": "x"}}}, "op.det.fetch_list must be a list of names"),
        ({"dag": {"retry": True}}, "dag.retry must be a whole number"),
        ({"op": {"det": {"server_endpoints": ["h:1"]}}}, "remote Paddle Serving"),
        ({"op": {"d": {"local_service_conf": {"device_type": 4}}}}, "Kunlun XPU"),
        ({"op": {"d": {"local_service_conf": {"devices": "a"}}}}, "GPU numbers"),
        ([1, 2], "the document must be a mapping"),
    ):
        with pytest.raises(ConfigError, match=words):
            load_config(None, document)


def test_the_dag_is_read_by_running_the_file_elsewhere(tmp_path: Path) -> None:
    dag = read_dag(BRANCHES / "web_service.py", 120)
    assert dag.name == "branches" and dag.last == "join"
    assert [(op.name, op.inputs) for op in dag.ops] == [
        ("decode", ["@DAGExecutor"]),
        ("classify", ["decode"]),
        ("brightness", ["decode"]),
        ("join", ["classify", "brightness"]),
    ]
    assert dag.config_file == BRANCHES / "config.yml"
    assert "paddle_serving_server" not in sys.modules  # the frontend ran none of it

    broken = tmp_path / "web_service.py"
    broken.write_text("from paddle_serving_server.web_service import WebService\n1 / 0\n")
    with pytest.raises(ConfigError, match=r"(?s)failed before run_service\(\).*ZeroDivisionError"):
        read_dag(broken, 120)
    refused = run_cli("paddle", str(broken), cwd=tmp_path)
    assert refused.returncode == 1 and "ZeroDivisionError" in refused.stderr


def test_an_op_model_directory_must_hold_one_model(tmp_path: Path) -> None:
    shutil.copytree(BRANCHES, tmp_path / "service")
    (tmp_path / "service" / "model").mkdir()
    refused = run_cli("paddle", str(tmp_path / "service" / "web_service.py"), cwd=tmp_path)
    assert refused.returncode == 1
    assert "op.classify.local_service_conf.model_config" in refused.stderr
    assert "must hold exactly one model" in refused.stderr


def test_a_paddle_inference_model_runs_on_paddle_inference(tmp_path: Path) -> None:
    paddle = pytest.importorskip("paddle")
    layer = paddle.nn.Linear(4, 2)
    layer.eval()
    spec = [paddle.static.InputSpec([None, 4], "float32", "x")]
    paddle.jit.save(layer, str(tmp_path / "inference"), input_spec=spec)
    program = servable_in(tmp_path)  # .pdmodel, or the .json of Paddle 3
    model = load_model(tmp_path, {"model": {"serializedFile": program.name}}, "cpu")
    features = np.arange(8, dtype=np.float32).reshape(2, 4)
    (output,) = model({"x": features}).values()
    np.testing.assert_allclose(output, layer(paddle.to_tensor(features)).numpy(), rtol=1e-6)


def test_a_paddle_inference_model_needs_paddlepaddle(tmp_path: Path) -> None:
    try:
        import paddle  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("paddlepaddle is installed")
    (tmp_path / "inference.pdmodel").write_bytes(b"program")
    (tmp_path / "inference.pdiparams").write_bytes(b"weights")
    manifest = {"model": {"serializedFile": "inference.pdmodel"}}
    with pytest.raises(
        ModelLoadError, match=r"paddle is not installed: pip install modelserve\[paddle\]"
    ):
        load_model(tmp_path, manifest, "cpu")
