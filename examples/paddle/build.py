"""Put the model the Paddle example's op runs in its model_config directory,
``digits_model/model.onnx``: the Triton examples' ONNX digit classifier, which
examples/triton/build.py trains and exports (run here first when it has not been). Run with
the project's virtualenv (``make example`` does)::

    .venv/bin/python examples/paddle/build.py
"""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = HERE / "digits_model" / "model.onnx"


def main() -> None:
    triton = runpy.run_path(str(HERE.parent / "triton" / "build.py"))
    if not triton["CLASSIFIER"].is_file():
        triton["main"]()
    MODEL.parent.mkdir(exist_ok=True)
    shutil.copyfile(triton["CLASSIFIER"], MODEL)
    print(f"wrote {MODEL.relative_to(HERE.parent.parent)}")


if __name__ == "__main__":
    main()
