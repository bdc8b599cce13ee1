"""Built-in ``image_classifier``: ImageNet preprocessing, softmax, the top 5 classes."""

from __future__ import annotations

from typing import Any

import torch

from modelserve_handlers.labels import map_class_to_label
from modelserve_handlers.timing import timed
from modelserve_handlers.vision import IMAGENET_TENSOR_SHAPE, IMAGENET_TRANSFORM
from modelserve_handlers.vision_handler import VisionHandler


class ImageClassifier(VisionHandler):
    """Per image ``{label: probability}`` for the ``topk`` most likely classes, best first.

    Labels come from ``index_to_name.json`` when the archive has one, else class indices.
    """

    topk = 5
    image_processing = IMAGENET_TRANSFORM
    tensor_shape = IMAGENET_TENSOR_SHAPE

    def set_max_result_classes(self, topk: int) -> None:
        """How many classes each answer lists."""
        self.topk = topk

    def get_max_result_classes(self) -> int:
        """How many classes each answer lists."""
        return self.topk

    @timed
    def postprocess(self, data: torch.Tensor) -> list[dict[str, Any]]:
        """Softmax over the classes, then the best ``topk`` (all, when the model has fewer)."""
        probabilities = torch.softmax(data, dim=1)
        probs, classes = torch.topk(probabilities, min(self.topk, probabilities.shape[1]), dim=1)
        return map_class_to_label(probs.tolist(), self.mapping, classes.tolist())
