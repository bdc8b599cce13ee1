"""Built-in ``object_detector``: images in, the boxes a detection model is confident about out."""

from __future__ import annotations

from typing import Any

import torch

from modelserve_handlers.labels import label_name
from modelserve_handlers.timing import timed
from modelserve_handlers.vision import TO_TENSOR
from modelserve_handlers.vision_handler import VisionHandler


class ObjectDetector(VisionHandler):
    """Per image a list of ``{label: [x1, y1, x2, y2], "score": s}`` with ``s >= threshold``.

    The model returns, per image, a dict of ``boxes``, ``labels`` and ``scores`` tensors
    (torchvision's detection models); images are only converted to tensors, not resized.
    """

    image_processing = TO_TENSOR
    threshold = 0.5

    @timed
    def postprocess(self, data: Any) -> list[list[dict[str, Any]]]:
        """The kept detections of every image, in the model's order."""
        if isinstance(data, tuple):
            # Scripted torchvision detectors return (losses, detections).
            data = data[-1]
        return [self._detections(image) for image in data]

    def _detections(self, image: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        keep = image["scores"] >= self.threshold
        boxes, labels, scores = (image[key][keep].tolist() for key in ("boxes", "labels", "scores"))
        return [
            {label_name(label, self.mapping): box, "score": score}
            for box, label, score in zip(boxes, labels, scores, strict=True)
        ]
