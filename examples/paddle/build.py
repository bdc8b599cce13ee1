"""Write the model the Paddle example's op runs, ``digits_model/model.onnx``: the Triton
examples' ONNX digit classifier (examples/triton/build.py trains and exports it). Run with
the project's virtualenv (``make example`` does)::

    .venv/bin/python examples/paddle/build.py
"""

from __future__ import annotations

import runpy
from pathlib import Path

import onnx

HERE = Path(__file__).resolve().parent
MODEL = HERE / "digits_model" / "model.onnx"


def main() -> None:
    triton = runpy.run_path(str(HERE.parent / "triton" / "build.py"))
    MODEL.parent.mkdir(exist_ok=True)
    onnx.save(triton["onnx_model"](triton["train"]()), MODEL)
    print(f"wrote {MODEL.relative_to(HERE.parent.parent)}")


if __name__ == "__main__":
    main()
