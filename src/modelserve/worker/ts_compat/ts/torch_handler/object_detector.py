"""``ts.torch_handler.object_detector``: modelserve's ``ObjectDetector``."""

from modelserve_handlers.object_detector import ObjectDetector

__all__ = ["ObjectDetector"]
