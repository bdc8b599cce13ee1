"""Paddle Serving's name for the pipeline error codes, as ops import it."""

from __future__ import annotations

from .error_catch import CustomExceptionCode as ChannelDataErrcode

__all__ = ["ChannelDataErrcode"]
