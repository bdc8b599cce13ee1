"""The data plane over an in-process engine, on real archives: health and its reasons, version
status, TF Serving labels, metadata and readiness as every adapter receives them. Real worker
processes where a state needs one (a loaded or a failing model)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from in_process import run_engine
from support import build_test_archive

from modelserve import __version__
from modelserve.engine.dataplane import DataPlane
from modelserve.engine.engine import Engine
from modelserve.engine.errors import (
    BadRequestException,
    ModelNotFoundException,
    ModelVersionNotFoundException,
)
from modelserve.engine.health import Health, HealthStatus
from modelserve.engine.registration import RegisterOptions
from modelserve.engine.results import ModelMetadata, RepositoryEntry, ServingState, VersionStatus
from modelserve.wire import RequestParameter, WireRequest

LOADING_STARTUP_MODELS = {"*": "the server is loading its startup models"}


def test_health_waits_for_the_startup_models_and_names_the_failed(
    model_store: Path, tmp_path: Path
) -> None:
    async def scenario(engine: Engine) -> list[Health]:
        plane = DataPlane(engine)
        seen = [plane.health()]
        await engine.load_startup_models(["ghost=missing.mar"])
        seen.append(plane.health())
        # A model of the failed entry's name, registered later, settles it (no worker asked).
        await plane.register(RegisterOptions(url="other.mar", model_name="ghost"))
        seen.append(plane.health())
        return seen

    loading, failed, settled = run_engine(model_store, tmp_path / "run", scenario)
    assert loading == Health(HealthStatus.UNHEALTHY, LOADING_STARTUP_MODELS)
    assert not loading.ready
    assert failed.status is HealthStatus.UNHEALTHY
    assert list(failed.not_ready) == ["ghost"] and "missing.mar" in failed.not_ready["ghost"]
    assert failed.body() == {"status": "Unhealthy", "modelsNotReady": failed.not_ready}
    assert settled == Health(HealthStatus.HEALTHY) and settled.ready
    assert settled.body() == {"status": "Healthy"}  # exactly TorchServe's


def test_version_states_and_health_with_real_workers(model_store: Path, tmp_path: Path) -> None:
    async def scenario(engine: Engine) -> dict[str, object]:
        plane = DataPlane(engine)
        await engine.load_startup_models([])
        await plane.register(RegisterOptions(url="probe.mar", initial_workers=1))
        await plane.register(RegisterOptions(url="probe_v2.mar", initial_workers=0))
        await plane.register(RegisterOptions(url="other.mar", initial_workers=0))
        seen: dict[str, object] = {
            "probe": plane.version_statuses("probe"),
            "other": plane.version_status("other"),
            "healthy": plane.health(),
        }
        await plane.register(
            RegisterOptions(url="broken.mar", initial_workers=1, synchronous=False)
        )
        await engine.settle()  # its first worker has failed to load
        seen["broken"] = plane.version_status("broken")
        seen["partial"] = plane.health()
        # Asked for a worker that has not loaded yet: loading, with no error to tell.
        await engine.registry.get("other").scale(1, 1, wait=False)
        seen["loading"] = plane.version_status("other")
        seen["loading health"] = plane.health()
        seen["ready"] = [plane.model_ready("probe"), plane.model_ready("other")]
        request = WireRequest("r1", {"explain": "False"}, [RequestParameter("body", None, b"")])
        seen["infer"] = orjson.loads((await plane.infer("probe", None, request)).body)
        seen["explain"] = orjson.loads((await plane.explain("probe", "1.0", request)).body)
        return seen

    seen = run_engine(model_store, tmp_path / "run", scenario)
    assert seen["probe"] == [
        VersionStatus("1.0", ServingState.AVAILABLE),
        VersionStatus("2.0", ServingState.END),
    ]
    assert seen["other"] == VersionStatus("1.0", ServingState.END)
    assert seen["healthy"] == Health(HealthStatus.HEALTHY)  # no worker asked: not expected
    broken = seen["broken"]
    assert isinstance(broken, VersionStatus) and broken.state is ServingState.LOADING
    assert broken.error is not None and broken.error.startswith("FileNotFoundError: ")
    assert seen["partial"] == Health(HealthStatus.PARTIAL, {"broken": broken.error})
    assert seen["loading"] == VersionStatus("1.0", ServingState.LOADING)
    assert seen["loading health"] == Health(
        HealthStatus.PARTIAL, {"broken": broken.error, "other": "loading"}
    )
    assert seen["ready"] == [True, False]
    assert seen["infer"]["explain"] == "False"
    assert seen["explain"]["explain"] == "True"


def test_version_labels_resolve_from_the_model_configs(model_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    labels = {
        "1.0": 'versionLabels:\n  stable: "1.0"\n  canary: "2.0"\n  ghost: "7.0"\n',
        "2.0": 'versionLabels:\n  stable: "2.0"\n  beta: "2.0"\n',
    }
    for version, text in labels.items():
        config = tmp_path / f"labels-{version}.yaml"
        config.write_text(text)
        build_test_archive(tmp_path, "tagged", "probe.py", version, config_file=config)
        (tmp_path / "tagged.mar").rename(store / f"tagged-{version}.mar")

    async def scenario(engine: Engine) -> list[str]:
        plane = DataPlane(engine)
        for version in labels:
            await plane.register(RegisterOptions(url=f"tagged-{version}.mar"))
        resolved = [plane.resolve_label("tagged", label) for label in ("stable", "canary", "beta")]
        with pytest.raises(ModelVersionNotFoundException, match=r"names version 7\.0, which"):
            plane.resolve_label("tagged", "ghost")
        with pytest.raises(ModelVersionNotFoundException, match="Unknown version label nope"):
            plane.resolve_label("tagged", "nope")
        with pytest.raises(ModelNotFoundException):
            plane.resolve_label("untagged", "stable")
        await plane.set_default("tagged", "2.0")  # the default version's labels come first
        return [*resolved, plane.resolve_label("tagged", "stable")]

    resolved = run_engine(store, tmp_path / "run", scenario)
    assert resolved == ["1.0", "2.0", "2.0", "2.0"]


def test_metadata_and_readiness_without_workers(model_store: Path, tmp_path: Path) -> None:
    async def scenario(engine: Engine) -> list[ModelMetadata]:
        plane = DataPlane(engine)
        for url in ("probe.mar", "probe_v2.mar"):
            await plane.register(RegisterOptions(url=url))
        assert plane.live()
        server = plane.server_metadata()
        assert (server.name, server.version) == ("modelserve", __version__)
        assert "binary_tensor_data" in server.extensions
        assert plane.model_ready("probe") is False  # registered, no worker
        for call in (plane.model_ready, plane.model_metadata, plane.check_model):
            with pytest.raises(ModelNotFoundException, match="Model not found: nope"):
                call("nope", None)
            with pytest.raises(ModelVersionNotFoundException, match=r"9\.9"):
                call("probe", "9.9")
        with pytest.raises(BadRequestException, match="customized=true"):
            plane.describe("probe", "all", customized=True)
        assert [entry["modelVersion"] for entry in plane.describe("probe", "all")] == ["1.0", "2.0"]
        return [plane.model_metadata("probe"), plane.model_metadata("probe", "2.0")]

    default, second = run_engine(model_store, tmp_path / "run", scenario)
    # No worker has reported tensors or a platform: the platform is the server's own.
    assert default == ModelMetadata("probe", "1.0", ["1.0", "2.0"], "modelserve", [], [])
    assert second.version == "2.0" and second.versions == ["1.0", "2.0"]


def test_repository_index_and_config_without_a_triton_repository(
    model_store: Path, tmp_path: Path
) -> None:
    async def scenario(engine: Engine) -> dict[str, object]:
        plane = DataPlane(engine)
        await plane.register(RegisterOptions(url="probe.mar", initial_workers=1))
        await plane.register(RegisterOptions(url="other.mar"))
        return {
            "all": plane.repository_index(),
            "ready": plane.repository_index(ready_only=True),
            "config": plane.model_config("other"),
        }

    seen = run_engine(model_store, tmp_path / "run", scenario)
    assert seen["all"] == [
        RepositoryEntry("other", "1.0", "UNAVAILABLE", "no worker"),
        RepositoryEntry("probe", "1.0", "READY"),
    ]
    assert seen["ready"] == [RepositoryEntry("probe", "1.0", "READY")]
    # No config.pbtxt and no reported tensors: the config says what is known.
    assert seen["config"] == {
        "name": "other",
        "platform": "modelserve",
        "max_batch_size": 0,
        "input": [],
        "output": [],
    }
