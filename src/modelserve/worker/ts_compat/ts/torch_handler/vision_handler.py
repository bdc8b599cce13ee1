"""``ts.torch_handler.vision_handler``: modelserve's ``VisionHandler``."""

from modelserve_handlers.vision_handler import VisionHandler

__all__ = ["VisionHandler"]
