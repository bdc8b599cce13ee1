"""``ts.torch_handler.base_handler``: modelserve's ``BaseHandler``."""

from modelserve_handlers.base_handler import BaseHandler

__all__ = ["BaseHandler"]
