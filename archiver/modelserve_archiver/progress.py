"""A bytes-packed progress bar on stderr, drawn only for a person watching a terminal."""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO

BAR_WIDTH = 30
REDRAW_INTERVAL_S = 0.1


class Progress(Protocol):
    """Receives the number of bytes packed as packing goes on."""

    def advance(self, nbytes: int) -> None:
        """Record ``nbytes`` more bytes packed."""

    def close(self) -> None:
        """Packing has ended."""


class SilentProgress:
    """Progress that shows nothing (stderr is a pipe, a file, or a library caller)."""

    def advance(self, nbytes: int) -> None:
        """Ignore the bytes."""

    def close(self) -> None:
        """Nothing to finish."""


class ProgressBar:
    """``label [#####.....]  50%  1.2 MiB / 2.4 MiB`` redrawn in place with carriage returns."""

    def __init__(self, label: str, total: int, stream: TextIO) -> None:
        self._label = label
        self._total = max(total, 1)
        self._stream = stream
        self._done = 0
        self._last_draw = 0.0
        self._drawn_width = 0

    def advance(self, nbytes: int) -> None:
        """Record ``nbytes`` more bytes; redraw at most every REDRAW_INTERVAL_S."""
        self._done += nbytes
        now = time.monotonic()
        if now - self._last_draw >= REDRAW_INTERVAL_S:
            self._last_draw = now
            self._draw()

    def close(self) -> None:
        """Draw the final state and end the line."""
        self._draw()
        self._stream.write("\n")
        self._stream.flush()

    def _draw(self) -> None:
        fraction = min(self._done / self._total, 1.0)
        filled = int(fraction * BAR_WIDTH)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        self._stream.write(
            f"\r{self._label} [{bar}] {fraction:4.0%}  {_human(self._done)} / {_human(self._total)}"
        )
        self._stream.flush()


def progress_for(label: str, total: int, stream: TextIO | None = None) -> Progress:
    """A ProgressBar when ``stream`` (stderr by default) is a terminal, else SilentProgress."""
    stream = sys.stderr if stream is None else stream
    if stream.isatty():
        return ProgressBar(label, total, stream)
    return SilentProgress()


def _human(nbytes: int) -> str:
    if nbytes < 1024:
        return f"{nbytes} B"
    size = nbytes / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
