"""Build the model file the Triton examples need that cannot be committed as text: the ONNX
digit classifier ``model_repository/digits_classifier/1/model.onnx``.

A logistic regression is trained on scikit-learn's bundled digits (pixels scaled to [0, 1])
and written as ONNX by hand (MatMul, Add, Softmax), so no converter is needed. Run with the
project's virtualenv (``make example`` does)::

    .venv/bin/python examples/triton/build.py

It takes about ten seconds on two cores (most of it importing scikit-learn).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

REPOSITORY = Path(__file__).resolve().parent / "model_repository"
CLASSIFIER = REPOSITORY / "digits_classifier" / "1" / "model.onnx"
MAX_INTENSITY = 16.0
# An opset and IR version that every ONNX Runtime the extras allow can read.
OPSET = 17
IR_VERSION = 8


def train() -> LogisticRegression:
    """The classifier, on every digit of the bundled data set (a fixed seed: reproducible)."""
    digits = load_digits()
    return LogisticRegression(max_iter=2000, random_state=0).fit(
        digits.data / MAX_INTENSITY, digits.target
    )


def onnx_model(classifier: LogisticRegression) -> onnx.ModelProto:
    """softmax(pixels @ coef.T + intercept): the classifier's predict_proba."""
    weights = numpy_helper.from_array(classifier.coef_.T.astype(np.float32), "weights")
    bias = numpy_helper.from_array(classifier.intercept_.astype(np.float32), "bias")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["pixels", "weights"], ["scores"]),
            helper.make_node("Add", ["scores", "bias"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "digits_classifier",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 10])],
        initializer=[weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def main() -> None:
    CLASSIFIER.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(onnx_model(train()), CLASSIFIER)
    print(f"wrote {CLASSIFIER.relative_to(REPOSITORY.parent.parent.parent)}")


if __name__ == "__main__":
    main()
