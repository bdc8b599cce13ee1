"""The digits example end to end, in-process: training, then the handler on every input format.

The handler is driven the way a worker drives it (``initialize(context)`` then
``handle(batch, context)``), with a minimal context carrying just what TorchServe provides.
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import json
import re
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

EXAMPLE_DIR = Path(__file__).resolve().parents[1] / "examples" / "digits"
BATCH_SIZE = 8
# The digit drawn in the committed sample.json / sample.png, as the example's README states.
SAMPLE_LABEL = 7


def load_example_module(name: str) -> ModuleType:
    """Import ``examples/digits/<name>.py``, which is a script directory, not a package."""
    spec = importlib.util.spec_from_file_location(
        f"digits_example_{name}", EXAMPLE_DIR / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_context(model_dir: Path, gpu_id: int | None = None) -> SimpleNamespace:
    """The parts of TorchServe's Context that a class handler reads at load time."""
    return SimpleNamespace(
        system_properties={"model_dir": str(model_dir), "gpu_id": gpu_id, "batch_size": BATCH_SIZE},
        manifest={"model": {"modelName": "digits", "serializedFile": "digits.pt"}},
    )


class BatchContext:
    """The per-request status setter of TorchServe's Context, recording what was set."""

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self.statuses[idx] = code


def render(grid: np.ndarray, image_format: str, dark_ink_on_white: bool) -> bytes:
    """Encode an 8x8 0..16 grid as a 32x32 image file, as a user might draw the digit."""
    pixels = np.round(grid * (255 / 16)).astype(np.uint8)
    if dark_ink_on_white:
        pixels = 255 - pixels
    image = Image.fromarray(pixels, mode="L").resize((32, 32), Image.Resampling.NEAREST)
    if image_format == "JPEG":
        # Photos and scans are usually colour; make the handler do the grey conversion.
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Train once for the whole module; return the artifact directory and the metrics."""
    # The GPU check's offline wheel folder leaves scikit-learn out (too large for it).
    pytest.importorskip("sklearn", reason="training the digits example needs scikit-learn")
    out_dir = tmp_path_factory.mktemp("digits")
    metrics = load_example_module("train").train(out_dir)
    return out_dir, metrics


@pytest.fixture(scope="module")
def heldout(artifacts: tuple[Path, dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """The held-out images (0..16 scale) and labels written by the training script."""
    data = np.load(artifacts[0] / "heldout.npz")
    return data["images"], data["labels"]


@pytest.fixture(scope="module")
def handler(artifacts: tuple[Path, dict[str, Any]]) -> Any:
    """A handler initialised on the freshly trained model, on the CPU."""
    instance = load_example_module("handler").DigitsHandler()
    instance.initialize(make_context(artifacts[0]))
    return instance


def classify(
    handler: Any, payloads: list[Any], context: BatchContext | None = None
) -> list[dict[str, Any]]:
    """Send one batch, each payload as the body of one request."""
    context = context or BatchContext()
    return handler.handle([{"body": payload} for payload in payloads], context)


def test_training_meets_accuracy_bar(artifacts: tuple[Path, dict[str, Any]]) -> None:
    out_dir, metrics = artifacts
    assert metrics["heldout_accuracy"] >= 0.95
    assert metrics["n_heldout"] == 360
    assert json.loads((out_dir / "metrics.json").read_text()) == metrics
    index_to_name = json.loads((out_dir / "index_to_name.json").read_text())
    assert index_to_name == {str(digit): str(digit) for digit in range(10)}


def test_heldout_file_keeps_sklearn_scale(heldout: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = heldout
    assert images.dtype == np.float32 and images.shape == (360, 8, 8)
    assert images.min() == 0 and images.max() == 16
    assert np.array_equal(images, np.round(images))
    assert sorted(set(labels.tolist())) == list(range(10))


def test_handler_module_defines_exactly_one_class() -> None:
    # TorchServe refuses a class-handler module with more or fewer than one class.
    module = load_example_module("handler")
    own_classes = [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if obj.__module__ == module.__name__
    ]
    assert len(own_classes) == 1


def test_handler_matches_training_accuracy(
    handler: Any,
    artifacts: tuple[Path, dict[str, Any]],
    heldout: tuple[np.ndarray, np.ndarray],
) -> None:
    images, labels = heldout
    predicted = []
    for start in range(0, len(images), BATCH_SIZE):
        batch = [image.tolist() for image in images[start : start + BATCH_SIZE]]
        predicted += [result["digit"] for result in classify(handler, batch)]
    handler_accuracy = float(np.mean(np.array(predicted) == labels))
    assert handler_accuracy == pytest.approx(artifacts[1]["heldout_accuracy"], abs=1e-12)


def test_response_shape(handler: Any, heldout: tuple[np.ndarray, np.ndarray]) -> None:
    (result,) = classify(handler, [heldout[0][0].tolist()])
    assert set(result) == {"digit", "probabilities"}
    assert isinstance(result["digit"], int)
    probabilities = result["probabilities"]
    assert list(probabilities) == [str(digit) for digit in range(10)]
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(p == round(p, 6) for p in probabilities.values())
    assert max(probabilities, key=probabilities.get) == str(result["digit"])


def test_json_forms_agree(handler: Any, heldout: tuple[np.ndarray, np.ndarray]) -> None:
    grid = heldout[0][1].astype(int).tolist()
    text = json.dumps(grid)
    payloads = [grid, text, text.encode(), bytearray(text.encode()), {"data": grid}]
    results = classify(handler, payloads)
    assert all(result == results[0] for result in results)
    # The "data" key of a request takes precedence over "body", as in TorchServe's handlers.
    (from_data_key,) = handler.handle([{"data": text.encode(), "body": b"ignored"}], BatchContext())
    assert from_data_key == results[0]


def test_batch_is_one_forward_pass(handler: Any, heldout: tuple[np.ndarray, np.ndarray]) -> None:
    calls = []
    model = handler.model

    def counting_model(batch: torch.Tensor) -> torch.Tensor:
        calls.append(batch.shape)
        return model(batch)

    grids = [image.tolist() for image in heldout[0][:BATCH_SIZE]]
    handler.model = counting_model
    try:
        results = classify(handler, grids)
    finally:
        handler.model = model
    assert calls == [torch.Size([BATCH_SIZE, 1, 8, 8])]
    assert len(results) == BATCH_SIZE


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
@pytest.mark.parametrize("dark_ink_on_white", [False, True], ids=["bright-ink", "dark-ink"])
def test_images_are_classified(
    handler: Any,
    heldout: tuple[np.ndarray, np.ndarray],
    image_format: str,
    dark_ink_on_white: bool,
) -> None:
    images, labels = heldout
    # Images that the model gets right from the exact grid; the test is about the image path.
    grid_digits = [
        result["digit"] for result in classify(handler, [g.tolist() for g in images[:12]])
    ]
    chosen = [i for i, digit in enumerate(grid_digits) if digit == labels[i]][:6]
    payloads = [render(images[i], image_format, dark_ink_on_white) for i in chosen]
    results = classify(handler, payloads)
    assert [result["digit"] for result in results] == [int(labels[i]) for i in chosen]


def test_transparent_png_is_read_as_ink_on_white(
    handler: Any, heldout: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = heldout
    # Canvas exports: black ink whose strength lives in the alpha channel, transparent elsewhere.
    alpha = Image.fromarray(np.round(images[0] * (255 / 16)).astype(np.uint8), mode="L")
    ink = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    ink.putalpha(alpha)
    buffer = io.BytesIO()
    ink.resize((32, 32), Image.Resampling.NEAREST).save(buffer, format="PNG")
    (result,) = classify(handler, [buffer.getvalue()])
    (from_grid,) = classify(handler, [images[0].tolist()])
    assert result["digit"] == from_grid["digit"] == labels[0]


def test_committed_samples_match_readme_label(handler: Any) -> None:
    json_result, png_result = classify(
        handler,
        [(EXAMPLE_DIR / "sample.json").read_bytes(), (EXAMPLE_DIR / "sample.png").read_bytes()],
    )
    assert json_result["digit"] == png_result["digit"] == SAMPLE_LABEL


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ([[1.0] * 5] * 5, r"expected an 8x8 array of numbers, got shape \(5, 5\)"),
        ([[1] * 8] * 7 + [[1] * 3], "ragged nested list"),
        ([["a"] * 8] * 8, "non-numeric values"),
        (["one", "two"], "non-numeric values"),
        ([[20] * 8] * 8, "between 0 and 16"),
        ({"pixels": [[0] * 8] * 8}, 'a JSON object with a "data" key'),
        (b"", "empty request body"),
        (b"   ", "empty request body"),
        (bytes(np.random.default_rng(0).integers(1, 256, 64, dtype=np.uint8)), "readable image"),
        (b"[[0, 1], oops", "not valid JSON"),
        (None, "empty request body"),
        (7, "unsupported payload type int"),
    ],
    ids=[
        "5x5",
        "ragged",
        "strings-8x8",
        "strings",
        "out-of-range",
        "object-without-data",
        "empty-bytes",
        "blank-bytes",
        "random-bytes",
        "broken-json",
        "no-body",
        "number",
    ],
)
def test_bad_input_names_the_problem(
    handler: Any, heldout: tuple[np.ndarray, np.ndarray], payload: Any, problem: str
) -> None:
    context = BatchContext()
    good = heldout[0][0].tolist()
    bad_result, good_result = classify(handler, [payload, good], context)
    assert context.statuses == {0: 400}
    assert bad_result["code"] == 400
    assert re.search(problem, bad_result["message"])
    # The valid request of the same batch is still answered.
    assert good_result["digit"] == int(heldout[1][0])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_handler_runs_on_gpu_id(
    artifacts: tuple[Path, dict[str, Any]], handler: Any, heldout: tuple[np.ndarray, np.ndarray]
) -> None:
    gpu_handler = load_example_module("handler").DigitsHandler()
    gpu_handler.initialize(make_context(artifacts[0], gpu_id=0))
    assert gpu_handler.device == torch.device("cuda:0")
    grids = [image.tolist() for image in heldout[0][:BATCH_SIZE]]
    gpu_digits = [result["digit"] for result in classify(gpu_handler, grids)]
    assert gpu_digits == [result["digit"] for result in classify(handler, grids)]
