"""Logs: the server, access and model logs in files and on stderr, text and JSON, rotation."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Iterator
from datetime import datetime
from logging.handlers import TimedRotatingFileHandler
from pathlib import Path

import httpx
import orjson
import pytest
from starlette.types import Receive, Scope, Send
from support import RunningServer, start_server, wait_until

from modelserve.api.access_log import AccessLog
from modelserve.cli import _settings_from, build_parser
from modelserve.config import ConfigError, Settings
from modelserve.engine.worker_process import MAX_LINE_BYTES, output_lines
from modelserve.telemetry.log_formats import JsonFormatter, TextFormatter
from modelserve.telemetry.logs import ACCESS_LOGGER, MODEL_LOGGER, TEXT_FORMAT, configure_logging

TRACEBACK_LINES = (
    "Traceback (most recent call last):",
    'raise RuntimeError(body["fail"])',
    "RuntimeError: boom",
)


def _read(path: Path) -> str:
    """The complete lines of a log file so far (the server may be writing the next one)."""
    text = path.read_text() if path.exists() else ""
    return text[: text.rfind("\n") + 1]


def _wait_for(path: Path, *patterns: str) -> str:
    """The log file's lines once every regex in ``patterns`` is found in them."""

    def matched() -> str:
        text = _read(path)
        return text if all(re.search(pattern, text) for pattern in patterns) else ""

    return wait_until(matched)


def _serve_and_exercise(workdir: Path, model_store: Path, log_format: str) -> RunningServer:
    """A server logging to ``workdir/logs``, after a request on each plane and a failing one."""
    server = start_server(
        workdir,
        model_store,
        models=["probe=probe.mar"],
        config={
            "log_dir": str(workdir / "logs"),
            "log_format": log_format,
            "default_workers_per_model": "1",
        },
    )
    try:
        with httpx.Client(base_url=server.inference, timeout=60) as inference:
            ok = inference.post("/predictions/probe?alpha=1", json={"echo": "hi"})
            assert ok.status_code == 200
            failed = inference.post("/predictions/probe", json={"fail": "boom"})
        # The client gets the exception's last line: its type and message.
        assert failed.status_code == 500
        assert failed.json() == {"code": 500, "type": "RuntimeError", "message": "boom"}
        assert httpx.get(server.management + "/models").status_code == 200
        assert httpx.get(server.metrics + "/metrics").status_code == 200
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def text_logs(
    tmp_path_factory: pytest.TempPathFactory, model_store: Path
) -> Iterator[tuple[RunningServer, Path]]:
    """A text-logging server that served a few requests, and its log directory."""
    workdir = tmp_path_factory.mktemp("text_logs")
    server = _serve_and_exercise(workdir, model_store, "text")
    yield server, workdir / "logs"
    server.stop()


@pytest.fixture(scope="module")
def json_logs(tmp_path_factory: pytest.TempPathFactory, model_store: Path) -> Iterator[Path]:
    """The log directory of a JSON-logging server that served a few requests."""
    workdir = tmp_path_factory.mktemp("json_logs")
    server = _serve_and_exercise(workdir, model_store, "json")
    yield workdir / "logs"
    server.stop()


def test_access_log_has_a_line_per_request(text_logs: tuple[RunningServer, Path]) -> None:
    _, log_dir = text_logs
    text = _wait_for(
        log_dir / "access_log.log",
        r'"POST /predictions/probe HTTP/1\.1" 200 \d+\.\d{3} ms',  # no query string
        r'"POST /predictions/probe HTTP/1\.1" 500 \d+\.\d{3} ms',
        r'"GET /models HTTP/1\.1" 200 ',
        r'"GET /metrics HTTP/1\.1" 200 ',
    )
    assert re.search(r"modelserve\.access: 127\.0\.0\.1:\d+ \"POST", text)
    assert "alpha" not in text


def test_model_log_tags_worker_lines_and_keeps_tracebacks(
    text_logs: tuple[RunningServer, Path],
) -> None:
    _, log_dir = text_logs
    tag = r" modelserve\.model_log \[probe:1\.0 \S+\] "
    # Each line of the traceback is a line of the model log, with the worker's tag.
    text = _wait_for(
        log_dir / "model_log.log", *(tag + r"\s*" + re.escape(line) for line in TRACEBACK_LINES)
    )
    assert all(re.search(tag, line) for line in text.splitlines())


def test_server_log_holds_only_server_lines(text_logs: tuple[RunningServer, Path]) -> None:
    server, log_dir = text_logs
    text = _wait_for(log_dir / "modelserve.log", "inference API listening on")
    assert "modelserve.access" not in text and "modelserve.model_log" not in text
    # stderr gets all three streams.
    console = wait_until(lambda: "modelserve.access:" in server.log() and server.log())
    assert "modelserve.model_log [probe:1.0" in console
    assert "inference API listening on" in console


def test_json_logs_have_one_object_per_line(json_logs: Path) -> None:
    required = {
        "modelserve.log": {"timestamp", "level", "logger", "message"},
        "access_log.log": {"client", "method", "path", "status", "latency_ms"},
        "model_log.log": {"model_name", "model_version", "worker_id"},
    }

    def entries(name: str) -> list[dict]:
        return [orjson.loads(line) for line in _read(json_logs / name).splitlines()]

    wait_until(lambda: any(entry["status"] == 500 for entry in entries("access_log.log")))
    wait_until(lambda: any(e["message"] == "RuntimeError: boom" for e in entries("model_log.log")))
    for name, keys in required.items():
        logged = entries(name)
        assert logged, name
        for entry in logged:
            assert keys | required["modelserve.log"] <= entry.keys(), entry
            datetime.fromisoformat(entry["timestamp"])
    access = [entry for entry in entries("access_log.log") if entry["method"] == "POST"]
    assert {(entry["path"], entry["status"]) for entry in access} == {
        ("/predictions/probe", 200),
        ("/predictions/probe", 500),
    }
    assert all(entry["latency_ms"] >= 0 for entry in access)
    model = entries("model_log.log")
    assert {(entry["model_name"], entry["model_version"]) for entry in model} == {("probe", "1.0")}


def _record(created: float, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("modelserve.t", logging.INFO, __file__, 1, "hi %s", ("you",), None)
    record.created, record.msecs = created, (created - int(created)) * 1000
    record.__dict__.update(extra)
    return record


def test_formats_render_timestamps_as_logging_does() -> None:
    text, json = TextFormatter(TEXT_FORMAT), JsonFormatter()
    # Two records in one second (the cached second) and one in the next.
    for created in (1_700_000_000.25, 1_700_000_000.75, 1_700_000_001.5):
        expected = logging.Formatter(TEXT_FORMAT).format(_record(created))
        assert text.format(_record(created)) == expected
        entry = orjson.loads(json.format(_record(created, worker_id="9000")))
        moment = datetime.fromtimestamp(created).astimezone()
        assert entry == {
            "timestamp": moment.isoformat(timespec="milliseconds"),
            "level": "INFO",
            "logger": "modelserve.t",
            "message": "hi you",
            "worker_id": "9000",
        }


def test_json_format_carries_the_exception() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("t", logging.ERROR, "", 0, "failed", (), sys.exc_info())
    entry = orjson.loads(JsonFormatter().format(record))
    assert entry["exception"].endswith("RuntimeError: boom")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put back the handlers, levels and propagation that configure_logging replaces."""
    loggers = [logging.getLogger(name) for name in ("", ACCESS_LOGGER, MODEL_LOGGER)]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    flags = (logging.logThreads, logging.logProcesses, logging.logMultiprocessing)
    yield
    logging.logThreads, logging.logProcesses, logging.logMultiprocessing = flags
    for logger, handlers, level, propagate in saved:
        for handler in logger.handlers[:]:
            logger.removeHandler(handler)
            handler.close()
        for handler in handlers:
            logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def test_log_files_rotate_at_midnight_keeping_backup_count(
    tmp_path: Path, restore_logging: None
) -> None:
    log_dir = tmp_path / "new" / "logs"
    configure_logging(Settings(log_dir=log_dir, log_backup_count=3))
    for name, file_name in (
        ("", "modelserve.log"),
        (ACCESS_LOGGER, "access_log.log"),
        (MODEL_LOGGER, "model_log.log"),
    ):
        files = [h for h in logging.getLogger(name).handlers if isinstance(h, logging.FileHandler)]
        assert len(files) == 1
        handler = files[0]
        assert isinstance(handler, TimedRotatingFileHandler)
        assert (handler.when, handler.interval, handler.backupCount) == ("MIDNIGHT", 86400, 3)
        assert Path(handler.baseFilename) == log_dir / file_name
    # A rollover keeps the newest backup_count old files and deletes the rest.
    access = logging.getLogger(ACCESS_LOGGER)
    for day in range(1, 6):
        (log_dir / f"access_log.log.2020-01-0{day}").write_text("old\n")
    [handler] = [h for h in access.handlers if isinstance(h, TimedRotatingFileHandler)]
    handler.doRollover()
    backups = sorted(path.name for path in log_dir.glob("access_log.log.*"))
    assert len(backups) == 3
    assert "access_log.log.2020-01-01" not in backups


def test_unwritable_log_dir_is_a_config_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(ConfigError, match="log_dir"):
        configure_logging(Settings(log_dir=not_a_dir))


def test_start_flags_set_log_format_and_dir(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["start", "--log-format", "json", "--log-dir", str(tmp_path), "--ts-config", "/dev/null"]
    )
    settings = _settings_from(args)
    assert (settings.log_format, settings.log_dir) == ("json", tmp_path)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["start", "--log-format", "xml"])


def test_overlong_worker_lines_are_forwarded_in_pieces() -> None:
    async def lines() -> list[bytes]:
        stream = asyncio.StreamReader()
        stream.feed_data(b"first\n" + b"x" * (MAX_LINE_BYTES * 2 + 5) + b"\nlast")
        stream.feed_eof()
        return [line async for line in output_lines(stream)]

    forwarded = asyncio.run(lines())
    assert forwarded[0] == b"first" and forwarded[-1] == b"last"
    assert b"".join(forwarded[1:-1]) == b"x" * (MAX_LINE_BYTES * 2 + 5)
    assert all(len(line) <= MAX_LINE_BYTES for line in forwarded)


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"a", "more_body": True})
    await send({"type": "http.response.body", "body": b"b"})


async def _crash(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("no response")


def _access_records(app: AccessLog, caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    async def call() -> None:
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await client.get("/some/path?query=1")

    asyncio.run(call())
    return [record for record in caplog.records if record.name == ACCESS_LOGGER]


def test_access_log_middleware_fields(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    counted: list[int] = []
    [record] = _access_records(AccessLog(_ok, counted.append), caplog)
    assert counted == [201]
    assert (record.method, record.path, record.status) == ("GET", "/some/path", 201)
    assert record.latency_ms >= 0
    assert '"GET /some/path HTTP/1.1" 201 ' in record.getMessage()


def test_access_log_middleware_logs_a_failed_request_as_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    counted: list[int] = []
    [record] = _access_records(AccessLog(_crash, counted.append), caplog)
    assert record.status == 500
    assert counted == [500]


def test_access_log_middleware_is_silent_when_disabled(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=ACCESS_LOGGER)
    counted: list[int] = []
    assert _access_records(AccessLog(_ok, counted.append), caplog) == []
    assert counted == [201]  # the response counters still count
