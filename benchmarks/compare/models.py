"""The three benchmarked models, each a handler file plus TorchScript model, and their limit.

- ``noop``: ``handlers/noop.py`` answering ``ok``, no model; what is left is server overhead.
- ``digits``: the trained ``examples/digits`` CNN (8x8 inputs), a tiny model.
- ``mlp``: a tiny MLP 64-64-10 trained in a second on the same digits (8x8 inputs), the model
  every compared server meets on, Triton, Ray Serve and BentoML included.
- ``resnet``: a ResNet-18-sized CNN (11.7M parameters, 3x224x224 inputs) with random weights,
  a model whose compute dominates a request.

The classifiers are saved wrapped so that they take each sample flat (``N x features``) or shaped,
and are served by one handler, ``handlers/tensor_argmax.py``, which decodes raw float32 bodies
and answers the predicted class as text. Handler files import only torch and the standard
library, so the very same file runs in TorchServe 0.12 and in modelserve.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from loadtest import BENCH_DIR, DIGITS_DIR
from loadtest.archives import NOOP_HANDLER, digits_artifacts, load_module
from loadtest.in_process import handler_context, measure
from torch import nn

ARGMAX_HANDLER = BENCH_DIR / "handlers" / "tensor_argmax.py"
RAW_CONTENT_TYPE = "application/octet-stream"
DIGITS_SHAPE = (1, 8, 8)
MLP_HIDDEN = 64
MLP_CLASSES = 10
MLP_STEPS = 300  # full-batch Adam steps: ~97 % held-out accuracy in about a second
MLP_LEARNING_RATE = 0.01
RESNET_SHAPE = (3, 224, 224)
RESNET_CLASSES = 1000
RESNET_WIDTH = 64
SEED = 0
# Random weights leave the winning logit close to the runner-up for some inputs; the answer
# check must not flip with batch composition or thread count, so insist on a clear margin.
MIN_LOGIT_MARGIN = 1e-2


@dataclass(frozen=True)
class ModelFiles:
    """What every server needs to serve one model and to check its answers."""

    name: str  # "noop" | "digits" | "mlp" | "resnet"
    handler: Path  # TorchServe-contract handler file: module-level handle(data, context)
    serialized: Path | None  # TorchScript model, or None for noop
    body: bytes  # one request body
    content_type: str
    expected: bytes  # the handler's answer to ``body``
    # One request's tensor shape (the model also takes it flattened), None for noop.
    input_shape: tuple[int, ...] | None = None
    expected_class: int | None = None  # the predicted class index, None for noop

    def answer_ok(self, body: bytes) -> bool:
        """Whether a response body is the right answer to ``self.body``."""
        return body.strip() == self.expected


class FlatInput(nn.Module):
    """Reshapes each sample to ``shape`` before the wrapped network, so raw bodies need no
    per-server decoding logic beyond ``frombuffer``; shaped input passes through as is."""

    def __init__(self, net: nn.Module, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.net = net
        self.channels, self.height, self.width = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``N x features`` (or ``N x C x H x W``) samples to ``N x classes`` logits."""
        return self.net(x.reshape(x.shape[0], self.channels, self.height, self.width))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection, ResNet's basic block."""

    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(outputs),
            nn.ReLU(inplace=True),
            nn.Conv2d(outputs, outputs, 3, padding=1, bias=False),
            nn.BatchNorm2d(outputs),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(
                nn.Conv2d(inputs, outputs, 1, stride=stride, bias=False),
                nn.BatchNorm2d(outputs),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output: ``relu(body(x) + shortcut(x))``."""
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18's layout (basic blocks 2-2-2-2, 64..512 channels), 11.7M parameters.

    ``width`` scales the channels (``width``..8 ``width``): the GPU check's CPU smoke pass
    runs the same network in miniature.
    """

    def __init__(self, classes: int = RESNET_CLASSES, width: int = RESNET_WIDTH) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        ]
        channels = width
        for scale, stride in ((1, 1), (2, 2), (4, 2), (8, 2)):
            outputs = width * scale
            layers += [BasicBlock(channels, outputs, stride), BasicBlock(outputs, outputs, 1)]
            channels = outputs
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``N x 3 x 224 x 224`` images to ``N x classes`` logits."""
        return self.layers(x)


@contextmanager
def quiet_torchscript() -> Iterator[None]:
    """Silence torch's TorchScript deprecation notices: TorchScript is what both servers'
    handler contract loads, so the notice has nothing actionable for the benchmark."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        yield


def predict(model: torch.jit.ScriptModule, sample: torch.Tensor) -> tuple[int, float]:
    """The class ``model`` picks for one flat sample and its lead over the runner-up logit."""
    with torch.inference_mode():
        logits = model(sample.reshape(1, -1))[0]
    top = logits.topk(2).values
    return int(logits.argmax()), float(top[0] - top[1])


def save_flat(net: nn.Module, shape: tuple[int, int, int], path: Path) -> torch.jit.ScriptModule:
    """Script ``net`` wrapped in :class:`FlatInput` and save it to ``path``."""
    with quiet_torchscript():
        scripted = torch.jit.script(FlatInput(net, shape).eval())
        scripted.save(str(path))
    return scripted


def prepare_noop() -> ModelFiles:
    """The no-op handler with an empty JSON object as its request."""
    return ModelFiles("noop", NOOP_HANDLER, None, b"{}", "application/json", b"ok")


def digits_split() -> tuple[Any, Any, torch.Tensor, Any]:
    """The digits example's seeded split, images already in the 0..1 ``N x 1 x 8 x 8`` scale
    its models take: ``(train inputs, train labels, held-out inputs, held-out labels)``."""
    train = load_module(DIGITS_DIR / "train.py", "digits_train")
    train_images, train_labels, images, labels = train.load_split()
    return train.to_model_input(train_images), train_labels, train.to_model_input(images), labels


def first_correct(
    model: torch.jit.ScriptModule, serialized: Path, name: str, inputs: torch.Tensor, labels: Any
) -> ModelFiles:
    """The model's files for the first held-out image it classifies correctly."""
    for sample, label in zip(inputs, labels, strict=True):
        predicted, _ = predict(model, sample)
        if predicted == label:
            return digits_files(name, serialized, sample, predicted)
    raise RuntimeError(f"the {name} model classifies no held-out image correctly")


def prepare_digits(models_dir: Path) -> ModelFiles:
    """The trained digits CNN and the first held-out image it classifies correctly."""
    artifacts = digits_artifacts(models_dir / "digits-training")
    with quiet_torchscript():
        net = torch.jit.load(str(artifacts / "digits.pt"), map_location="cpu")
    model = save_flat(net, DIGITS_SHAPE, models_dir / "digits.pt")
    _, _, inputs, labels = digits_split()
    return first_correct(model, models_dir / "digits.pt", "digits", inputs, labels)


def prepare_mlp(models_dir: Path) -> ModelFiles:
    """A 64-64-10 MLP trained with a fixed seed on the digits, and the first held-out image it
    classifies correctly: a model so small that a server's own cost per request dominates."""
    train_inputs, train_labels, inputs, labels = digits_split()
    torch.manual_seed(SEED)
    net = nn.Sequential(
        nn.Flatten(),
        nn.Linear(DIGITS_SHAPE[1] * DIGITS_SHAPE[2], MLP_HIDDEN),
        nn.ReLU(),
        nn.Linear(MLP_HIDDEN, MLP_CLASSES),
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=MLP_LEARNING_RATE)
    targets = torch.from_numpy(train_labels)
    for _ in range(MLP_STEPS):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(train_inputs), targets).backward()
        optimizer.step()
    model = save_flat(net, DIGITS_SHAPE, models_dir / "mlp.pt")
    return first_correct(model, models_dir / "mlp.pt", "mlp", inputs, labels)


def digits_files(name: str, serialized: Path, sample: torch.Tensor, predicted: int) -> ModelFiles:
    """The files of a model of 8x8 digits for one request carrying ``sample``."""
    return ModelFiles(
        name=name,
        handler=ARGMAX_HANDLER,
        serialized=serialized,
        body=sample.contiguous().numpy().tobytes(),
        content_type=RAW_CONTENT_TYPE,
        expected=str(predicted).encode(),
        input_shape=DIGITS_SHAPE,
        expected_class=predicted,
    )


def prepare_resnet(
    models_dir: Path, shape: tuple[int, int, int] = RESNET_SHAPE, width: int = RESNET_WIDTH
) -> ModelFiles:
    """A seeded random ResNet-18 traced at batch 1, and a random image it classifies clearly;
    ``shape`` and ``width`` make it smaller (see :class:`ResNet18`)."""
    torch.manual_seed(SEED)
    net = ResNet18(width=width).eval()
    with quiet_torchscript(), torch.no_grad():
        traced = torch.jit.trace(net, torch.randn(1, *shape))
    model = save_flat(traced, shape, models_dir / "resnet.pt")
    generator = torch.Generator().manual_seed(SEED)
    while True:
        sample = torch.randn(shape, generator=generator).flatten()
        predicted, margin = predict(model, sample)
        if margin >= MIN_LOGIT_MARGIN:
            break
    return ModelFiles(
        name="resnet",
        handler=ARGMAX_HANDLER,
        serialized=models_dir / "resnet.pt",
        body=sample.numpy().tobytes(),
        content_type=RAW_CONTENT_TYPE,
        expected=str(predicted).encode(),
        input_shape=shape,
        expected_class=predicted,
    )


def prepare_models(workdir: Path) -> dict[str, ModelFiles]:
    """Build every model under ``workdir/models`` and return their files by name."""
    models_dir = workdir / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    files = [
        prepare_noop(),
        prepare_digits(models_dir),
        prepare_mlp(models_dir),
        prepare_resnet(models_dir),
    ]
    return {model.name: model for model in files}


def worker_payload(files: ModelFiles) -> Any:
    """The request body as a worker hands it to the handler: JSON parsed, anything else bytes."""
    if files.content_type == "application/json":
        return json.loads(files.body)
    return bytearray(files.body)


def in_process_limit(
    files: ModelFiles, batch_size: int, duration_s: float, gpu_id: int | None = None
) -> dict[str, Any]:
    """Call the model's handler in this process, as a worker would, on batches of
    ``batch_size`` copies of its body back to back for ``duration_s`` seconds; on GPU
    ``gpu_id`` when given, as a worker placed there.

    Returns ``calls_per_s``, ``requests_per_s`` and ``p50_ms``/``p90_ms``/``p99_ms`` per call
    (plus ``model``, ``batch_size`` and ``calls``).
    """
    module = load_module(files.handler, f"bench_{files.name}_handler")
    serialized = files.serialized
    model_dir = serialized.parent if serialized else files.handler.parent
    serialized_name = serialized.name if serialized else None
    context = handler_context(model_dir, files.name, serialized_name, gpu_id)
    module.handle(None, context)  # a function handler's load-time call
    batch = [{"body": worker_payload(files)} for _ in range(batch_size)]
    answers = module.handle(batch, context)
    # A worker sends bytes as they are and anything else as text.
    encoded = [a if isinstance(a, bytes) else str(a).encode() for a in answers]
    if any(answer != files.expected for answer in encoded):
        raise RuntimeError(f"{files.name}: the handler answered {encoded}, not {files.expected!r}")
    return measure(files.name, module.handle, batch, context, duration_s).as_dict()
