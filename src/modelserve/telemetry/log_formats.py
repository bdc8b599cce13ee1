"""The two log line formats, text and JSON, made cheap enough for a line per request.

The access log writes a record per HTTP request, so what logging's own Formatter does per
record shows in the server's throughput: the timestamp is rendered once a second here, and a
record is rendered once although both its stderr and its file handler ask for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

import orjson

# Attributes every LogRecord has; whatever else a record carries came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}


class _EverySecond:
    """The whole-second part of a timestamp, rendered only when the second changes."""

    def __init__(self, render: Callable[[int], str]) -> None:
        self._render = render
        # One tuple: a thread logging concurrently never pairs a second with the wrong text.
        self._cached = (-1, "")

    def __call__(self, created: float) -> str:
        second, text = self._cached
        if int(created) != second:
            second = int(created)
            text = self._render(second)
            self._cached = (second, text)
        return text


class _OncePerRecord(logging.Formatter):
    """Renders each record once, though the stderr and the file handler both format it."""

    def __init__(self, fmt: str | None = None, defaults: dict[str, str] | None = None) -> None:
        super().__init__(fmt, defaults=defaults)
        self._last: tuple[logging.LogRecord | None, str] = (None, "")

    def format(self, record: logging.LogRecord) -> str:
        """The record's line, rendered on the first call for this record."""
        last, text = self._last
        if record is not last:
            text = self.render(record)
            self._last = (record, text)
        return text

    def render(self, record: logging.LogRecord) -> str:
        """The record as one log line (without the newline)."""
        raise NotImplementedError


class TextFormatter(_OncePerRecord):
    """logging's ``%``-style text format, with its default local timestamp."""

    def __init__(self, fmt: str, defaults: dict[str, str] | None = None) -> None:
        super().__init__(fmt, defaults)
        self._seconds = _EverySecond(
            lambda second: time.strftime(self.default_time_format, self.converter(second))
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """``2026-01-31 12:00:00,123`` in local time, as logging's default."""
        return self.default_msec_format % (self._seconds(record.created), record.msecs)

    def render(self, record: logging.LogRecord) -> str:
        """The record through the ``%`` format string."""
        return super(_OncePerRecord, self).format(record)


class JsonFormatter(_OncePerRecord):
    """One JSON object per record: timestamp, level, logger, message and the ``extra`` fields."""

    def __init__(self) -> None:
        super().__init__()
        # "2026-01-31T12:00:00+01:00": ISO 8601 in local time, with the offset.
        self._seconds = _EverySecond(
            lambda second: datetime.fromtimestamp(second).astimezone().isoformat()
        )

    def render(self, record: logging.LogRecord) -> str:
        """The record as a single line of JSON."""
        second = self._seconds(record.created)
        entry = {
            "timestamp": f"{second[:19]}.{int(record.msecs):03d}{second[19:]}",
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
