"""``ts.torch_handler.text_classifier``: modelserve's ``TextClassifier``."""

from modelserve_handlers.text_classifier import TextClassifier

__all__ = ["TextClassifier"]
