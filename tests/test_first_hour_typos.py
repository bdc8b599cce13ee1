"""Typos are named, not ignored: config keys, management / metrics / token parameters, and
handler names, each with the closest known name (issue 13, items 8 and 9)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from modelserve_archiver.cli import main as archiver_main
from support import HANDLERS, RunningServer, start_server

from modelserve.config import config_notices, load_settings
from modelserve.worker.context import Context
from modelserve.worker.handler_loader import HandlerLoadError, load_entry_point

# TorchServe 0.12's own docker/config.properties, plus keys its docs show: modelserve must read
# it without an "unknown key" warning.
TORCHSERVE_CONFIG = """\
inference_address=http://0.0.0.0:8080
management_address=http://0.0.0.0:8081
metrics_address=http://0.0.0.0:8082
grpc_inference_address=0.0.0.0
grpc_management_address=0.0.0.0
number_of_netty_threads=32
job_queue_size=1000
model_store=/home/model-server/model-store
workflow_store=/home/model-server/wf-store
vmargs=-Xmx4g -XX:+ExitOnOutOfMemoryError
keystore=keystore.p12
keystore_pass=changeit
keystore_type=PKCS12
prefer_direct_buffer=true
default_workers_per_model=2
metrics_mode=prometheus
enable_envvars_config=true
"""


def notices(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list:
    config = tmp_path / "config.properties"
    config.write_text(text)
    return config_notices(load_settings(config, environ=environ or {}))


def warnings_of(found: list) -> list[str]:
    return [notice.message for notice in found if notice.level == logging.WARNING]


# ----- config.properties and MODELSERVE_* variables


def test_a_mistyped_config_key_is_a_warning_naming_the_right_one(tmp_path: Path) -> None:
    found = notices(tmp_path, "inferance_address=http://127.0.0.1:9000\njob_queue_size=5\n")
    assert warnings_of(found) == [
        f"{tmp_path / 'config.properties'}: unknown key 'inferance_address' is ignored "
        "(did you mean 'inference_address'?)"
    ]


def test_an_unknown_key_with_nothing_close_is_still_named(tmp_path: Path) -> None:
    [warning] = warnings_of(notices(tmp_path, "colour_scheme=dark\n"))
    assert "unknown key 'colour_scheme' is ignored" in warning
    assert "did you mean" not in warning


def test_a_torchserve_config_file_gets_no_unknown_key_warning(tmp_path: Path) -> None:
    found = notices(tmp_path, TORCHSERVE_CONFIG)
    assert warnings_of(found) == []
    # The keys modelserve has no use for are listed once, for information.
    [info] = [notice.message for notice in found if notice.level == logging.INFO]
    assert info.endswith(
        "ignored, TorchServe settings that modelserve does not use: keystore, keystore_pass, "
        "keystore_type, number_of_netty_threads, prefer_direct_buffer, vmargs, workflow_store"
    )


def test_a_mistyped_environment_variable_is_a_warning(tmp_path: Path) -> None:
    environ = {"MODELSERVE_INFERANCE_ADDRESS": "x", "MODELSERVE_JOB_QUEUE_SIZE": "5", "HOME": "/"}
    assert warnings_of(notices(tmp_path, "", environ)) == [
        "environment: unknown variable 'MODELSERVE_INFERANCE_ADDRESS' is ignored "
        "(did you mean 'MODELSERVE_INFERENCE_ADDRESS'?)"
    ]


# ----- a real server: the console, the management, metrics and token planes


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def typo_server(
    tmp_path_factory: pytest.TempPathFactory, model_store: Path
) -> Iterator[RunningServer]:
    """A server whose config file has a typo, with token authorization on (for the token API)."""
    running = start_server(
        tmp_path_factory.mktemp("typos"),
        model_store,
        config={"inferance_address": "http://127.0.0.1:9", "disable_token_authorization": "false"},
    )
    yield running
    running.stop()


@pytest.fixture()
def keys(typo_server: RunningServer) -> dict:
    return json.loads((typo_server.log_path.parent / "key_file.json").read_text())


@pytest.fixture()
def api(typo_server: RunningServer, keys: dict) -> Iterator[httpx.Client]:
    """A management client; unregisters whatever a test registered."""
    headers = bearer(keys["management"]["key"])
    with httpx.Client(base_url=typo_server.management, headers=headers, timeout=60) as client:
        yield client
        for entry in client.get("/models").json()["models"]:
            client.delete(f"/models/{entry['modelName']}")


def assert_unknown_parameter(response: httpx.Response, name: str, closest: str | None) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "BadRequestException"
    hint = f" (did you mean {closest!r}?)" if closest else ""
    assert body["message"].startswith(f"Unknown parameter {name!r}{hint}; accepted: ")


def test_the_config_typo_is_on_the_console_at_startup(typo_server: RunningServer) -> None:
    assert (
        "WARNING modelserve.server: "
        f"{typo_server.log_path.parent / 'config.properties'}: unknown key 'inferance_address' "
        "is ignored (did you mean 'inference_address'?)"
    ) in typo_server.log()


def test_a_mistyped_scale_parameter_is_400_and_changes_nothing(api: httpx.Client) -> None:
    assert api.post("/models", params={"url": "probe.mar", "initial_workers": 1}).is_success
    assert_unknown_parameter(api.put("/models/probe?min_workers=3"), "min_workers", "min_worker")
    [described] = api.get("/models/probe").json()
    assert (described["minWorkers"], described["maxWorkers"]) == (1, 1)
    assert len(described["workers"]) == 1


def test_a_mistyped_register_parameter_is_400_and_registers_nothing(api: httpx.Client) -> None:
    response = api.post("/models?url=probe.mar&intial_workers=1")
    assert_unknown_parameter(response, "intial_workers", "initial_workers")
    response = api.post("/models", json={"url": "probe.mar", "batchsize": 4})
    assert_unknown_parameter(response, "batchsize", "batch_size")
    assert api.get("/models/probe").status_code == 404


def test_every_torchserve_parameter_is_still_accepted(api: httpx.Client) -> None:
    """TorchServe 0.12's parameters of each endpoint, the ones it ignores included."""
    register = {
        "url": "probe.mar",
        "model_name": "probe",
        "handler": "probe",
        "runtime": "python",
        "batch_size": 1,
        "max_batch_delay": 100,
        "initial_workers": 1,
        "synchronous": "true",
        "response_timeout": 120,
        "startup_timeout": 120,
        "s3_sse_kms": "false",
    }
    assert api.post("/models", params=register).status_code == 200
    scale = {
        "min_worker": 2,
        "max_worker": 2,
        "synchronous": "true",
        "model_version": "1.0",
        "timeout": -1,
        "number_gpu": 0,
    }
    assert api.put("/models/probe", params=scale).status_code == 200
    assert len(api.get("/models/probe").json()[0]["workers"]) == 2
    assert api.get("/models", params={"limit": 10, "next_page_token": 0}).status_code == 200
    assert api.get("/models/probe", params={"customized": "false"}).status_code == 200
    assert api.put("/models/probe/1.0/set-default").status_code == 200
    assert api.delete("/models/probe/1.0").status_code == 200


def test_endpoints_without_parameters_refuse_any(api: httpx.Client) -> None:
    assert api.post("/models", params={"url": "probe.mar"}).is_success
    response = api.put("/models/probe/1.0/set-default", params={"synchronous": "true"})
    assert_unknown_parameter(response, "synchronous", None)
    assert response.json()["message"].endswith("accepted: none")
    # Unregistering "the default version" while the caller meant another must not happen.
    assert_unknown_parameter(
        api.delete("/models/probe", params={"version": "2.0"}), "version", None
    )
    assert api.get("/models/probe").status_code == 200
    assert_unknown_parameter(api.get("/models", params={"limits": 1}), "limits", "limit")


def test_a_mistyped_metrics_filter_is_400(typo_server: RunningServer) -> None:
    response = httpx.get(typo_server.metrics + "/metrics", params={"names[]": "ts_queue_latency"})
    assert_unknown_parameter(response, "names[]", "name[]")
    assert httpx.get(typo_server.metrics + "/metrics", params={"name[]": "x"}).status_code == 200


def test_a_mistyped_token_api_parameter_is_400(typo_server: RunningServer, keys: dict) -> None:
    response = httpx.get(
        typo_server.management + "/token",
        params={"tpye": "management"},
        headers=bearer(keys["API"]["key"]),
    )
    assert_unknown_parameter(response, "tpye", "type")


# ----- handler names


def test_the_archiver_suggests_the_builtin_a_handler_name_is_close_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--model-name", "m", "--version", "1", "--export-path", str(tmp_path)]
    assert archiver_main([*base, "--handler", "imag_classifier"]) == 1
    assert capsys.readouterr().err == (
        "model-archiver: error: --handler file not found: imag_classifier.py "
        "(did you mean the built-in handler 'image_classifier'?)\n"
    )
    # What torch-model-archiver accepts still passes: a built-in name and a handler file.
    assert archiver_main([*base, "--handler", "image_classifier"]) == 0
    assert archiver_main([*base, "-f", "--handler", str(HANDLERS / "probe.py")]) == 0


def test_a_handler_that_names_nothing_suggests_a_builtin(api: httpx.Client) -> None:
    params = {"url": "probe.mar", "handler": "imag_classifier", "initial_workers": 1}
    response = api.post("/models", params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "InvalidHandlerException"
    assert (
        "handler module 'imag_classifier' is neither in the model directory nor a built-in "
        "(did you mean 'image_classifier'?)"
    ) in body["message"]


def test_the_worker_suggests_a_close_module_or_function(tmp_path: Path) -> None:
    """Besides the built-ins, the model directory's modules and the module's functions."""
    (tmp_path / "typo_probe_handler.py").write_text("def handle(data, context):\n    return []\n")
    context = Context("m", str(tmp_path), {"model": {}}, 1, None, "test")
    try:
        with pytest.raises(HandlerLoadError, match=r"\(did you mean 'typo_probe_handler'\?\)"):
            load_entry_point("typo_probe_handlr", str(tmp_path), context)
        with pytest.raises(
            HandlerLoadError, match=r"no attribute 'handel' \(did you mean 'handle'"
        ):
            load_entry_point("typo_probe_handler:handel", str(tmp_path), context)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("typo_probe_handler", None)
