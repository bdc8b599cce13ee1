"""Tiny models in every format the ``tensor`` handler serves, built by the tests, each with
the framework's own in-process answer to compare the server's with."""

from __future__ import annotations

import builtins
import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions

Reference = Callable[[np.ndarray], np.ndarray]

RNG = np.random.default_rng(7)
WEIGHT = RNG.standard_normal((3, 4)).astype(np.float32)  # 4 features → 3 outputs
BIAS = RNG.standard_normal(3).astype(np.float32)
SAMPLE = (np.arange(8, dtype=np.float32).reshape(2, 4) - 3.5) / 2  # two rows of four features

MODEL_FILE = Path(__file__).parent / "fixtures" / "models" / "tiny_net.py"


def eager_class() -> type[torch.nn.Module]:
    """TinyNet, imported from the file the eager archive carries."""
    spec = importlib.util.spec_from_file_location("tiny_net", MODEL_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TinyNet


def _tiny_net() -> torch.nn.Module:
    net = eager_class()()
    net.load_state_dict(
        {"linear.weight": torch.from_numpy(WEIGHT), "linear.bias": torch.from_numpy(BIAS)}
    )
    return net.eval()


def _torch_reference(module: torch.nn.Module) -> Reference:
    def reference(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    return reference


def save_torchscript(directory: Path) -> tuple[Path, Reference]:
    """A scripted TinyNet; the reference is ``torch.jit.load`` of the same file."""
    path = directory / "tiny.pt"
    torch.jit.save(torch.jit.script(_tiny_net()), str(path))
    return path, _torch_reference(torch.jit.load(str(path)).eval())


def save_eager(directory: Path) -> tuple[Path, Path, Reference]:
    """tiny_net.py and a state dict for it; the reference is TinyNet with that state dict."""
    weights = directory / "tiny_net_state.pth"
    torch.save(_tiny_net().state_dict(), weights)
    net = eager_class()()
    net.load_state_dict(torch.load(weights, weights_only=True))
    return MODEL_FILE, weights, _torch_reference(net.eval())


class _RunsCode:
    """Unpickling this runs ``code``: what a malicious "state dict" would do."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple:
        return (builtins.exec, (self.code,))


def save_malicious_state_dict(path: Path, marker: Path) -> None:
    """A state dict that, loaded without weights_only, would create ``marker``."""
    payload = _RunsCode(f"open({str(marker)!r}, 'w').write('owned')")
    torch.save({"linear.weight": torch.from_numpy(WEIGHT), "hook": payload}, path)


def save_onnx_linear(directory: Path) -> tuple[Path, Reference]:
    """``y = relu(x @ W.T + b)`` for ``x`` of shape (N, 4); the reference is ONNX Runtime."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "W", "B"], ["z"], transB=1),
            helper.make_node("Relu", ["z"], ["y"]),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(WEIGHT, "W"), numpy_helper.from_array(BIAS, "B")],
    )
    path = directory / "linear.onnx"
    _save_onnx(graph, path)
    session = _ort_session(path)
    return path, lambda x: session.run(None, {"x": x})[0]


def save_onnx_pair(
    directory: Path, busy_matmuls: int = 0
) -> tuple[Path, Callable[..., dict[str, np.ndarray]]]:
    """Inputs ``a`` (float32, N, 4) and ``b`` (int64, N, 4); outputs ``sum`` and ``product``.

    ``busy_matmuls``: that many products of 512 x 512 matrices per batch, added to ``sum`` as
    zero (the matrices depend on ``a``, so ONNX Runtime cannot fold them away): a model that
    keeps its worker busy, so that requests queue behind it.
    """
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Cast", ["b"], ["b_float"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["a", "b_float"], ["plain_sum" if busy_matmuls else "sum"]),
        helper.make_node("Mul", ["a", "b_float"], ["product"]),
    ]
    initializers = []
    if busy_matmuls:
        size = 512
        nodes += [
            helper.make_node("ReduceSum", ["a"], ["a_total"]),
            helper.make_node("Mul", ["a_total", "zero"], ["a_zero"]),
            helper.make_node(
                "ConstantOfShape",
                ["square"],
                ["uniform"],
                value=helper.make_tensor("fill", TensorProto.FLOAT, [1], [1 / size]),
            ),
            # Each product of this matrix (1/size everywhere) with itself is itself.
            helper.make_node("Add", ["uniform", "a_zero"], ["busy_0"]),
            *(
                helper.make_node("MatMul", [f"busy_{i}", f"busy_{i}"], [f"busy_{i + 1}"])
                for i in range(busy_matmuls)
            ),
            helper.make_node("ReduceSum", [f"busy_{busy_matmuls}"], ["busy_total"]),
            helper.make_node("Mul", ["busy_total", "zero"], ["busy_zero"]),
            helper.make_node("Add", ["plain_sum", "busy_zero"], ["sum"]),
        ]
        initializers = [
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("square", TensorProto.INT64, [2], [size, size]),
        ]
    graph = helper.make_graph(
        nodes,
        "pair",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("b", TensorProto.INT64, ["N", 4]),
        ],
        [
            helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("product", TensorProto.FLOAT, ["N", 4]),
        ],
        initializer=initializers,
    )
    path = directory / (f"pair-busy-{busy_matmuls}.onnx" if busy_matmuls else "pair.onnx")
    _save_onnx(graph, path)
    session = _ort_session(path)

    def reference(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(["sum", "product"], session.run(["sum", "product"], inputs), strict=True))

    return path, reference


def save_onnx_strings(directory: Path) -> Path:
    """``echo``: a string tensor (N) returned as it came."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["echo"])],
        "strings",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("echo", TensorProto.STRING, ["N"])],
    )
    path = directory / "strings.onnx"
    _save_onnx(graph, path)
    return path


def save_onnx_sequence_controls(directory: Path) -> Path:
    """Triton's simple_sequence shape: ``INPUT``, ``START`` and ``READY`` (int32, N x 1) in,
    ``OUTPUT = INPUT + 100 * START + 10 * READY`` out: what a request's control inputs were."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["START", "hundred"], ["started"]),
            helper.make_node("Mul", ["READY", "ten"], ["ready"]),
            helper.make_node("Add", ["INPUT", "started"], ["partial"]),
            helper.make_node("Add", ["partial", "ready"], ["OUTPUT"]),
        ],
        "sequence_controls",
        [
            helper.make_tensor_value_info(name, TensorProto.INT32, ["N", 1])
            for name in ("INPUT", "START", "READY")
        ],
        [helper.make_tensor_value_info("OUTPUT", TensorProto.INT32, ["N", 1])],
        initializer=[
            helper.make_tensor("hundred", TensorProto.INT32, [], [100]),
            helper.make_tensor("ten", TensorProto.INT32, [], [10]),
        ],
    )
    path = directory / "sequence_controls.onnx"
    _save_onnx(graph, path)
    return path


def _save_onnx(graph: object, path: Path) -> None:
    import onnx
    from onnx import helper

    # An opset and IR version that every ONNX Runtime the extras allow can read.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _ort_session(path: Path) -> object:
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def save_tf_saved_model(directory: Path, samples: list[np.ndarray]) -> tuple[Path, Reference]:
    """A SavedModel directory computing TinyNet; the reference knows its answers to ``samples``.

    TensorFlow runs in a subprocess (see tiny_tf_net.py), so the reference can only look up
    what the saved model answered there.
    """
    saved = directory / "tiny_saved_model"
    parameters = directory / "tf_parameters.npz"
    answers_file = directory / "tf_answers.npz"
    named = {f"x{index}": sample for index, sample in enumerate(samples)}
    np.savez(parameters, weight=WEIGHT, bias=BIAS, **named)
    script = MODEL_FILE.parent / "tiny_tf_net.py"
    command = [sys.executable, str(script), str(saved), str(parameters), str(answers_file)]
    subprocess.run(command, check=True, capture_output=True)
    answers = np.load(answers_file)
    by_input = {sample.tobytes(): answers[name] for name, sample in named.items()}

    def reference(x: np.ndarray) -> np.ndarray:
        return by_input[np.ascontiguousarray(x, dtype=np.float32).tobytes()]

    return saved, reference


def tensor_archive(store: Path, name: str, serialized: Path) -> str:
    """Pack ``serialized`` with the built-in ``tensor`` handler; returns the archive's name."""
    build_archive(
        ArchiveOptions(
            model_name=name,
            version="1.0",
            handler="tensor",
            serialized_file=str(serialized),
            export_path=store,
            force=True,
        )
    )
    return f"{name}.mar"
