"""KServe v2 gRPC ``ModelStreamInfer`` (tritonclient's ``start_stream`` /
``async_stream_infer``): each request of the call's stream answered in turn, with every
response the model makes, as it makes it.

As Triton's stream handler does: a decoupled model's request gets one ``ModelStreamInferResponse``
per response its model sent (none at all, when it sent only the FINAL flag); any other model's,
one. A failed request is answered with ``error_message`` and the stream goes on. A request with
the parameter ``triton_enable_empty_final_response`` (tritonclient's
``enable_empty_final_response=True``) has the parameter ``triton_final_response`` on each of its
responses: false on every one but the last; a decoupled model's last is an extra response
without outputs, as Triton sends for the FINAL flag.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from modelserve.engine.dataplane import DataPlane
from modelserve.engine.errors import ServingError
from modelserve.engine.streams import AnswerParts
from modelserve.grpc import v2_tensors
from modelserve.grpc.proto import open_inference_pb2 as pb
from modelserve.grpc.status import grpc_code
from modelserve.wire import WireRequest, WireResponse, failure_message, new_request_id

# The request parameter asking for the final flag, and the response parameter that carries it.
ENABLE_FINAL = "triton_enable_empty_final_response"
FINAL = "triton_final_response"
# The service's path, for the access log.
SERVICE = "/inference.GRPCInferenceService"


class StreamAnswers:
    """The answers of one ModelStreamInfer call. ``cancel()`` stops the request under way
    (the call ended: its client cancelled or went away)."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        # The latest request's answer, kept after it ends: the call's end may come while the
        # generator is being cancelled, after anything it would clear on the way out.
        self._answering: AnswerParts | None = None

    def cancel(self) -> None:
        """Cancel the request under way (nothing once its answer has ended)."""
        if self._answering is not None:
            self._answering.cancel()

    async def answer(
        self, request: pb.ModelInferRequest
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """Every response to ``request``, in order; an error as ``error_message``."""
        flagged = _enabled(request)
        try:
            name, version = request.model_name, request.model_version or None
            decoupled = self.plane.decoupled(name, version)
            wire = WireRequest(new_request_id(), {}, [], v2_tensors.tensor_request(request))
            parts = self._answering = self.plane.stream(name, version, wire)
            # A model that is not decoupled flags its last response: each waits for the next.
            holding = flagged and not decoupled
            held: pb.ModelInferResponse | None = None
            async for part in parts:
                rendered = render(part, request)
                if isinstance(rendered, tuple):
                    parts.cancel()
                    yield pb.ModelStreamInferResponse(error_message=rendered[1])
                    return
                if holding:
                    if held is not None:
                        yield _flagged(held, False, flagged)
                    held = rendered
                else:
                    yield _flagged(rendered, False, flagged)
            if held is not None:
                yield _flagged(held, True, flagged)
            if flagged and decoupled:  # Triton's response for the FINAL flag alone
                served = self.plane.version_status(name, version).version
                final = pb.ModelInferResponse(model_name=name, model_version=served, id=request.id)
                yield _flagged(final, True, flagged)
        except ServingError as exc:
            yield pb.ModelStreamInferResponse(error_message=exc.message)


def _enabled(request: pb.ModelInferRequest) -> bool:
    parameter = request.parameters.get(ENABLE_FINAL)
    return parameter is not None and parameter.bool_param


def render(
    part: WireResponse, request: pb.ModelInferRequest
) -> pb.ModelInferResponse | tuple[grpc.StatusCode, str]:
    """An answer (or part) as a ModelInferResponse, or the status and message of its failure:
    the handler's error, or an answer that is not output tensors."""
    if part.status >= 400:
        return grpc_code(part.status), failure_message(part)
    if part.tensors is None:
        what = part.content_type or "bytes"
        return grpc.StatusCode.INTERNAL, (
            f"model {request.model_name}: the handler's answer is not a v2 response "
            f"(it answered {what}, not output tensors)"
        )
    try:
        return v2_tensors.infer_response(part.tensors, request)
    except (ValueError, TypeError) as exc:
        return grpc.StatusCode.INTERNAL, f"model {request.model_name}: {exc}"


def _flagged(
    response: pb.ModelInferResponse, final: bool, flagged: bool
) -> pb.ModelStreamInferResponse:
    if flagged:
        response.parameters[FINAL].bool_param = final
    return pb.ModelStreamInferResponse(infer_response=response)
