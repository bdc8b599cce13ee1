"""Device placement: which GPU (or the CPU) each worker gets, from the GPU count, the
``device`` setting and the model config's ``deviceType`` / ``deviceIds``.

No GPU is needed: the assignment is a pure function, and the end-to-end tests force
``number_of_gpu=2`` and read back the ``gpu_id`` each worker's handler was given.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from support import RunningServer, build_test_archive, free_ports, start_server, wait_until

from modelserve.config import ConfigError, load_settings
from modelserve.engine import devices
from modelserve.engine.devices import (
    DevicePlacementError,
    Placement,
    count_visible_gpus,
    resolve_placement,
    visible_gpu_count,
)
from modelserve.engine.model_config import load_model_config


def assign(placement: Placement, workers: int) -> list[int | None]:
    """The GPUs of ``workers`` workers started one after another."""
    live: list[int | None] = []
    for _ in range(workers):
        live.append(placement.next_gpu(live))
    return live


# ----- the pure assignment


def test_no_gpu_means_cpu() -> None:
    placement = resolve_placement(0)
    assert placement.device_type == "cpu"
    assert assign(placement, 3) == [None, None, None]


def test_workers_go_round_robin_over_the_visible_gpus() -> None:
    placement = resolve_placement(2)
    assert placement.device_type == "gpu"
    assert assign(placement, 5) == [0, 1, 0, 1, 0]


def test_a_replacement_worker_takes_the_gpu_its_predecessor_left() -> None:
    placement = resolve_placement(3)
    live = assign(placement, 3)  # [0, 1, 2]
    live.remove(0)  # the worker on GPU 0 crashed
    assert placement.next_gpu(live) == 0


@pytest.mark.parametrize(
    ("gpus", "device", "device_type", "device_ids", "expected"),
    [
        (2, "cpu", None, None, ()),
        (2, "cpu", "gpu", (1,), ()),  # the server-wide setting beats the model config
        (2, "cuda:1", None, None, (1,)),
        (2, "cuda:1", "cpu", (0,), (1,)),
        (4, "cuda", "cpu", (3, 1), (3, 1)),  # forced onto GPUs, still within deviceIds
        (2, None, "cpu", None, ()),
        (2, None, "gpu", None, (0, 1)),
        (4, None, None, (2, 3, 2), (2, 3)),
        (0, None, "gpu", (0,), ()),  # a GPU model on a machine without one serves on the CPU
    ],
)
def test_placement_precedence(
    gpus: int,
    device: str | None,
    device_type: str | None,
    device_ids: tuple[int, ...] | None,
    expected: tuple[int, ...],
) -> None:
    assert resolve_placement(gpus, device, device_type, device_ids).gpu_ids == expected


def test_deviceids_restrict_the_round_robin() -> None:
    assert assign(resolve_placement(4, device_ids=(1, 3)), 4) == [1, 3, 1, 3]
    assert assign(resolve_placement(2, "cuda:1"), 2) == [1, 1]


@pytest.mark.parametrize(
    ("gpus", "device", "device_ids", "message"),
    [
        (0, "cuda", None, "cuda asked for, but no GPU is visible"),
        (0, "cuda:0", None, "cuda:0 asked for, but no GPU is visible"),
        (2, "cuda:2", None, "GPU 2 asked for, but only GPUs 0-1 are visible"),
        (1, None, (0, 1), "GPU 1 asked for, but only GPU 0 is visible"),
    ],
)
def test_a_gpu_that_is_not_there_is_refused(
    gpus: int, device: str | None, device_ids: tuple[int, ...] | None, message: str
) -> None:
    with pytest.raises(DevicePlacementError, match=message):
        resolve_placement(gpus, device, device_ids=device_ids)


# ----- counting GPUs


@pytest.mark.parametrize(
    ("cuda_visible_devices", "physical", "expected"),
    [
        (None, None, 0),
        (None, 4, 4),
        ("", 4, 0),
        ("0,1", None, 2),
        ("2,3", 4, 2),
        ("0,1,2", 2, 2),  # CUDA cannot show more than there are
        ("0,-1,1", 4, 1),  # entries after an invalid one are hidden, as in CUDA
        ("GPU-8e3c1f0a-7d1b-4c33-b0a0-3b51b3a8b6f1", None, 1),
    ],
)
def test_count_visible_gpus(
    cuda_visible_devices: str | None, physical: int | None, expected: int
) -> None:
    assert count_visible_gpus(cuda_visible_devices, physical) == expected


def test_an_explicit_number_of_gpu_is_trusted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(devices, "probe_physical_gpus", lambda: None)
    assert visible_gpu_count(None, "0,1,2") == 3
    with caplog.at_level(logging.WARNING, "modelserve.engine"):
        assert visible_gpu_count(2, None) == 2
    assert "number_of_gpu=2, but 0 GPUs are visible" in caplog.text


def test_probe_without_nvml_is_none_not_an_error() -> None:
    # Here NVML is either missing or has no driver to talk to; a count is fine too.
    assert devices.probe_physical_gpus() in (None, *range(64))


# ----- settings and model config


def test_device_setting_is_validated() -> None:
    assert load_settings(None, {"device": "cuda:3"}, environ={}).device == "cuda:3"
    with pytest.raises(ConfigError, match=r"device: .*expected cpu, cuda or cuda:N"):
        load_settings(None, {"device": "gpu"}, environ={})


def test_model_config_device_keys(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("deviceType: gpu\ndeviceIds: [1, 0]\n")
    config = load_model_config(good)
    assert (config.device_type, config.settings.device_ids) == ("gpu", (1, 0))
    bad = tmp_path / "bad.yaml"
    bad.write_text("deviceType: tpu\ndeviceIds: [one]\n")
    with caplog.at_level(logging.WARNING, "modelserve.engine"):
        config = load_model_config(bad)
    assert (config.device_type, config.settings.device_ids) == (None, None)
    assert "ignoring deviceType='tpu'" in caplog.text
    assert "ignoring deviceIds=['one']" in caplog.text


# ----- end to end, with two GPUs forced


@pytest.fixture(scope="module")
def two_gpu_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    store = tmp_path_factory.mktemp("device_store")
    configs = tmp_path_factory.mktemp("device_configs")
    build_test_archive(store, "spread", "probe.py")
    for name, yaml_text in {
        "on_cpu": "deviceType: cpu\n",
        "on_gpu1": "deviceIds: [1]\n",
        "on_gpu5": "deviceIds: [5]\n",
    }.items():
        config = configs / f"{name}.yaml"
        config.write_text(yaml_text)
        build_test_archive(store, name, "probe.py", config_file=config)
    running = start_server(
        tmp_path_factory.mktemp("device_server"), store, config={"number_of_gpu": "2"}
    )
    yield running
    running.stop()


def register(server: RunningServer, url: str, workers: int) -> httpx.Response:
    params = {"url": url, "initial_workers": workers, "synchronous": "true"}
    return httpx.post(f"{server.management}/models", params=params, timeout=120)


def gpu_ids_by_worker(server: RunningServer, model: str, workers: int) -> dict[int, int | None]:
    """pid → gpu_id, from concurrent requests that keep every worker busy at once."""
    seen: dict[int, int | None] = {}

    def sample() -> bool:
        with ThreadPoolExecutor(workers) as pool:
            answers = pool.map(
                lambda _: httpx.post(
                    f"{server.inference}/predictions/{model}", json={"sleep": 0.3}, timeout=30
                ).json(),
                range(workers),
            )
            seen.update((answer["pid"], answer["gpu_id"]) for answer in answers)
        return len(seen) == workers

    wait_until(sample, timeout=30)
    return seen


def describe(server: RunningServer, model: str) -> dict:
    return httpx.get(f"{server.management}/models/{model}").json()[0]


def test_two_workers_get_gpu_0_and_1(two_gpu_server: RunningServer) -> None:
    response = register(two_gpu_server, "spread.mar", 2)
    assert response.status_code == 200, response.text
    assert sorted(gpu_ids_by_worker(two_gpu_server, "spread", 2).values()) == [0, 1]
    description = describe(two_gpu_server, "spread")
    assert description["deviceType"] == "gpu"
    assert "deviceIds" not in description
    assert [worker["gpu"] for worker in description["workers"]] == [True, True]


def test_model_config_device_type_cpu(two_gpu_server: RunningServer) -> None:
    assert register(two_gpu_server, "on_cpu.mar", 1).status_code == 200
    assert list(gpu_ids_by_worker(two_gpu_server, "on_cpu", 1).values()) == [None]
    description = describe(two_gpu_server, "on_cpu")
    assert description["deviceType"] == "cpu"
    assert description["workers"][0]["gpu"] is False


def test_model_config_device_ids(two_gpu_server: RunningServer) -> None:
    assert register(two_gpu_server, "on_gpu1.mar", 2).status_code == 200
    assert list(gpu_ids_by_worker(two_gpu_server, "on_gpu1", 2).values()) == [1, 1]
    assert describe(two_gpu_server, "on_gpu1")["deviceIds"] == [1]


def test_device_ids_beyond_the_gpus_fail_registration(two_gpu_server: RunningServer) -> None:
    response = register(two_gpu_server, "on_gpu5.mar", 1)
    assert response.status_code == 400
    assert response.json()["message"] == (
        "Model on_gpu5: GPU 5 asked for, but only GPUs 0-1 are visible"
    )


def test_start_refuses_a_device_that_is_not_there(tmp_path: Path) -> None:
    ports = free_ports(3)
    config = tmp_path / "config.properties"
    config.write_text(
        "number_of_gpu=2\n"
        "enable_grpc=false\n"
        f"inference_address=http://127.0.0.1:{ports[0]}\n"
        f"management_address=http://127.0.0.1:{ports[1]}\n"
        f"metrics_address=http://127.0.0.1:{ports[2]}\n"
        f"runtime_dir={tmp_path / 'runtime'}\n"
    )
    command = [sys.executable, "-m", "modelserve.cli", "start", "--foreground"]
    command += ["--ts-config", str(config), "--device", "cuda:2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 1
    assert (
        "modelserve: device: GPU 2 asked for, but only GPUs 0-1 are visible"
        in result.stderr.splitlines()
    )
