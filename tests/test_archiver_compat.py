"""Acceptance: our ``model-archiver`` and the real ``torch-model-archiver`` 0.12 build the
same archive from the same inputs, and our reader opens both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from modelserve.archive import extract_archive, read_manifest

BIN = Path(sys.executable).parent
OURS = BIN / "model-archiver"
REAL = BIN / "torch-model-archiver"
VOLATILE_KEYS = ("createdOn", "archiverVersion")

pytestmark = pytest.mark.skipif(
    not REAL.exists(), reason="torch-model-archiver (a dev dependency) is not installed"
)


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """A small model: weights, handler, requirements, config, and an extra-files tree."""
    root = tmp_path / "inputs"
    (root / "code").mkdir(parents=True)
    (root / "weights.pt").write_bytes(os.urandom(4096))
    (root / "code" / "my_handler.py").write_text("def handle(data, context):\n    return data\n")
    (root / "requirements.txt").write_text("numpy\n")
    (root / "model_config.yaml").write_text("batchSize: 4\nminWorkers: 1\nhandler:\n  k: v\n")
    extras = root / "extras"
    for name, text in {
        "index_to_name.json": '{"0": "zero"}',
        "vocab/words.txt": "a\nb\n",
        "vocab/deeper/more.txt": "c\n",
        ".env": "kept: only dot-directories are skipped\n",
        "__pycache__/stale.pyc": "skipped",
        "vocab/__MACOSX/junk": "skipped",
        ".git/config": "skipped",
    }.items():
        (extras / name).parent.mkdir(parents=True, exist_ok=True)
        (extras / name).write_text(text)
    (root / "labels.txt").write_text("zero\n")
    return root


def archive_with(tool: Path, inputs: Path, export: Path, *args: str) -> None:
    export.mkdir(exist_ok=True)
    result = subprocess.run(
        [str(tool), "--export-path", str(export), *args],
        cwd=inputs,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{tool.name} failed: {result.stderr}"


def full_args(name: str, archive_format: str, handler: str = "code/my_handler:handle") -> list[str]:
    return [
        "--model-name",
        name,
        "--version",
        "1.5",
        "--serialized-file",
        "weights.pt",
        "--handler",
        handler,
        "--extra-files",
        "extras,labels.txt",
        "--requirements-file",
        "requirements.txt",
        "--config-file",
        "model_config.yaml",
        "--archive-format",
        archive_format,
    ]


def contents(output: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(manifest, {name: bytes}) of an output of any format, names relative to the model root."""
    if output.is_dir():
        files = {
            path.relative_to(output).as_posix(): path.read_bytes()
            for path in output.rglob("*")
            if path.is_file()
        }
    elif zipfile.is_zipfile(output):
        with zipfile.ZipFile(output) as archive:
            files = {name: archive.read(name) for name in archive.namelist()}
    else:
        with tarfile.open(output) as archive:
            files = {}
            for member in archive.getmembers():
                top, _, name = member.name.partition("/")
                assert top == output.name.removesuffix(".tar.gz"), member.name
                files[name] = archive.extractfile(member).read()
    return json.loads(files.pop("MAR-INF/MANIFEST.json")), files


def assert_same_archive(ours: Path, real: Path) -> dict[str, Any]:
    our_manifest, our_files = contents(ours)
    real_manifest, real_files = contents(real)
    assert list(our_manifest) == list(real_manifest)  # same keys in the same order
    for key in VOLATILE_KEYS:
        assert our_manifest.pop(key) and real_manifest.pop(key)
    assert list(our_manifest["model"].items()) == list(real_manifest["model"].items())
    assert our_manifest == real_manifest
    assert sorted(our_files) == sorted(real_files)
    assert our_files == real_files
    return real_manifest


def assert_reader_opens(output: Path, target: Path, expected: dict[str, Any]) -> None:
    manifest = read_manifest(output)
    assert manifest.model_name == expected["model"]["modelName"]
    assert manifest.handler == expected["model"]["handler"]
    assert manifest.model_version == expected["model"]["modelVersion"]
    assert extract_archive(output, target) == manifest
    assert (target / "MAR-INF" / "MANIFEST.json").is_file()
    _, files = contents(output)
    for name, data in files.items():
        assert (target / name).read_bytes() == data


OUTPUT_NAMES = {
    "default": "{}.mar",
    "zip-store": "{}.mar",
    "tgz": "{}.tar.gz",
    "no-archive": "{}",
}


@pytest.mark.parametrize("archive_format", list(OUTPUT_NAMES))
def test_same_archive_as_torch_model_archiver(
    inputs: Path, tmp_path: Path, archive_format: str
) -> None:
    name = f"compat_{archive_format.replace('-', '_')}"
    archive_with(OURS, inputs, tmp_path / "ours", *full_args(name, archive_format))
    archive_with(REAL, inputs, tmp_path / "real", *full_args(name, archive_format))
    output_name = OUTPUT_NAMES[archive_format].format(name)
    ours, real = tmp_path / "ours" / output_name, tmp_path / "real" / output_name

    manifest = assert_same_archive(ours, real)
    assert manifest["model"] == {
        "modelName": name,
        "serializedFile": "weights.pt",
        "handler": "my_handler:handle",
        "modelVersion": "1.5",
        "requirementsFile": "requirements.txt",
        "configFile": "model_config.yaml",
    }
    _, files = contents(ours)
    assert sorted(files) == [
        ".env",
        "index_to_name.json",
        "labels.txt",
        "model_config.yaml",
        "my_handler.py",
        "requirements.txt",
        "vocab/deeper/more.txt",
        "vocab/words.txt",
        "weights.pt",
    ]
    if archive_format == "zip-store":
        with zipfile.ZipFile(ours) as archive:
            assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}

    for label, output in (("ours", ours), ("real", real)):
        assert_reader_opens(output, tmp_path / f"extracted_{label}", manifest)


@pytest.mark.parametrize(
    "handler", ["image_classifier", "code/my_handler.py", "code/my_handler"], ids=str
)
def test_handler_forms_match(inputs: Path, tmp_path: Path, handler: str) -> None:
    args = ["--model-name", "h", "-v", "1", "--serialized-file", "weights.pt"]
    archive_with(OURS, inputs, tmp_path / "ours", *args, "--handler", handler)
    archive_with(REAL, inputs, tmp_path / "real", *args, "--handler", handler)
    manifest = assert_same_archive(tmp_path / "ours" / "h.mar", tmp_path / "real" / "h.mar")
    assert manifest["model"]["handler"] == os.path.basename(handler)
    _, files = contents(tmp_path / "ours" / "h.mar")
    built_in = handler == "image_classifier"
    assert ("my_handler.py" in files) is not built_in
    for label in ("ours", "real"):
        assert_reader_opens(tmp_path / label / "h.mar", tmp_path / f"extracted_{label}", manifest)


def test_minimal_manifest_omits_absent_keys(inputs: Path, tmp_path: Path) -> None:
    args = ["--model-name", "bare", "-v", "", "--handler", "base_handler"]
    archive_with(OURS, inputs, tmp_path / "ours", *args)
    archive_with(REAL, inputs, tmp_path / "real", *args)
    manifest = assert_same_archive(tmp_path / "ours" / "bare.mar", tmp_path / "real" / "bare.mar")
    assert manifest["model"] == {"modelName": "bare", "handler": "base_handler"}
