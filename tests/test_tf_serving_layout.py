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
from modelserve.repository.control import _fingerprint
from modelserve.repository.triton import RepositoryError


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    path, reference = save_tf_saved_model(tmp_path_factory.mktemp("tf"), [SAMPLE])
    return path, reference(SAMPLE)


def _version(base: Path, version: str, saved: Path) -> None:
    """A new version directory, whole at once: a poll never sees it half copied."""
    shutil.copytree(saved, base / f".{version}")
    (base / f".{version}").rename(base / version)


def _config_file(path: Path, models: dict[str, Path], policy: str = "") -> None:
    """A ModelServerConfig of ``models`` (name: base path), replaced at once; ``policy``: the
    model_version_policy of each."""
    configs = "".join(
        f'  config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" {policy} }}\n'
        for name, base in models.items()
    )
    path.with_suffix(".new").write_text(f"model_config_list {{\n{configs}}}\n")
    path.with_suffix(".new").replace(path)


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
    # TF Serving's own interval, not Triton's: with Triton's, no poll would come in time.
    args += ["--file-system-poll-wait-seconds", "0.2", "--repository-poll-secs", "600"]
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


def test_the_config_file_is_read_once_until_read_again(tmp_path: Path) -> None:
    config = tmp_path / "models.config"
    _config_file(config, {"a": tmp_path / "a"})
    catalog = TfServingCatalog(load_settings(None, {"model_config_file": config}))
    assert catalog.names() == ["a"]
    _config_file(config, {"a": tmp_path / "a", "b": tmp_path / "b"})
    assert catalog.names() == ["a"]
    catalog.reread()
    assert catalog.names() == ["a", "b"]
    config.write_text("model_config_list { config {")
    with pytest.raises(RepositoryError, match="model_config_file"):
        catalog.reread()
    assert catalog.names() == ["a", "b"]  # the last read stands


def test_the_config_file_is_read_again_every_poll_wait_seconds(
    tmp_path: Path, saved_model: tuple[Path, np.ndarray], model_store: Path
) -> None:
    saved, expected = saved_model
    tiny, other = tmp_path / "models" / "tiny", tmp_path / "models" / "other"
    for version in ("1", "2"):
        _version(tiny, version, saved)
    _version(other, "1", saved)
    config = tmp_path / "models.config"
    _config_file(config, {"tiny": tiny})
    args = ["--model_config_file", str(config), "--model_config_file_poll_wait_seconds", "0.3"]
    server = start_server(tmp_path / "server", model_store, args=args)
    try:
        wait_until(lambda: [s["version"] for s in _status(server, "tiny")] == ["2"], 120)
        # A model added, and a policy changed: both followed.
        _config_file(config, {"tiny": tiny, "other": other}, "model_version_policy { all { } }")
        wait_until(lambda: _status(server, "other"), 120)
        wait_until(lambda: sorted(s["version"] for s in _status(server, "tiny")) == ["1", "2"])
        answer = httpx.post(
            f"{server.inference}/v1/models/other:predict", json={"instances": SAMPLE.tolist()}
        )
        assert answer.status_code == 200, answer.text
        assert np.allclose(answer.json()["predictions"], expected, atol=1e-5)
        # A model removed from the file is unloaded.
        _config_file(config, {"tiny": tiny}, "model_version_policy { all { } }")
        wait_until(lambda: not _status(server, "other"), 60)
        assert len(_status(server, "tiny")) == 2
    finally:
        server.stop()


def test_by_default_the_config_file_is_read_at_start_only(
    tmp_path: Path, saved_model: tuple[Path, np.ndarray], model_store: Path
) -> None:
    saved, _ = saved_model
    tiny, added = tmp_path / "models" / "tiny", tmp_path / "models" / "added"
    _version(tiny, "1", saved)
    _version(added, "1", saved)
    config = tmp_path / "models.config"
    _config_file(config, {"tiny": tiny})
    args = ["--model-config-file", str(config), "--file-system-poll-wait-seconds", "0.2"]
    server = start_server(tmp_path / "server", model_store, args=args)
    try:
        wait_until(lambda: _status(server, "tiny"), 120)
        # "added" sorts before "tiny": a poll that read the file again would load it before it
        # got to tiny's new version.
        _config_file(config, {"added": added, "tiny": tiny})
        _version(tiny, "2", saved)
        wait_until(lambda: [s["version"] for s in _status(server, "tiny")] == ["2"], 120)
        assert _status(server, "added") == []
    finally:
        server.stop()


def test_a_label_change_is_a_change_to_serve(tmp_path: Path) -> None:
    base = tmp_path / "tiny"
    (base / "1").mkdir(parents=True)
    (base / "1" / "saved_model.pb").write_bytes(b"")
    config = tmp_path / "models.config"
    catalog = TfServingCatalog(load_settings(None, {"model_config_file": config}))
    fingerprints = []
    for labels in ("", 'version_labels { key: "stable" value: 1 }'):
        config.write_text(
            f'model_config_list {{ config {{ name: "tiny" base_path: "{base}" {labels} }} }}'
        )
        catalog.reread()
        model = catalog.read("tiny", None)
        fingerprints.append(_fingerprint(model, model.versions[0].model_path))
    assert fingerprints[0] != fingerprints[1]
