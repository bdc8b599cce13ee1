"""Train a small CNN on scikit-learn's bundled 8x8 digits and export it as TorchScript.

Artifacts written to the output directory:

- ``digits.pt``: the TorchScript model (input ``N x 1 x 8 x 8`` in 0..1, output logits over 0..9)
- ``index_to_name.json``: class index to label name
- ``heldout.npz``: the held-out images (``images``, float32 ``N x 8 x 8`` in sklearn's 0..16
  scale) and their ``labels``
- ``metrics.json``: held-out accuracy, held-out size and training time

Usage: ``python examples/digits/train.py [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

SEED = 0
HELDOUT_FRACTION = 0.2
EPOCHS = 30
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
MIN_HELDOUT_ACCURACY = 0.95
# sklearn's digits count set pixels in 4x4 blocks of a 32x32 bitmap, hence 0..16.
PIXEL_MAX = 16.0
DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "build"


class DigitsNet(nn.Module):
    """Two 3x3 convolutions, one 2x2 pooling and a small classifier head."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 64),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(64, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a batch of ``N x 1 x 8 x 8`` images in 0..1 to ``N x 10`` logits."""
        return self.classifier(self.features(x))


def to_model_input(images: np.ndarray) -> torch.Tensor:
    """Turn ``N x 8 x 8`` images in the 0..16 scale into the model's ``N x 1 x 8 x 8`` input."""
    return torch.from_numpy(np.asarray(images, dtype=np.float32) / np.float32(PIXEL_MAX))[:, None]


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(train_images, train_labels, heldout_images, heldout_labels)``.

    The split is stratified and seeded, so every run holds out the same images.
    """
    digits = load_digits()
    images = digits.images.astype(np.float32)
    labels = digits.target.astype(np.int64)
    train_x, heldout_x, train_y, heldout_y = train_test_split(
        images, labels, test_size=HELDOUT_FRACTION, random_state=SEED, stratify=labels
    )
    return train_x, train_y, heldout_x, heldout_y


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of ``images`` (0..16 scale) that ``model`` classifies as ``labels``."""
    with torch.inference_mode():
        predicted = model(to_model_input(images)).argmax(dim=1).numpy()
    return float((predicted == labels).mean())


def fit(train_x: np.ndarray, train_y: np.ndarray) -> DigitsNet:
    """Train a fresh :class:`DigitsNet` with a fixed seed and return it in eval mode."""
    torch.manual_seed(SEED)
    model = DigitsNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    inputs = to_model_input(train_x)
    targets = torch.from_numpy(train_y)
    # A seeded generator keeps the shuffling order identical from run to run.
    shuffler = torch.Generator().manual_seed(SEED)
    for epoch in range(1, EPOCHS + 1):
        model.train()
        epoch_loss = 0.0
        for batch in torch.randperm(len(inputs), generator=shuffler).split(BATCH_SIZE):
            optimizer.zero_grad()
            loss = loss_fn(model(inputs[batch]), targets[batch])
            loss.backward()
            optimizer.step()
            epoch_loss += loss.item() * len(batch)
        model.eval()
        print(
            f"epoch {epoch:2d}/{EPOCHS}  loss {epoch_loss / len(inputs):.4f}  "
            f"train accuracy {accuracy(model, train_x, train_y):.4f}",
            flush=True,
        )
    return model


def train(out_dir: Path | str = DEFAULT_OUT_DIR) -> dict[str, float | int]:
    """Train, export every artifact into ``out_dir`` and return the metrics.

    Raises ``RuntimeError`` if the held-out accuracy falls below ``MIN_HELDOUT_ACCURACY``;
    nothing is exported in that case.
    """
    out = Path(out_dir)
    train_x, train_y, heldout_x, heldout_y = load_split()
    started = time.perf_counter()
    model = fit(train_x, train_y)
    train_seconds = time.perf_counter() - started

    with warnings.catch_warnings():
        # TorchScript is what TorchServe-style handlers load (torch.jit.load); torch's
        # deprecation notice for it says nothing actionable for this example.
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script", category=FutureWarning)
        scripted = torch.jit.script(model)
    # Measure the exported model, the one the handler will serve, not the eager original.
    heldout_accuracy = accuracy(scripted, heldout_x, heldout_y)
    if heldout_accuracy < MIN_HELDOUT_ACCURACY:
        raise RuntimeError(
            f"held-out accuracy {heldout_accuracy:.4f} is below the required "
            f"{MIN_HELDOUT_ACCURACY}; refusing to export the model"
        )

    out.mkdir(parents=True, exist_ok=True)
    scripted.save(str(out / "digits.pt"))
    index_to_name = {str(digit): str(digit) for digit in range(10)}
    (out / "index_to_name.json").write_text(json.dumps(index_to_name, indent=2) + "\n")
    np.savez(out / "heldout.npz", images=heldout_x, labels=heldout_y)
    metrics: dict[str, float | int] = {
        "heldout_accuracy": heldout_accuracy,
        "n_heldout": len(heldout_y),
        "train_seconds": round(train_seconds, 3),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(
        f"held-out accuracy {heldout_accuracy:.4f} on {len(heldout_y)} images, "
        f"trained in {train_seconds:.1f} s; artifacts in {out}"
    )
    return metrics


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT_DIR,
        help=f"directory for the artifacts (default: {DEFAULT_OUT_DIR})",
    )
    train(parser.parse_args().out)


if __name__ == "__main__":
    main()
