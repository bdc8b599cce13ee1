"""Built-in ``image_segmenter``: ImageNet preprocessing, the best class of every pixel."""

from __future__ import annotations

from typing import Any

import torch

from modelserve_handlers.timing import timed
from modelserve_handlers.vision import IMAGENET_TENSOR_SHAPE, IMAGENET_TRANSFORM
from modelserve_handlers.vision_handler import VisionHandler


class ImageSegmenter(VisionHandler):
    """Per image an HxW grid of ``[class, probability]`` for the most likely class.

    The model returns NxKxHxW class scores, as a tensor or under ``"out"`` in a dict
    (torchvision's segmentation models).
    """

    image_processing = IMAGENET_TRANSFORM
    tensor_shape = IMAGENET_TENSOR_SHAPE

    @timed
    def postprocess(self, data: Any) -> list[Any]:
        """NxHxWx2 nested lists; only the top class per pixel keeps the answer small."""
        scores = data["out"] if isinstance(data, dict) else data
        best = torch.softmax(scores, dim=1).max(dim=1)
        return torch.stack([best.indices.to(best.values.dtype), best.values], dim=3).tolist()
