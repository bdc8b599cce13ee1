"""``python -m modelserve.grpc.generate``: a check that writes nothing unless asked, whatever
grpcio-tools is installed, and that finds generated code gone stale."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modelserve.grpc import generate

pytest.importorskip("grpc_tools")


def _stats(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        path.name: (path.stat().st_mtime_ns, path.stat().st_size)
        for path in directory.iterdir()
        if path.is_file()
    }


def test_the_default_checks_the_committed_code_and_writes_nothing() -> None:
    before = _stats(generate.PROTO_DIR)
    result = subprocess.run(
        [sys.executable, "-m", "modelserve.grpc.generate"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    assert _stats(generate.PROTO_DIR) == before


def test_a_changed_proto_is_reported_until_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    proto_dir = tmp_path / "src" / "modelserve" / "grpc" / "proto"
    shutil.copytree(generate.PROTO_DIR, proto_dir, ignore=shutil.ignore_patterns("__pycache__"))
    management = proto_dir / "management.proto"
    management.write_text(
        management.read_text().replace(
            "string model_name = 1;", "string model_name = 1;\n  string added_field = 99;", 1
        )
    )
    monkeypatch.setattr(generate, "PROTO_DIR", proto_dir)
    monkeypatch.setattr(generate, "SOURCE_ROOT", tmp_path / "src")
    committed = _stats(proto_dir)

    assert generate.main([]) == 1
    assert "management_pb2.py: differs from management.proto" in capsys.readouterr().err
    assert _stats(proto_dir) == committed

    assert generate.main(["--write"]) == 0
    assert generate.main([]) == 0
    assert "added_field" in (proto_dir / "management_pb2.pyi").read_text()
