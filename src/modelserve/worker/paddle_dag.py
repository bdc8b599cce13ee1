"""``python -m modelserve.worker.paddle_dag SERVICE.py OUT.json``: read a Paddle Serving
pipeline service's DAG by running its file, as ``modelserve paddle`` needs it before it
starts the server, and write it to OUT.json (``paddle_serving_server.web_service.describe``).

A process of its own: the service file is user code, which the frontend never runs. Its
output is the file's own; a failure prints the traceback on stderr and exits 1.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from pathlib import Path

from modelserve.worker.paddle_compat import enable_paddle_compat


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m modelserve.worker.paddle_dag SERVICE.py OUT.json", file=sys.stderr)
        return 2
    service_file, out = argv[0], Path(argv[1]).resolve()  # the file's run changes directory
    enable_paddle_compat()
    try:
        web_service = importlib.import_module("paddle_serving_server.web_service")
        description = web_service.describe(web_service.load_service(service_file))
        text = json.dumps(description)
    except Exception:
        traceback.print_exc()
        return 1
    out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
