"""TorchServe-style handler for the 8x8 digits TorchScript model.

Each request in a batch carries one digit, as any of:

- PNG or JPEG bytes: any size, grayscale or colour, dark ink on light paper or the reverse;
- an 8x8 JSON array of numbers in the 0..16 scale of scikit-learn's digits data (already
  parsed, or as JSON bytes/text);
- a JSON object ``{"data": <8x8 array>}``.

Each response is ``{"digit": int, "probabilities": {"0": p0, ..., "9": p9}}``.
A malformed request is answered 400 with ``{"code", "type", "message"}`` naming the problem,
set per request through the context, so the valid requests of its batch are still classified.

The module defines exactly one class, as TorchServe's class-handler loading requires.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

GRID_SIZE = 8
# The model's training data count set pixels in 4x4 blocks of a 32x32 bitmap: 0..16.
PIXEL_MAX = 16.0
PROBABILITY_DIGITS = 6


class DigitsHandler:
    """Classifies 8x8 digit images; every request of a batch goes through one forward pass."""

    def __init__(self) -> None:
        self.initialized = False
        self.model: torch.jit.ScriptModule | None = None
        self.device = torch.device("cpu")
        self.labels: list[str] = [str(digit) for digit in range(10)]

    def initialize(self, context: Any) -> None:
        """Load the TorchScript model named in the manifest, and the label names if packed."""
        model_dir = Path(context.system_properties["model_dir"])
        gpu_id = context.system_properties.get("gpu_id")
        if gpu_id is not None and torch.cuda.is_available():
            self.device = torch.device(f"cuda:{gpu_id}")
        serialized_file = model_dir / context.manifest["model"]["serializedFile"]
        with warnings.catch_warnings():
            # Recent torch flags TorchScript as deprecated; it is still the format this example
            # ships, so the notice would only add noise to every worker's log.
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load", category=FutureWarning)
            self.model = torch.jit.load(str(serialized_file), map_location=self.device)
        self.model.eval()
        mapping_file = model_dir / "index_to_name.json"
        if mapping_file.is_file():
            mapping = json.loads(mapping_file.read_text())
            self.labels = [mapping[str(index)] for index in range(len(mapping))]
        self.initialized = True

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[dict[str, Any]]:
        """Classify every request of the batch ``data``; one result per request, in order."""
        results: list[dict[str, Any]] = [{} for _ in data]
        grids: dict[int, np.ndarray] = {}
        for index, row in enumerate(data):
            try:
                grids[index] = self.payload_to_grid(self.request_payload(row))
            except ValueError as error:
                context.set_response_status(400, "Bad Request", index)
                results[index] = {"code": 400, "type": "BadRequest", "message": str(error)}
        if grids:
            probabilities = self.inference(self.preprocess(list(grids.values())))
            for index, answer in zip(grids, self.postprocess(probabilities), strict=True):
                results[index] = answer
        return results

    def preprocess(self, grids: list[np.ndarray]) -> torch.Tensor:
        """Stack grids into one ``N x 1 x 8 x 8`` tensor scaled to the model's 0..1 range."""
        stacked = torch.from_numpy(np.stack(grids)) / PIXEL_MAX
        return stacked.unsqueeze(1).to(self.device)

    def inference(self, batch: torch.Tensor) -> torch.Tensor:
        """Run the model once over the whole batch and return class probabilities on the CPU."""
        with torch.inference_mode():
            return torch.softmax(self.model(batch), dim=1).cpu()

    def postprocess(self, probabilities: torch.Tensor) -> list[dict[str, Any]]:
        """Render each row of probabilities as the response object."""
        return [
            {
                "digit": int(row.argmax()),
                "probabilities": {
                    label: round(float(p), PROBABILITY_DIGITS)
                    for label, p in zip(self.labels, row, strict=True)
                },
            }
            for row in probabilities
        ]

    @staticmethod
    def request_payload(row: dict[str, Any]) -> Any:
        """Pick the payload out of one request, as TorchServe's built-in handlers do."""
        payload = row.get("data") or row.get("body")
        if payload is None:
            # Bytes that came under other names (form fields) are not an empty request.
            arrived = ", ".join(
                f"{name!r} ({len(value)} bytes)"
                if isinstance(value, (bytes, bytearray, str))
                else f"{name!r} ({type(value).__name__})"
                for name, value in row.items()
                if name not in ("data", "body")
            )
            if arrived:
                raise ValueError(
                    "send an image or an 8x8 JSON array in the body or a 'data' form field; "
                    f"the request had only {arrived}"
                )
            raise ValueError("empty request body: send an image or an 8x8 JSON array")
        return payload

    def payload_to_grid(self, payload: Any) -> np.ndarray:
        """Convert any accepted payload into a float32 8x8 array in the 0..16 scale."""
        if isinstance(payload, (bytes, bytearray)):
            return self.bytes_to_grid(bytes(payload))
        if isinstance(payload, str):
            return self.bytes_to_grid(payload.encode())
        if isinstance(payload, dict):
            if "data" not in payload:
                raise ValueError(
                    f'expected a JSON object with a "data" key, got keys {sorted(payload)}'
                )
            return self.array_to_grid(payload["data"])
        if isinstance(payload, list):
            return self.array_to_grid(payload)
        raise ValueError(f"unsupported payload type {type(payload).__name__}")

    def bytes_to_grid(self, raw: bytes) -> np.ndarray:
        """Read raw bytes as JSON when they look like it, otherwise as an image."""
        text_start = raw.lstrip()[:1]
        if not text_start:
            raise ValueError("empty request body: send an image or an 8x8 JSON array")
        if text_start in (b"[", b"{"):
            return self.payload_to_grid(self.parse_json(raw))
        return self.image_to_grid(raw)

    @staticmethod
    def parse_json(text: bytes) -> Any:
        """Parse a JSON body, reporting a malformed one as ``ValueError`` with the reason."""
        try:
            return json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"request body is not valid JSON: {error}") from error

    @staticmethod
    def array_to_grid(value: Any) -> np.ndarray:
        """Validate a nested list as an 8x8 array of numbers in 0..16."""
        try:
            array = np.asarray(value)
        except ValueError as error:
            # numpy refuses ragged nested lists outright.
            raise ValueError(
                f"expected an 8x8 array of numbers, got a ragged nested list ({error})"
            ) from error
        if array.dtype.kind not in "iuf":
            raise ValueError(
                "expected an 8x8 array of numbers, got non-numeric values "
                f"(numpy dtype {array.dtype})"
            )
        if array.shape != (GRID_SIZE, GRID_SIZE):
            raise ValueError(f"expected an 8x8 array of numbers, got shape {array.shape}")
        grid = array.astype(np.float32)
        if not np.isfinite(grid).all() or grid.min() < 0 or grid.max() > PIXEL_MAX:
            raise ValueError(
                "expected pixel values between 0 and 16 (scikit-learn digits scale), "
                f"got values from {grid.min()} to {grid.max()}"
            )
        return grid

    def image_to_grid(self, raw: bytes) -> np.ndarray:
        """Decode an image and reduce it to bright ink on a dark 8x8 grid in 0..16."""
        try:
            image = Image.open(io.BytesIO(raw))
            image.load()
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(
                f"request body is neither JSON nor a readable image (PNG/JPEG): {error}"
            ) from error
        gray = self.flatten_transparency(image).convert("L")
        # Box filtering averages each block of source pixels, the same way the training data
        # were made from 32x32 bitmaps, so an upscaled digit comes back almost unchanged.
        small = gray.resize((GRID_SIZE, GRID_SIZE), Image.Resampling.BOX)
        pixels = np.asarray(small, dtype=np.float32)
        if pixels.mean() > 127.5:
            # A bright background means dark ink on paper; the model knows bright ink on dark.
            pixels = 255.0 - pixels
        return self.stretch_to_digit_scale(pixels)

    @staticmethod
    def flatten_transparency(image: Image.Image) -> Image.Image:
        """Lay an image with transparency over white, as it would look on a page."""
        if "A" not in image.getbands() and "transparency" not in image.info:
            return image
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba)

    @staticmethod
    def stretch_to_digit_scale(pixels: np.ndarray) -> np.ndarray:
        """Map the darkest pixel to 0 and the brightest to 16, like the training data.

        Stretching rather than a fixed 255 -> 16 division copes with grey paper and faint ink.
        """
        low, high = float(pixels.min()), float(pixels.max())
        if high == low:
            return np.zeros_like(pixels)
        return ((pixels - low) * (PIXEL_MAX / (high - low))).astype(np.float32)
