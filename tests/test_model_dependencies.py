"""Per-model Python dependencies: an archive's requirementsFile, pip-installed at registration
with ``install_py_dep_per_model=true`` and importable by its workers.

No network: the requirement is a wheel this test writes, installed with ``--no-index``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions
from support import RunningServer, ready_spare_pids, start_server, wait_until, waiting_spares

from modelserve.engine.errors import ModelException
from modelserve.engine.model_dependencies import install_requirements

PACKAGE = "modelserve_testdep"
VERSION = "1.0"
HANDLER = f"""
import {PACKAGE}


def handle(data, context):
    if data is None:
        return None
    return [{{"greeting": {PACKAGE}.GREETING, "location": {PACKAGE}.__file__}} for _ in data]
"""


def build_wheel(directory: Path) -> Path:
    """A pure-Python wheel of PACKAGE, written by hand: no build backend, no index."""
    dist_info = f"{PACKAGE}-{VERSION}.dist-info"
    files = {
        f"{PACKAGE}/__init__.py": 'GREETING = "hello from a model dependency"\n',
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: {VERSION}\n",
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [
        f"{name},sha256={_digest(text.encode())},{len(text.encode())}"
        for name, text in files.items()
    ]
    files[f"{dist_info}/RECORD"] = "\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n"
    wheel = directory / f"{PACKAGE}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def archive_with_requirements(store: Path, build: Path, name: str, requirements: str) -> None:
    """An archive whose handler imports PACKAGE, carrying ``requirements`` as its file."""
    handler = build / f"{name}_handler.py"
    handler.write_text(HANDLER)
    requirements_file = build / f"{name}_requirements.txt"
    requirements_file.write_text(requirements)
    build_archive(
        ArchiveOptions(
            model_name=name,
            version="1.0",
            handler=str(handler),
            requirements_file=str(requirements_file),
            export_path=store,
            force=True,
        )
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = tmp_path_factory.mktemp("dependency_build")
    store = tmp_path_factory.mktemp("dependency_store")
    wheel = build_wheel(build)
    archive_with_requirements(store, build, "with_dep", f"--no-index\n{wheel}\n")
    missing = build / "no_such_package"
    archive_with_requirements(store, build, "broken_dep", f"--no-index\n{missing}\n")
    return store


@pytest.fixture(scope="module")
def installing_server(
    tmp_path_factory: pytest.TempPathFactory, store: Path
) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("dependency_server"),
        store,
        config={"install_py_dep_per_model": "true"},
    )
    yield running
    running.stop()


def register(server: RunningServer, url: str) -> httpx.Response:
    params = {"url": url, "initial_workers": 1, "synchronous": "true"}
    return httpx.post(f"{server.management}/models", params=params, timeout=180)


def test_requirements_are_installed_for_the_model(installing_server: RunningServer) -> None:
    response = register(installing_server, "with_dep.mar")
    assert response.status_code == 200, response.text
    answer = httpx.post(f"{installing_server.inference}/predictions/with_dep", json={}).json()
    assert answer["greeting"] == "hello from a model dependency"
    assert f"/.deps/{PACKAGE}/" in answer["location"]
    assert "pip (with_dep):" in installing_server.log()  # pip's output is in the server log


def test_a_model_with_its_own_packages_does_not_get_the_spare_worker(
    installing_server: RunningServer,
) -> None:
    # The spare did its imports without the model's packages first on its import path.
    spare = wait_until(lambda: ready_spare_pids(installing_server), timeout=120)[-1]
    params = {"model_name": "with_dep_own", "url": "with_dep.mar"}
    response = httpx.post(
        f"{installing_server.management}/models",
        params={**params, "initial_workers": 1, "synchronous": "true"},
        timeout=180,
    )
    assert response.status_code == 200, response.text
    (worker,) = httpx.get(f"{installing_server.management}/models/with_dep_own").json()[0][
        "workers"
    ]
    assert worker["pid"] != spare
    assert [process.pid for process in waiting_spares(installing_server)] == [spare]
    answer = httpx.post(f"{installing_server.inference}/predictions/with_dep_own", json={})
    assert f"/.deps/{PACKAGE}/" in answer.json()["location"]


def test_a_failed_install_fails_registration(installing_server: RunningServer) -> None:
    response = register(installing_server, "broken_dep.mar")
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "ModelException"
    message = body["message"]
    assert message.startswith("Custom pip package installation failed for model broken_dep: ")
    assert "no_such_package" in message  # pip's own last lines say what was wrong
    assert httpx.get(f"{installing_server.management}/models/broken_dep").status_code == 404


def test_without_the_setting_nothing_is_installed(
    tmp_path_factory: pytest.TempPathFactory, store: Path
) -> None:
    server = start_server(tmp_path_factory.mktemp("no_install_server"), store)
    try:
        response = register(server, "with_dep.mar")
        assert response.status_code == 500
        assert f"No module named '{PACKAGE}'" in response.json()["message"]
        assert "not installed (install_py_dep_per_model=false)" in server.log()
    finally:
        server.stop()


def test_pip_is_bounded_by_the_startup_timeout(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(f"--no-index\n{build_wheel(tmp_path)}\n")
    # No pip starts, let alone installs, in 10 ms.
    with pytest.raises(ModelException, match="pip did not finish within startup_timeout"):
        asyncio.run(install_requirements("slow", tmp_path, "requirements.txt", 0.01))


@pytest.mark.parametrize(
    ("requirements_file", "reason"),
    [("absent.txt", "the archive has no absent.txt"), ("../outside.txt", "leaves the model")],
)
def test_requirements_file_must_be_in_the_model(
    tmp_path: Path, requirements_file: str, reason: str
) -> None:
    (tmp_path / "outside.txt").write_text("")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with pytest.raises(ModelException, match=reason):
        asyncio.run(install_requirements("m", model_dir, requirements_file, 10))
