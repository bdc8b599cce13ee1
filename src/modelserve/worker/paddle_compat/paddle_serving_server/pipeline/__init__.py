"""Paddle Serving's ``paddle_serving_server.pipeline``: the op classes a service builds its
DAG from."""

from .operator import Op, RequestOp, ResponseOp

__all__ = ["Op", "RequestOp", "ResponseOp"]
