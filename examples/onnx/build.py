"""Build the ONNX models the docs use, for the built-in ``tensor`` handler (no handler code):

* ``examples/onnx/model.onnx``: four features in (``x``, float32 ``[-1, 4]``), two out
  (``y``: their sum, and x0 - x1 + x2 - x3), for ``modelserve serve`` (README,
  docs/quick_deploy.md);
* ``examples/model_store/pair.mar`` (version 1.0) and ``pair_v2.mar`` (2.0): inputs ``a``
  (float32 ``[-1, 4]``) and ``b`` (int64 ``[-1, 4]``), output ``sum`` = a + b, for the KServe v2
  examples of docs/protocols.md;
* ``examples/model_store/tiny.mar`` (1.0: y = 2x) and ``tiny_v2.mar`` (2.0: y = 3x), labelled
  ``stable`` and ``canary`` in their model config, for the TF Serving examples there;
* ``examples/triton_repository/pair/1/model.onnx``: the same pair model in a Triton model
  repository, beside its committed ``config.pbtxt`` (docs/model-repositories.md).

The archives land in the model store ``make run`` serves, so the docs register them with
``curl -X POST "http://127.0.0.1:8081/models?url=pair.mar&..."``. Run with the project's
virtualenv (``make example`` does)::

    .venv/bin/python examples/onnx/build.py

Everything is rebuilt on each run; it takes about a second.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions
from onnx import TensorProto, helper, numpy_helper

EXAMPLE_DIR = Path(__file__).resolve().parent
MODEL_STORE = EXAMPLE_DIR.parent / "model_store"
BUILD_DIR = EXAMPLE_DIR / "build"
TRITON_PAIR = EXAMPLE_DIR.parent / "triton_repository" / "pair"
# An opset and IR version that every ONNX Runtime the extras allow can read.
OPSET = 17
IR_VERSION = 8
# Quoted versions: YAML reads 1.10 as the number 1.1.
TINY_CONFIG = 'versionLabels:\n  stable: "1.0"\n  canary: "2.0"\n'


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _rows(name: str, element_type: int, width: int) -> onnx.ValueInfoProto:
    """A tensor of any number of rows of ``width`` values."""
    return helper.make_tensor_value_info(name, element_type, ["N", width])


def quick_deploy_model(path: Path) -> Path:
    """``y = x @ W``: column 0 sums the four features, column 1 alternates their signs."""
    weights = np.array([[1, 1], [1, -1], [1, 1], [1, -1]], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "model",
        [_rows("x", TensorProto.FLOAT, 4)],
        [_rows("y", TensorProto.FLOAT, 2)],
        initializer=[numpy_helper.from_array(weights, "W")],
    )
    return _save(graph, path)


def pair_model(path: Path) -> Path:
    """``sum = a + b`` for a float32 ``a`` and an int64 ``b``."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["b"], ["b_float"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["a", "b_float"], ["sum"]),
        ],
        "pair",
        [_rows("a", TensorProto.FLOAT, 4), _rows("b", TensorProto.INT64, 4)],
        [_rows("sum", TensorProto.FLOAT, 4)],
    )
    return _save(graph, path)


def scaling_model(path: Path, factor: float) -> Path:
    """``y = factor * x``."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "factor"], ["y"])],
        "tiny",
        [_rows("x", TensorProto.FLOAT, 4)],
        [_rows("y", TensorProto.FLOAT, 4)],
        initializer=[numpy_helper.from_array(np.array(factor, dtype=np.float32), "factor")],
    )
    return _save(graph, path)


def archive(
    name: str, version: str, model: Path, archive_name: str, config: Path | None = None
) -> Path:
    """Pack ``model`` for the tensor handler as ``MODEL_STORE/archive_name``."""
    # The archiver names its output after the model; two versions need two file names.
    with tempfile.TemporaryDirectory() as export:
        built = build_archive(
            ArchiveOptions(
                model_name=name,
                version=version,
                handler="tensor",
                serialized_file=str(model),
                config_file=str(config) if config else None,
                export_path=export,
                force=True,
            )
        )
        target = MODEL_STORE / archive_name
        shutil.move(built, target)
    return target


def main() -> None:
    """Command-line entry point."""
    BUILD_DIR.mkdir(exist_ok=True)
    MODEL_STORE.mkdir(exist_ok=True)
    written = [quick_deploy_model(EXAMPLE_DIR / "model.onnx")]
    pair = pair_model(BUILD_DIR / "pair.onnx")
    written.append(archive("pair", "1.0", pair, "pair.mar"))
    written.append(archive("pair", "2.0", pair, "pair_v2.mar"))
    (TRITON_PAIR / "1").mkdir(exist_ok=True)
    written.append(Path(shutil.copyfile(pair, TRITON_PAIR / "1" / "model.onnx")))
    labels = BUILD_DIR / "tiny.yaml"
    labels.write_text(TINY_CONFIG)
    for version, factor, archive_name in (("1.0", 2.0, "tiny.mar"), ("2.0", 3.0, "tiny_v2.mar")):
        model = scaling_model(BUILD_DIR / f"tiny_{version}.onnx", factor)
        written.append(archive("tiny", version, model, archive_name, labels))
    for path in written:
        print(f"wrote {path.relative_to(EXAMPLE_DIR.parents[1])}")


if __name__ == "__main__":
    main()
