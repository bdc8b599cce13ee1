"""``VisionHandler``: the shared preprocessing of the built-in image handlers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from PIL import Image

from modelserve_handlers.base_handler import BaseHandler
from modelserve_handlers.errors import BadInputError
from modelserve_handlers.payload import payload_kind, required_payload
from modelserve_handlers.timing import timed
from modelserve_handlers.vision import (
    decode_base64,
    decode_image,
    stack_images,
    tensor_from_nested_list,
)

EXPECTED_PAYLOAD = "an image (bytes or base64 text) or a tensor as a nested list"


class VisionHandler(BaseHandler):
    """Each request is an image (bytes or base64 text), or a ready tensor as a nested list.

    Subclasses set ``image_processing`` (image → CxHxW tensor; a torchvision ``Compose``
    works too) and, when their model needs one size, ``tensor_shape`` for tensor payloads.
    """

    image_processing: Callable[[Image.Image], torch.Tensor]
    tensor_shape: tuple[int, ...] | None = None

    def initialize(self, context: Any) -> None:
        """Load the model; lift Pillow's pixel limit when the server is configured so."""
        super().initialize(context)
        if not context.system_properties.get("limit_max_image_pixels"):
            Image.MAX_IMAGE_PIXELS = None

    @timed
    def preprocess(self, data: list[dict[str, Any]]) -> torch.Tensor:
        """Decode every request and stack them into one NxCxHxW batch on the device."""
        images = [self.image_tensor(required_payload(row, EXPECTED_PAYLOAD)) for row in data]
        return stack_images(images).to(self.device)

    def image_tensor(self, payload: Any) -> torch.Tensor:
        """One request's payload as an image tensor."""
        if isinstance(payload, str):
            payload = decode_base64(payload)
        if isinstance(payload, bytes | bytearray):
            return self.image_processing(decode_image(payload))
        if isinstance(payload, list):
            return tensor_from_nested_list(payload, self.tensor_shape)
        raise BadInputError(f"expected {EXPECTED_PAYLOAD}, got {payload_kind(payload)}")
