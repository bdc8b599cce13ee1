"""``ts.torch_handler.image_classifier``: modelserve's ``ImageClassifier``."""

from modelserve_handlers.image_classifier import ImageClassifier

__all__ = ["ImageClassifier"]
