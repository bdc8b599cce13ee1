"""Image decoding and torchvision-equivalent transforms, with Pillow and numpy only.

``ImageTransform`` reproduces ``Resize(n)`` (shorter side, bilinear), ``CenterCrop(n)``,
``ToTensor()`` and ``Normalize(mean, std)`` on Pillow images, so the built-in vision handlers
work without torchvision. Decoding failures become ``BadInputError`` naming the problem.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from modelserve_handlers.errors import BadInputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_RESIZE = 256
IMAGENET_CROP = 224
IMAGENET_TENSOR_SHAPE = (3, IMAGENET_CROP, IMAGENET_CROP)
PIXEL_MAX = 255.0


def resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    """Scale so the shorter side is ``size``, keeping the aspect ratio (torchvision's rounding)."""
    width, height = image.size
    short, long = sorted((width, height))
    if short == size:
        return image
    new_long = int(size * long / short)
    new_size = (size, new_long) if width <= height else (new_long, size)
    return image.resize(new_size, Image.Resampling.BILINEAR)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """The central ``size``x``size`` square; zero padding where the image is smaller."""
    width, height = image.size
    left = round((width - size) / 2.0)
    top = round((height - size) / 2.0)
    return image.crop((left, top, left + size, top + size))


@dataclass(frozen=True)
class ImageTransform:
    """Image → float32 CxHxW tensor: RGB, optional resize and crop, scale to 0..1, normalize."""

    resize: int | None = None
    crop: int | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None

    def __call__(self, image: Image.Image) -> torch.Tensor:
        # Grayscale, palette and RGBA images all reach a three-channel model this way.
        image = image.convert("RGB")
        if self.resize is not None:
            image = resize_shorter_side(image, self.resize)
        if self.crop is not None:
            image = center_crop(image, self.crop)
        pixels = np.asarray(image, dtype=np.float32) / np.float32(PIXEL_MAX)
        if self.mean is not None and self.std is not None:
            pixels = (pixels - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))


IMAGENET_TRANSFORM = ImageTransform(IMAGENET_RESIZE, IMAGENET_CROP, IMAGENET_MEAN, IMAGENET_STD)
TO_TENSOR = ImageTransform()


def decode_base64(text: str) -> bytes:
    """The bytes of a base64-encoded image."""
    try:
        return base64.b64decode(text)
    except ValueError as exc:  # binascii.Error, or non-ASCII text
        raise BadInputError(f"text payload is not valid base64 image data: {exc}") from None


def decode_image(raw: bytes | bytearray) -> Image.Image:
    """A fully decoded Pillow image."""
    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
    except Image.DecompressionBombError as exc:
        raise BadInputError(f"image rejected as too large: {exc}") from None
    except UnidentifiedImageError:
        raise BadInputError(
            "could not decode the image: not a format Pillow reads (PNG, JPEG, GIF, BMP, "
            "TIFF, WebP …); send image bytes, base64 text or a tensor as a nested list"
        ) from None
    # Pillow's decoders report corrupt or truncated data with any of these.
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise BadInputError(f"could not decode the image: {exc}") from None
    return image


def tensor_from_nested_list(value: list[Any], shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """A float32 image tensor from a nested list: CxHxW, and exactly ``shape`` when given."""
    try:
        array = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise BadInputError(
            f"a tensor payload must be a nested list of numbers with a regular shape: {exc}"
        ) from None
    expected = "x".join(map(str, shape)) if shape else "channels x height x width"
    if array.ndim != 3 or (shape is not None and array.shape != shape):
        got = "x".join(map(str, array.shape)) or "a scalar"
        raise BadInputError(f"wrong tensor shape: expected {expected}, got {got}")
    return torch.from_numpy(array)


def stack_images(images: list[torch.Tensor]) -> torch.Tensor:
    """One NxCxHxW batch; every image of a batch must have the same shape."""
    shapes = {tuple(image.shape) for image in images}
    if len(shapes) > 1:
        listed = ", ".join("x".join(map(str, shape)) for shape in sorted(shapes))
        raise BadInputError(
            f"the images of one batch must have the same shape after preprocessing, got {listed}"
        )
    return torch.stack(images)
