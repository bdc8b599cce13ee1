"""Logging setup: the server, access and model logs, to stderr and optionally to rotated files.

TorchServe keeps three streams apart; so does modelserve:

- the server log: logger ``modelserve`` and its children (and anything a library logs);
- the access log: logger ``modelserve.access``, one line per HTTP request and per gRPC
  streaming call (``log_access``);
- the model log: logger ``modelserve.model_log``, the workers' stdout and stderr lines.

All three go to stderr. With ``log_dir`` each also goes to its own file there, rotated at
midnight with ``log_backup_count`` old files kept.

Access-log lines are written without a flush (a syscall) per request: the server calls
``flush_access_log`` a few times a second and at shutdown, which keeps the access log from
costing a third of the server's throughput.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from logging.handlers import TimedRotatingFileHandler
from pathlib import Path
from typing import Any, TextIO

from modelserve.config import ConfigError, Settings
from modelserve.telemetry.log_formats import JsonFormatter, TextFormatter

ACCESS_LOGGER = "modelserve.access"
MODEL_LOGGER = "modelserve.model_log"
SERVER_LOG_FILE = "modelserve.log"
ACCESS_LOG_FILE = "access_log.log"
MODEL_LOG_FILE = "model_log.log"

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The structured fields stay readable in text: "[probe:1.0 9000] <the worker's line>".
MODEL_TEXT_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s [%(model_name)s:%(model_version)s %(worker_id)s] "
    "%(message)s"
)
MODEL_FIELD_DEFAULTS = {"model_name": "-", "model_version": "-", "worker_id": "-"}
_access_log = logging.getLogger(ACCESS_LOGGER)


ACCESS_FORMAT = '%s "%s %s %s" %d %.3f ms'
# What every access record shares (level, logger, source, process and thread fields): taken
# from the first record made the ordinary way, then copied. LogRecord.__init__ works all of
# them out again on every call, a sixth of what a logged request costs the access log.
_access_template: dict[str, Any] = {}
_START = time.time()


def log_access(
    client: str, method: str, path: str, protocol: str, status: int, latency_ms: float
) -> None:
    """One access-log line: ``client "METHOD PATH PROTOCOL" status latency``, with the
    fields as the record's attributes (JSON logs)."""
    args = (client, method, path, protocol, status, latency_ms)
    if not _access_template:
        # makeRecord + handle instead of info(): info() walks the stack for the caller's file
        # and line, which no access-log format shows.
        first = _access_log.makeRecord(
            ACCESS_LOGGER, logging.INFO, __file__, 0, ACCESS_FORMAT, args, None
        )
        _access_template.update(vars(first))
        if "taskName" in _access_template:  # 3.12+: not the first request's task for all
            _access_template["taskName"] = None
    record = logging.LogRecord.__new__(logging.LogRecord)
    created = time.time()
    record.__dict__.update(
        _access_template,
        args=args,
        created=created,
        msecs=int((created - int(created)) * 1000) + 0.0,
        relativeCreated=(created - _START) * 1000,
        client=client,
        method=method,
        path=path,
        status=status,
        latency_ms=round(latency_ms, 3),
    )
    _access_log.handle(record)


class _FlushLater:
    """Mixin for a stream handler whose records wait in the stream's buffer until flush_now."""

    def flush(self) -> None:
        """Called by emit after every record; deliberately nothing (see flush_now)."""

    def flush_now(self) -> None:
        """Write what is buffered."""
        super().flush()  # type: ignore[misc]

    def close(self) -> None:
        """Flush, then close."""
        self.flush_now()
        super().close()  # type: ignore[misc]


class BatchedStreamHandler(_FlushLater, logging.StreamHandler):
    """A stream handler that flushes on a timer, not per record."""


class BatchedRotatingFileHandler(_FlushLater, TimedRotatingFileHandler):
    """A rotating file handler that flushes on a timer, not per record."""


_batched: list[_FlushLater] = []


def flush_access_log() -> None:
    """Write out buffered access-log lines (the server calls this periodically)."""
    for handler in _batched:
        handler.flush_now()


def rotating_file_handler(path: Path, backup_count: int) -> TimedRotatingFileHandler:
    """A file handler that starts a new file at midnight and keeps ``backup_count`` old ones."""
    return TimedRotatingFileHandler(
        path, when="midnight", backupCount=backup_count, encoding="utf-8"
    )


def _buffered_stderr() -> TextIO:
    # sys.stderr is line-buffered (a write per line); a block-buffered twin of the same
    # descriptor lets access lines go out in batches.
    try:
        descriptor = os.dup(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):
        return sys.stderr  # stderr without a descriptor (captured): write through it
    return open(descriptor, "w", buffering=1 << 16, encoding="utf-8")


def _stream_handlers(
    settings: Settings, file_name: str, formatter: logging.Formatter
) -> list[logging.Handler]:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if settings.log_dir is not None:
        handlers.append(
            rotating_file_handler(settings.log_dir / file_name, settings.log_backup_count)
        )
    for handler in handlers:
        handler.setFormatter(formatter)
    return handlers


def _access_handlers(settings: Settings, formatter: logging.Formatter) -> list[logging.Handler]:
    handlers: list[logging.Handler] = [BatchedStreamHandler(_buffered_stderr())]
    if settings.log_dir is not None:
        handlers.append(
            BatchedRotatingFileHandler(
                settings.log_dir / ACCESS_LOG_FILE,
                when="midnight",
                backupCount=settings.log_backup_count,
                encoding="utf-8",
            )
        )
    for handler in handlers:
        handler.setFormatter(formatter)
    return handlers


def configure_logging(settings: Settings) -> None:
    """Route the three log streams per ``settings``; calling it again replaces the setup."""
    if settings.log_format == "json":
        server_format = model_format = JsonFormatter()
    else:
        server_format = TextFormatter(TEXT_FORMAT)
        # A model-log record without the fields (a stray third-party call) still formats.
        model_format = TextFormatter(MODEL_TEXT_FORMAT, defaults=MODEL_FIELD_DEFAULTS)
    try:
        if settings.log_dir is not None:
            settings.log_dir.mkdir(parents=True, exist_ok=True)
        routes = {
            "": _stream_handlers(settings, SERVER_LOG_FILE, server_format),
            ACCESS_LOGGER: _access_handlers(settings, server_format),
            MODEL_LOGGER: _stream_handlers(settings, MODEL_LOG_FILE, model_format),
        }
    except OSError as exc:
        raise ConfigError(f"log_dir: cannot write logs in {settings.log_dir}: {exc}") from exc
    # No format shows the thread or process, and gathering them (a getpid call among others)
    # costs on every record, so on every request once the access log is on.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.getLogger().setLevel(settings.log_level.upper())
    _batched[:] = [h for h in routes[ACCESS_LOGGER] if isinstance(h, _FlushLater)]
    # The access middleware does no work at all while its logger is off for INFO.
    logging.getLogger(ACCESS_LOGGER).setLevel(
        logging.NOTSET if settings.enable_access_log else logging.WARNING
    )
    for name, handlers in routes.items():
        logger = logging.getLogger(name)
        for old in logger.handlers[:]:
            logger.removeHandler(old)
            old.close()
        for handler in handlers:
            logger.addHandler(handler)
        if name:
            # The access and model logs have files of their own and stay out of the server log.
            logger.propagate = False
