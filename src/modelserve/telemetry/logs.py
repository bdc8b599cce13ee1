"""Logging setup: the server, access and model logs, to stderr and optionally to rotated files.

TorchServe keeps three streams apart; so does modelserve:

- the server log: logger ``modelserve`` and its children (and anything a library logs);
- the access log: logger ``modelserve.access``, one line per HTTP request;
- the model log: logger ``modelserve.model_log``, the workers' stdout and stderr lines.

All three go to stderr. With ``log_dir`` each also goes to its own file there, rotated at
midnight with ``log_backup_count`` old files kept.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import datetime
from logging.handlers import TimedRotatingFileHandler
from pathlib import Path

import orjson

from modelserve.config import ConfigError, Settings

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

# Attributes every LogRecord has; whatever else a record carries came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}


class TextFormatter(logging.Formatter):
    """logging's text format, with the date and time rendered once a second, not per record.

    strftime is a good part of the cost of a record, and the access log writes one per request.
    """

    def __init__(self, fmt: str, defaults: dict[str, str] | None = None) -> None:
        super().__init__(fmt, defaults=defaults)
        self._second_text = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """``2026-01-31 12:00:00,123`` in local time, as logging's default."""
        second, text = self._second_text
        if int(record.created) != second:
            second = int(record.created)
            text = time.strftime(self.default_time_format, self.converter(record.created))
            # One tuple: a thread logging concurrently never pairs a second with the wrong text.
            self._second_text = (second, text)
        return self.default_msec_format % (text, record.msecs)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp, level, logger, message and the ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a single line of JSON."""
        entry = {
            "timestamp": datetime.fromtimestamp(record.created)
            .astimezone()
            .isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def rotating_file_handler(path: Path, backup_count: int) -> TimedRotatingFileHandler:
    """A file handler that starts a new file at midnight and keeps ``backup_count`` old ones."""
    return TimedRotatingFileHandler(
        path, when="midnight", backupCount=backup_count, encoding="utf-8"
    )


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
            ACCESS_LOGGER: _stream_handlers(settings, ACCESS_LOG_FILE, server_format),
            MODEL_LOGGER: _stream_handlers(settings, MODEL_LOG_FILE, model_format),
        }
    except OSError as exc:
        raise ConfigError(f"log_dir: cannot write logs in {settings.log_dir}: {exc}") from exc
    # No format shows the thread or process, and gathering them (a getpid call among others)
    # costs on every record, so on every request once the access log is on.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.getLogger().setLevel(settings.log_level.upper())
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
