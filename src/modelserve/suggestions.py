"""The closest known name to a mistyped one, for the "did you mean ...?" of an error message.

Standard library only, so that every room may use it (config, api, worker). The archiver, which
must not import the server, has its own one-line equivalent.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# difflib's similarity ratio a known name needs to be offered: its default, which finds one
# dropped, added or swapped letter in a name of five or more and little that is unrelated.
CUTOFF = 0.6


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name most like ``name``, or None when none is alike enough."""
    matches = difflib.get_close_matches(name, list(known), n=1, cutoff=CUTOFF)
    return matches[0] if matches else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the known name closest to ``name``, or "" when none is."""
    match = closest(name, known)
    return "" if match is None else f" (did you mean {match!r}?)"
