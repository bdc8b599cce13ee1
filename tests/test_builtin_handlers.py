"""The built-in handlers through the real server, with tiny TorchScript models built here.

Each answer is compared with the same model called in-process on the same preprocessing, and
malformed requests must come back as 400 with a message naming the problem.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import inspect
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions
from modelserve_handlers import BUILTIN_HANDLERS
from modelserve_handlers.vision import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    IMAGENET_TRANSFORM,
    TO_TENSOR,
    center_crop,
    resize_shorter_side,
)
from PIL import Image
from support import RunningServer, start_server
from torch import nn

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*is deprecated:FutureWarning"),  # torch.jit
    pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.onnx"),
    pytest.mark.filterwarnings("ignore:.*legacy TorchScript-based ONNX export:DeprecationWarning"),
]

CLASS_NAMES = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen", "ibis", "jay"]
ANIMALS = {"1": "cat", "2": "dog", "3": "bird"}
SENTIMENTS = {"0": "negative", "1": "neutral", "2": "positive"}
VOCAB = {
    "<pad>": 0,
    "<unk>": 1,
    "good": 2,
    "great": 3,
    "bad": 4,
    "movie": 5,
    "acting": 6,
    "cafe": 7,
}


class TinyClassifier(nn.Module):
    """3x224x224 images → 10 class scores."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 8, stride=8), nn.ReLU())
        self.head = nn.Linear(6 * 28 * 28, len(CLASS_NAMES))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images).flatten(1))


class TinySegmenter(nn.Module):
    """torchvision's segmentation output: {"out": N x 4 classes x 28 x 28}."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 8, stride=8)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.conv(images)}


class TinyDetector(nn.Module):
    """torchvision's detection output; box 1 scores the brightness, box 2 its complement."""

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        detections: list[dict[str, torch.Tensor]] = []
        for image in images:
            height, width = float(image.shape[1]), float(image.shape[2])
            brightness = image.mean()
            boxes = torch.tensor(
                [[0.0, 0.0, width / 2, height / 2], [1.0, 2.0, 3.0, 4.0], [5.0, 5.0, width, height]]
            )
            scores = torch.stack([brightness, 1 - brightness, torch.tensor(0.9)])
            detections.append({"boxes": boxes, "labels": torch.tensor([1, 2, 3]), "scores": scores})
        return detections


class TinyTextClassifier(nn.Module):
    """Padded token ids → 3 sentiment scores; the bag ignores the padding id."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(len(VOCAB), 8, mode="mean", padding_idx=0)
        self.head = nn.Linear(8, len(SENTIMENTS))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(tokens))


CLASS_MAPPING = {"index_to_name.json": {str(i): name for i, name in enumerate(CLASS_NAMES)}}
# model name → (built-in handler, model class, serialized file suffix, extra files)
MODELS: dict[str, tuple[str, type[nn.Module], str, dict[str, Any]]] = {
    "classifier": ("image_classifier", TinyClassifier, ".pt", CLASS_MAPPING),
    # the same weights exported to ONNX: served through the ONNX Runtime backend
    "onnx_classifier": ("image_classifier", TinyClassifier, ".onnx", CLASS_MAPPING),
    "segmenter": ("image_segmenter", TinySegmenter, ".pt", {}),
    "detector": ("object_detector", TinyDetector, ".pt", {"index_to_name.json": ANIMALS}),
    "text": (
        "text_classifier",
        TinyTextClassifier,
        ".pt",
        {"vocab.json": VOCAB, "index_to_name.json": SENTIMENTS},
    ),
}


def _archive(build: Path, store: Path, name: str) -> None:
    handler, model_class, suffix, extras = MODELS[name]
    torch.manual_seed(0)  # random weights, the same on every run
    model = model_class().eval()
    serialized = build / f"{name}{suffix}"
    if suffix == ".onnx":
        example = torch.zeros(1, 3, 224, 224)
        dynamic_batch = {"images": {0: "batch"}}
        # The TorchScript-based exporter: the dynamo one needs onnxscript, not a dependency.
        torch.onnx.export(
            model,
            (example,),
            str(serialized),
            input_names=["images"],
            dynamic_axes=dynamic_batch,
            dynamo=False,
        )
    else:
        torch.jit.script(model).save(str(serialized))
    (build / name).mkdir()
    for file_name, content in extras.items():
        (build / name / file_name).write_text(json.dumps(content))
    build_archive(
        ArchiveOptions(
            model_name=name,
            version="1.0",
            serialized_file=str(serialized),
            handler=handler,
            extra_files=[str(build / name / file_name) for file_name in extras],
            export_path=store,
        )
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    build = tmp_path_factory.mktemp("builtin_models")
    store = tmp_path_factory.mktemp("builtin_store")
    for name in MODELS:
        _archive(build, store, name)
    server = start_server(tmp_path_factory.mktemp("builtin_server"), store)

    async def register_all() -> list[httpx.Response]:
        params = {"initial_workers": 1, "batch_size": 4, "max_batch_delay": 20}
        async with httpx.AsyncClient(base_url=server.management, timeout=120) as client:
            return await asyncio.gather(
                *(client.post("/models", params={"url": f"{n}.mar", **params}) for n in MODELS)
            )

    for response in asyncio.run(register_all()):
        assert response.status_code == 200, response.text + server.log()
    yield server, build
    server.stop()


def _model(build: Path, name: str) -> torch.jit.ScriptModule:
    return torch.jit.load(str(build / f"{name}.pt")).eval()


def _png(seed: int, size: tuple[int, int] = (300, 260), mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    channels = {"RGB": (3,), "L": ()}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], *channels), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, "PNG")
    return buffer.getvalue()


def _solid_png(value: int, size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (value, value, value)).save(buffer, "PNG")
    return buffer.getvalue()


def _predict(server: RunningServer, model: str, **request: Any) -> httpx.Response:
    return httpx.post(f"{server.inference}/predictions/{model}", timeout=60, **request)


def _top5_in_process(build: Path, image: bytes) -> list[tuple[str, float]]:
    batch = IMAGENET_TRANSFORM(Image.open(io.BytesIO(image))).unsqueeze(0)
    with torch.inference_mode():
        probabilities = torch.softmax(_model(build, "classifier")(batch), dim=1)[0]
    top = torch.topk(probabilities, 5)
    return [
        (CLASS_NAMES[i], p) for i, p in zip(top.indices.tolist(), top.values.tolist(), strict=True)
    ]


def _assert_top5(answer: dict[str, float], expected: list[tuple[str, float]]) -> None:
    assert [label for label, _ in answer.items()] == [label for label, _ in expected]
    assert list(answer.values()) == pytest.approx([p for _, p in expected], abs=1e-6)


# ----- in-process


@pytest.mark.parametrize("name", BUILTIN_HANDLERS)
def test_each_builtin_module_defines_exactly_one_handler_class(name: str) -> None:
    module = importlib.import_module(f"modelserve_handlers.{name}")
    classes = [
        member
        for member in vars(module).values()
        if inspect.isclass(member) and member.__module__ == module.__name__
    ]
    assert len(classes) == 1 and callable(classes[0].handle)


def test_resize_and_center_crop_follow_torchvision_geometry() -> None:
    landscape = Image.new("RGB", (300, 260))
    assert resize_shorter_side(landscape, 256).size == (295, 256)  # int(256 * 300 / 260)
    assert resize_shorter_side(Image.new("RGB", (260, 300)), 256).size == (256, 295)
    square = Image.new("RGB", (256, 256))
    assert resize_shorter_side(square, 256) is square
    pixels = np.random.default_rng(0).integers(0, 256, (256, 295, 3), dtype=np.uint8)
    cropped = center_crop(Image.fromarray(pixels), 224)
    # torchvision: top = round((256 - 224) / 2) = 16, left = round((295 - 224) / 2) = 36
    assert np.array_equal(np.asarray(cropped), pixels[16:240, 36:260])


def test_imagenet_transform_scales_and_normalizes_every_channel() -> None:
    tensor = IMAGENET_TRANSFORM(Image.new("RGB", (20, 10), (255, 0, 128)))
    assert tensor.shape == (3, 224, 224) and tensor.dtype == torch.float32
    for channel, value in enumerate((255, 0, 128)):
        expected = (value / 255 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        assert torch.allclose(tensor[channel], torch.tensor(expected), atol=1e-6)
    gray = TO_TENSOR(Image.new("L", (5, 4), 51))
    assert gray.shape == (3, 4, 5) and torch.allclose(gray, torch.tensor(0.2))


# ----- through the server


def test_image_classifier_top5_equals_the_model_in_process(served) -> None:
    server, build = served
    image = _png(seed=1)
    expected = _top5_in_process(build, image)
    tensor = IMAGENET_TRANSFORM(Image.open(io.BytesIO(image))).tolist()
    encoded = base64.b64encode(image).decode()
    forms = [
        {"content": image, "headers": {"content-type": "image/png"}},
        {"files": {"data": ("image.png", image, "image/png")}},
        {"content": encoded, "headers": {"content-type": "text/plain"}},
        {"json": encoded},
        {"json": tensor},
    ]
    for request in forms:
        response = _predict(server, "classifier", **request)
        assert response.status_code == 200, response.text
        _assert_top5(response.json(), expected)


@pytest.mark.parametrize("model", ["classifier", "onnx_classifier"])
def test_image_classifier_batches_concurrent_requests(served, model: str) -> None:
    server, build = served
    images = [_png(seed, size=(240 + 10 * seed, 250)) for seed in range(8)]

    async def classify_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.inference, timeout=60) as client:
            return await asyncio.gather(
                *(client.post(f"/predictions/{model}", content=image) for image in images)
            )

    for image, response in zip(images, asyncio.run(classify_all()), strict=True):
        assert response.status_code == 200, response.text
        _assert_top5(response.json(), _top5_in_process(build, image))


def test_image_segmenter_answers_class_and_probability_per_pixel(served) -> None:
    server, build = served
    image = _png(seed=2, mode="L")  # grayscale: converted to RGB for the model
    response = _predict(server, "segmenter", content=image)
    assert response.status_code == 200, response.text
    answer = np.asarray(response.json())
    assert answer.shape == (28, 28, 2)
    batch = IMAGENET_TRANSFORM(Image.open(io.BytesIO(image))).unsqueeze(0)
    with torch.inference_mode():
        best = torch.softmax(_model(build, "segmenter")(batch)["out"], dim=1).max(dim=1)
    assert np.array_equal(answer[..., 0], best.indices[0].numpy())
    assert np.allclose(answer[..., 1], best.values[0].numpy(), atol=1e-6)


@pytest.mark.parametrize(
    ("brightness", "kept"), [(179, ["cat", "bird"]), (51, ["dog", "bird"])], ids=["light", "dark"]
)
def test_object_detector_keeps_confident_boxes(served, brightness: int, kept: list[str]) -> None:
    server, build = served
    image = _solid_png(brightness, size=(40, 30))
    response = _predict(server, "detector", content=image)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [next(iter(detection)) for detection in answer] == kept
    with torch.inference_mode():
        (detections,) = _model(build, "detector")(TO_TENSOR(Image.open(io.BytesIO(image)))[None])
    expected = [
        {ANIMALS[str(label)]: box, "score": score}
        for box, label, score in zip(
            detections["boxes"].tolist(),
            detections["labels"].tolist(),
            detections["scores"].tolist(),
            strict=True,
        )
        if score >= 0.5
    ]
    assert answer == expected
    assert answer[-1] == {"bird": [5.0, 5.0, 40.0, 30.0], "score": pytest.approx(0.9)}


def test_text_classifier_cleans_tokenizes_and_pads(served) -> None:
    server, build = served
    model = _model(build, "text")
    cases = {
        "<b>Great</b> movie, GOOD acting!": [3, 5, 2, 6],
        "Café": [7],  # accents go
        "zzz bad": [1, 4],  # unknown words are <unk>
    }
    for text, token_ids in cases.items():
        with torch.inference_mode():
            probabilities = torch.softmax(model(torch.tensor([token_ids])), dim=1)[0].tolist()
        expected = dict(zip(SENTIMENTS.values(), probabilities, strict=True))
        for request in ({"content": text.encode()}, {"json": text}):
            response = _predict(server, "text", **request)
            assert response.status_code == 200, response.text
            assert list(response.json()) == list(expected)
            assert list(response.json().values()) == pytest.approx(list(expected.values()))


BAD_REQUESTS = [
    ("classifier", {"content": b"definitely not an image"}, "could not decode the image"),
    ("classifier", {"content": _png(seed=3)[:100]}, "could not decode the image"),
    ("classifier", {"content": b""}, "empty request"),
    ("classifier", {"json": [[0.5] * 4] * 4}, "wrong tensor shape: expected 3x224x224, got 4x4"),
    ("classifier", {"json": [[[1.0, 2.0], [3.0]]]}, "regular shape"),
    ("classifier", {"json": {"image": "x"}}, "got a JSON object"),
    ("detector", {"json": [1.0, 2.0]}, "expected channels x height x width, got 2"),
    ("text", {"content": b"\xff\xfe\xfa"}, "not valid UTF-8"),
    ("text", {"content": b""}, "empty request"),
    ("text", {"json": {"text": "good"}}, "expected UTF-8 text or a JSON string, got a JSON object"),
]


@pytest.mark.parametrize(("model", "request_kwargs", "message"), BAD_REQUESTS)
def test_bad_input_is_a_400_naming_the_problem(
    served, model: str, request_kwargs: dict[str, Any], message: str
) -> None:
    server, _ = served
    response = _predict(server, model, **request_kwargs)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 400 and body["type"] == "BadInputError"
    assert message in body["message"]


def test_explanations_are_not_implemented_by_the_builtins(served) -> None:
    server, _ = served
    response = httpx.post(f"{server.inference}/explanations/classifier", content=_png(seed=4))
    assert response.status_code == 501
    assert "ImageClassifier does not explain its predictions" in response.json()["message"]
