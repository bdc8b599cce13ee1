"""Build the digits example: train the model if needed, then pack it as ``digits.mar`` into
``examples/model_store/``, the model store ``make run`` serves.

Training artifacts go to ``examples/digits/build/``; an existing ``build/digits.pt`` is reused,
delete the directory to retrain. The archive is made by the ``model-archiver`` console script
installed next to the running interpreter, so run this with the project's virtualenv:

    .venv/bin/python examples/digits/build.py

``--samples`` also rewrites ``sample.json`` and ``sample.png`` (the example requests used in
the README) from the first held-out image.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

EXAMPLE_DIR = Path(__file__).resolve().parent
BUILD_DIR = EXAMPLE_DIR / "build"
REPOSITORY = EXAMPLE_DIR.parents[1]
# Shared with the other examples: the model store ``make run`` serves.
MODEL_STORE = EXAMPLE_DIR.parent / "model_store"
SAMPLE_INDEX = 0
SAMPLE_PNG_SIZE = 64


def ensure_trained() -> dict[str, float | int]:
    """Train into ``BUILD_DIR`` unless a model is already there; return the metrics."""
    if not (BUILD_DIR / "digits.pt").is_file():
        # train.py sits beside this file, not in an installed package.
        sys.path.insert(0, str(EXAMPLE_DIR))
        from train import train

        return train(BUILD_DIR)
    return json.loads((BUILD_DIR / "metrics.json").read_text())


def write_samples() -> int:
    """Write one held-out image as ``sample.json`` and ``sample.png``; return its label.

    The JSON keeps the 0..16 scale the handler expects; the PNG is the same grid scaled to
    0..255 and enlarged with nearest-neighbour so each cell stays a sharp block.
    """
    heldout = np.load(BUILD_DIR / "heldout.npz")
    grid = heldout["images"][SAMPLE_INDEX].astype(int)
    rows = ",\n".join(f"  {json.dumps(row)}" for row in grid.tolist())
    (EXAMPLE_DIR / "sample.json").write_text(f"[\n{rows}\n]\n")
    gray = Image.fromarray(np.round(grid * (255 / 16)).astype(np.uint8), mode="L")
    gray.resize((SAMPLE_PNG_SIZE, SAMPLE_PNG_SIZE), Image.Resampling.NEAREST).save(
        EXAMPLE_DIR / "sample.png"
    )
    return int(heldout["labels"][SAMPLE_INDEX])


def pack_archive() -> Path:
    """Run ``model-archiver`` on the trained model and return the path of the archive."""
    archiver = Path(sys.executable).parent / "model-archiver"
    command = [
        str(archiver),
        "--model-name", "digits",
        "--version", "1.0",
        "--serialized-file", "examples/digits/build/digits.pt",
        "--handler", "examples/digits/handler.py",
        "--extra-files", "examples/digits/build/index_to_name.json",
        "--export-path", "examples/model_store",
        "--force",
    ]  # fmt: skip
    # torch-model-archiver 0.12 refuses an export path that does not exist yet.
    MODEL_STORE.mkdir(exist_ok=True)
    # The paths above are relative to the repository root, as in the README.
    subprocess.run(command, cwd=REPOSITORY, check=True)
    archive = MODEL_STORE / "digits.mar"
    if not archive.is_file():
        raise SystemExit(f"{archiver} exited cleanly but wrote no {archive}")
    return archive


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--samples",
        action="store_true",
        help="also rewrite sample.json and sample.png from the first held-out image",
    )
    args = parser.parse_args()
    metrics = ensure_trained()
    if args.samples:
        label = write_samples()
        print(f"wrote sample.json and sample.png (a {label}) in {EXAMPLE_DIR}")
    archive = pack_archive()
    print(f"archive: {archive}")
    print(f"held-out accuracy: {metrics['heldout_accuracy']:.4f} on {metrics['n_heldout']} images")


if __name__ == "__main__":
    main()
