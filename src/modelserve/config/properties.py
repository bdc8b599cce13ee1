"""Java-style properties files, the format of TorchServe's config.properties (and snapshots)."""

from __future__ import annotations

import re


def parse_properties(text: str) -> dict[str, str]:
    """Parse a Java-style properties file (``key=value`` or ``key: value``; # and ! comments)."""
    values: dict[str, str] = {}
    pending = ""
    for raw_line in text.splitlines():
        line = pending + raw_line.strip()
        pending = ""
        if not line or line[0] in "#!":
            continue
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        match = re.match(r"([^=:\s]+)\s*[=:\s]\s*(.*)", line)
        if match:
            values[match.group(1)] = match.group(2)
        else:
            values[line] = ""
    return values
