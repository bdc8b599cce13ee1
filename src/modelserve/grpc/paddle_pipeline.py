"""Paddle Serving's gRPC ``PipelineService`` (its ``inference`` method), as its
``PipelineClient`` calls it: a ``Request``'s key/value pairs through the Paddle service the
data plane serves (a request names none: the only one), answered with Paddle's ``err_no``,
``err_msg``, ``key`` and ``value``. Every answer is a gRPC OK, as Paddle's servicer gives. A
caller that cancels its call cancels the ops not yet answered (grpc.aio cancels the handler).
"""

from __future__ import annotations

import grpc

from modelserve.engine.dataplane import DataPlane
from modelserve.engine.paddle_pipelines import PaddleRequest
from modelserve.grpc.proto import paddle_pipeline_pb2, paddle_pipeline_pb2_grpc


class PipelineServicer(paddle_pipeline_pb2_grpc.PipelineServiceServicer):
    """``baidu.paddle_serving.pipeline_serving.PipelineService`` over the data plane."""

    def __init__(self, plane: DataPlane) -> None:
        self._plane = plane

    async def inference(
        self, request: paddle_pipeline_pb2.Request, context: grpc.aio.ServicerContext
    ) -> paddle_pipeline_pb2.Response:
        """Run one request through the service."""
        answer = await self._plane.predict_paddle(
            PaddleRequest(
                request.name,
                list(request.key),
                list(request.value),
                request.logid,
                has_tensors=len(request.tensors) > 0,
            )
        )
        return paddle_pipeline_pb2.Response(
            err_no=answer.err_no, err_msg=answer.err_msg, key=answer.keys, value=answer.values
        )
