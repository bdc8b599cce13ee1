"""The ``model-archiver`` command and the build_archive library call behind it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
from modelserve_archiver import ArchiveOptions, ArchiverError, build_archive
from modelserve_archiver.cli import main

ARCHIVER = Path(sys.executable).parent / "model-archiver"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    root.mkdir()
    (root / "weights.pt").write_bytes(b"w" * 1000)
    (root / "handler.py").write_text("def handle(data, context):\n    return data\n")
    (root / "config.yaml").write_text("batchSize: 2\n")
    return root


def base_args(model: Path, *extra: str) -> list[str]:
    return [
        "--model-name",
        "m",
        "-v",
        "1.0",
        "--serialized-file",
        str(model / "weights.pt"),
        "--handler",
        str(model / "handler.py"),
        "--export-path",
        str(model.parent / "out"),
        *extra,
    ]


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


def manifest_of(archive: Path) -> dict[str, object]:
    with zipfile.ZipFile(archive) as opened:
        return json.loads(opened.read("MAR-INF/MANIFEST.json"))


def test_builds_an_archive(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_main(base_args(model), capsys)
    assert (code, err) == (0, "")
    manifest = manifest_of(model.parent / "out" / "m.mar")
    assert manifest["model"] == {
        "modelName": "m",
        "serializedFile": "weights.pt",
        "handler": "handler.py",
        "modelVersion": "1.0",
    }


def one_line_error(code: int, err: str) -> str:
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("model-archiver: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--serialized-file", "absent.pt"),
        ("--model-file", "absent_model.py"),
        ("--requirements-file", "absent.txt"),
        ("--config-file", "absent.yaml"),
    ],
)
def test_missing_input_file(
    model: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    missing = model / value
    line = one_line_error(*run_main(base_args(model, flag, str(missing)), capsys))
    assert line == f"model-archiver: error: {flag} not found: {missing}"


def test_missing_handler_file(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = base_args(model)
    args[args.index("--handler") + 1] = str(model / "nothere:handle")
    line = one_line_error(*run_main(args, capsys))
    assert line.endswith(f"--handler file not found: {model / 'nothere.py'}")


def test_missing_extra_file(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = model / "absent_dir"
    line = one_line_error(*run_main(base_args(model, "--extra-files", str(missing)), capsys))
    assert line.endswith(f"--extra-files entry not found: {missing}")


@pytest.mark.parametrize("name", ["bad name", "_leading", "a/b", "ok\n"])
def test_invalid_model_name(model: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    args = base_args(model)
    args[args.index("--model-name") + 1] = name
    line = one_line_error(*run_main(args, capsys))
    assert "invalid --model-name" in line and "^[A-Za-z0-9][A-Za-z0-9_\\-.]*$" in line
    assert not (model.parent / "out").exists()


def test_existing_output_needs_force(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(base_args(model), capsys)[0] == 0
    output = model.parent / "out" / "m.mar"
    before = output.read_bytes()
    args = base_args(model)
    args[args.index("-v") + 1] = "2.0"
    line = one_line_error(*run_main(args, capsys))
    assert line == (
        f"model-archiver: error: output already exists (pass -f/--force to overwrite): {output}"
    )
    assert output.read_bytes() == before

    assert run_main([*args, "--force"], capsys)[0] == 0
    assert manifest_of(output)["model"]["modelVersion"] == "2.0"
    assert sorted(os.listdir(output.parent)) == ["m.mar"]  # no staging files left behind


def test_force_replaces_a_no_archive_directory(
    model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = base_args(model, "--archive-format", "no-archive")
    assert run_main(args, capsys)[0] == 0
    output = model.parent / "out" / "m"
    (output / "stale.txt").write_text("from an earlier build")
    assert run_main([*args, "-f"], capsys)[0] == 0
    assert sorted(path.name for path in output.iterdir()) == [
        "MAR-INF",
        "handler.py",
        "weights.pt",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("batchSize: [1, 2\n", "not valid YAML"),
        ("- just\n- a list\n", "not a YAML mapping (found a list)"),
        ("plain words\n", "not a YAML mapping (found a str)"),
    ],
)
def test_bad_config_file(
    model: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    config = model / "bad.yaml"
    config.write_text(text)
    line = one_line_error(*run_main(base_args(model, "--config-file", str(config)), capsys))
    assert problem in line and line.endswith(f": {config}")


def test_empty_config_file_is_accepted(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = model / "empty.yaml"
    config.write_text("")
    assert run_main(base_args(model, "-c", str(config)), capsys)[0] == 0


def test_unknown_archive_format(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_error(*run_main(base_args(model, "--archive-format", "rar"), capsys))
    assert "unknown --archive-format 'rar'" in line and "tgz" in line


def test_unknown_runtime(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_error(*run_main(base_args(model, "--runtime", "java"), capsys))
    assert "unknown --runtime 'java'" in line


def test_export_path_that_is_a_file(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (model.parent / "out").write_text("a file")
    line = one_line_error(*run_main(base_args(model), capsys))
    assert line.endswith(f"--export-path is not a directory: {model.parent / 'out'}")


def test_missing_export_path_is_created(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = base_args(model)
    args[args.index("--export-path") + 1] = str(model.parent / "new" / "deeper")
    assert run_main(args, capsys)[0] == 0
    assert (model.parent / "new" / "deeper" / "m.mar").is_file()


def test_missing_required_flag_is_a_one_line_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--model-name", "m"])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "required" in lines[0] and "--handler" in lines[0]


def test_help_documents_every_flag() -> None:
    result = subprocess.run(
        [str(ARCHIVER), "--help"], capture_output=True, text=True, check=True, timeout=30
    )
    for flag in (
        "--model-name",
        "-v VERSION, --version",
        "--serialized-file",
        "--model-file",
        "--handler",
        "--extra-files",
        "-r REQUIREMENTS_FILE, --requirements-file",
        "-c CONFIG_FILE, --config-file",
        "--runtime",
        "--export-path",
        "--archive-format",
        "-f, --force",
    ):
        assert flag in result.stdout
    for choice in ("default", "tgz", "no-archive", "zip-store", "python3", "LSP"):
        assert choice in result.stdout


def test_console_script_exit_code_and_single_line(model: Path) -> None:
    result = subprocess.run(
        [str(ARCHIVER), *base_args(model, "--serialized-file", str(model / "nope.pt"))],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert (
        result.stderr
        == f"model-archiver: error: --serialized-file not found: {model / 'nope.pt'}\n"
    )


def test_progress_bar_only_on_a_terminal(model: Path) -> None:
    (model / "weights.pt").write_bytes(os.urandom(3 * 1024 * 1024))
    piped = subprocess.run(
        [str(ARCHIVER), *base_args(model)], capture_output=True, text=True, timeout=30
    )
    assert (piped.returncode, piped.stderr) == (0, "")

    primary, secondary = os.openpty()
    try:
        process = subprocess.Popen(
            [str(ARCHIVER), *base_args(model, "-f")],
            stdout=subprocess.DEVNULL,
            stderr=secondary,
        )
        os.close(secondary)
        shown = read_until_closed(primary, deadline=time.monotonic() + 30)
        assert process.wait(timeout=30) == 0
    finally:
        os.close(primary)
    assert "Packing m.mar [" in shown
    assert "100%" in shown and "MiB" in shown
    assert shown.rstrip().endswith("MiB")


def read_until_closed(fd: int, deadline: float) -> str:
    output = b""
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side of the terminal has closed
            break
        if not chunk:
            break
        output += chunk
    return output.decode()


def test_build_archive_library_call(model: Path, tmp_path: Path) -> None:
    extras = tmp_path / "extras"
    (extras / "nested" / "__pycache__").mkdir(parents=True)
    (extras / "nested" / "__pycache__" / "x.pyc").write_bytes(b"")
    (extras / "nested" / "data.txt").write_text("d")
    (extras / ".hidden_dir").mkdir()
    (extras / ".hidden_dir" / "secret").write_text("s")
    (extras / "loop").symlink_to(extras)  # followed once, not forever
    output = build_archive(
        ArchiveOptions(
            model_name="lib",
            version="3",
            handler=f"{model / 'handler.py'}:handle",
            serialized_file=str(model / "weights.pt"),
            extra_files=[str(extras)],
            export_path=tmp_path / "out",
            archive_format="tgz",
        )
    )
    assert output == tmp_path / "out" / "lib.tar.gz"
    with tarfile.open(output) as archive:
        names = sorted(archive.getnames())
        manifest = json.load(archive.extractfile("lib/MAR-INF/MANIFEST.json"))
    assert names == [
        "lib/MAR-INF/MANIFEST.json",
        "lib/handler.py",
        "lib/nested/data.txt",
        "lib/weights.pt",
    ]
    # torch-model-archiver 0.12 fails on "file.py:fn"; the manifest keeps the base name
    assert manifest["model"]["handler"] == "handler.py:handle"


def test_build_archive_raises_archiver_error(model: Path, tmp_path: Path) -> None:
    options = ArchiveOptions(model_name="x", version="1", handler="base_handler", model_file="no")
    with pytest.raises(ArchiverError, match="--model-file not found: no"):
        build_archive(options)


def test_export_directory_in_extra_files_is_not_packed_into_itself(
    model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = base_args(model, "--extra-files", str(model))
    args[args.index("--export-path") + 1] = str(model)
    assert run_main(args, capsys)[0] == 0
    assert run_main([*args, "-f"], capsys)[0] == 0
    with zipfile.ZipFile(model / "m.mar") as archive:
        assert sorted(archive.namelist()) == [
            "MAR-INF/MANIFEST.json",
            "config.yaml",
            "handler.py",
            "weights.pt",
        ]


def test_imports_neither_torch_nor_the_server() -> None:
    code = (
        "import sys, modelserve_archiver.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'modelserve')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout.strip() == "[]"
