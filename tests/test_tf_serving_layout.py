"""TensorFlow Serving's model layout on a real server: ``--model-name`` / ``--model-base-path``
and a ModelServerConfig file read with text_format, numeric SavedModel version directories,
version policies and labels, new versions found by polling; answered over TF Serving's REST
API as TF Serving answers."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from framework_models import SAMPLE, save_tf_saved_model
from support import RunningServer, start_server, wait_until

from modelserve.config import load_settings
from modelserve.repository.catalogs import TfServingCatalog
from modelserve.repository.triton import RepositoryError


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    path, reference = save_tf_saved_model(tmp_path_factory.mktemp("tf"), [SAMPLE])
    return path, reference(SAMPLE)


def _version(base: Path, version: str, saved: Path) -> None:
    shutil.copytree(saved, base / version)


def _status(server: RunningServer, name: str) -> list[dict]:
    response = httpx.get(f"{server.inference}/v1/models/{name}")
    return response.json().get("model_version_status", []) if response.status_code == 200 else []


def test_one_model_by_base_path_and_new_versions_by_polling(
    tmp_path: Path, saved_model: tuple[Path, np.ndarray], model_store: Path
) -> None:
    saved, expected = saved_model
    base = tmp_path / "models" / "tiny"
    _version(base, "1", saved)
    args = ["--model_name", "tiny", "--model_base_path", str(base)]
    args += ["--file-system-poll-wait-seconds", "0.2"]
    server = start_server(tmp_path / "server", model_store, args=args)
    try:
        wait_until(lambda: _status(server, "tiny"), timeout=120)
        answer = httpx.post(
            f"{server.inference}/v1/models/tiny:predict", json={"instances": SAMPLE.tolist()}
        )
        assert answer.status_code == 200, answer.text
        assert np.allclose(answer.json()["predictions"], expected, atol=1e-5)
        # A new version is found and served; the old one goes (TF Serving's default: latest).
        _version(base, "2", saved)
        wait_until(lambda: [s["version"] for s in _status(server, "tiny")] == ["2"], 120)
    finally:
        server.stop()


def test_a_model_server_config_with_policy_and_labels(
    tmp_path: Path, saved_model: tuple[Path, np.ndarray], model_store: Path
) -> None:
    saved, expected = saved_model
    base = tmp_path / "models" / "tiny"
    for version in ("1", "2", "3"):
        _version(base, version, saved)
    config = tmp_path / "models.config"
    config.write_text(
        "model_config_list {\n"
        "  config {\n"
        f'    name: "tiny"\n    base_path: "{base}"\n    model_platform: "tensorflow"\n'
        "    model_version_policy { specific { versions: 1 versions: 3 } }\n"
        '    version_labels { key: "stable" value: 1 }\n'
        '    version_labels { key: "canary" value: 3 }\n'
        "  }\n"
        "}\n"
    )
    server = start_server(
        tmp_path / "server", model_store, args=["--model-config-file", str(config)]
    )
    try:
        wait_until(lambda: len(_status(server, "tiny")) == 2, timeout=120)
        assert sorted(s["version"] for s in _status(server, "tiny")) == ["1", "3"]
        for label in ("stable", "canary"):
            url = f"{server.inference}/v1/models/tiny/labels/{label}:predict"
            answer = httpx.post(url, json={"instances": SAMPLE.tolist()})
            assert answer.status_code == 200, answer.text
            assert np.allclose(answer.json()["predictions"], expected, atol=1e-5)
    finally:
        server.stop()


def test_config_file_errors_name_the_problem(tmp_path: Path) -> None:
    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { name: "x" logging_config { } } }')
    catalog = TfServingCatalog(load_settings(None, {"model_config_file": config}))
    with pytest.raises(RepositoryError, match="logging_config"):
        catalog.names()
    config.write_text(
        f'model_config_list {{ config {{ name: "x" base_path: "{tmp_path}/none" }} }}'
    )
    with pytest.raises(RepositoryError, match="is not a directory"):
        TfServingCatalog(load_settings(None, {"model_config_file": config})).check()
