"""Build the streaming example into the model store ``make run`` serves: ``tokens.mar``, a
handler-only archive of ``tokens.py`` (docs/streaming.md). Run with the project's virtualenv
(``make example`` does)::

    .venv/bin/python examples/streaming/build.py
"""

from __future__ import annotations

from pathlib import Path

from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions

EXAMPLE_DIR = Path(__file__).resolve().parent
MODEL_STORE = EXAMPLE_DIR.parent / "model_store"


def main() -> None:
    MODEL_STORE.mkdir(parents=True, exist_ok=True)
    options = ArchiveOptions(
        model_name="tokens",
        version="1.0",
        handler=str(EXAMPLE_DIR / "tokens.py"),
        export_path=MODEL_STORE,
        force=True,
    )
    print(f"wrote {build_archive(options).relative_to(EXAMPLE_DIR.parent.parent)}")


if __name__ == "__main__":
    main()
