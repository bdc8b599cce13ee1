"""``ts.torch_handler.image_segmenter``: modelserve's ``ImageSegmenter``."""

from modelserve_handlers.image_segmenter import ImageSegmenter

__all__ = ["ImageSegmenter"]
