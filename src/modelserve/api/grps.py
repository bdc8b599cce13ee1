"""grps's HTTP API (NetEase-Media/grps) on the inference plane: everything under ``/grps/v1``.

* ``POST /grps/v1/infer/predict``: a GrpsMessage as JSON, its data in ``gtensors`` (every
  DataType and flat field), ``ndarray`` (a nested list of float32 numbers) or ``str_data``;
  or ``bin_data``, sent as the body itself with ``Content-Type: application/octet-stream``
  and answered the same way. ``?model=NAME-VERSION`` (or the body's ``model``) picks the
  model, ``?return-ndarray=true`` answers the float32 output as ``ndarray``.
* ``/grps/v1/health/online|offline|live|ready`` (GET or POST): the drain switch and probes.
* ``/grps/v1/metadata/server`` and ``/grps/v1/metadata/model`` (``{"str_data": NAME}``): YAML
  in ``str_data``.

Every answer carries grps's ``status``: ``{"code": 200, "msg": "OK", "status": "SUCCESS"}``,
or on an error (the frontend's included: unknown model, full queue, bad JSON, routing) the
HTTP status in ``code``, what was wrong in ``msg`` and ``"status": "FAILURE"``. What the
methods do is ``grps.service``'s, shared with gRPC; this module parses and renders JSON.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from modelserve.api.protocol_routes import JSON, protocol_app
from modelserve.api.streaming import PartsResponse, parts_response
from modelserve.api.tensor_bodies import json_values
from modelserve.engine.errors import BadRequestException, InternalServerException, ServingError
from modelserve.engine.streams import ResponseStream
from modelserve.grps.proto import grps_pb2 as pb
from modelserve.grps.service import BINARY, GrpsService, Payload, answer_payload
from modelserve.grps.tensors import json_input, ndarray_input, output_entry
from modelserve.protocol_contract import Tensor
from modelserve.wire import WireResponse

PREFIX = "/grps/v1"
OK = {"code": 200, "msg": "OK", "status": "SUCCESS"}
# Bodies read as JSON: curl -d sends its form type (or none), whatever the body is.
JSON_TYPES = (JSON, "application/x-www-form-urlencoded", "")
# A GrpsMessage's data fields, by their JSON keys (field names and lowerCamelCase names).
_DATA_FIELDS = pb.GrpsMessage.DESCRIPTOR.oneofs_by_name["data_oneof"].fields
DATA_KEYS = {field.name: field.name for field in _DATA_FIELDS} | {
    field.json_name: field.name for field in _DATA_FIELDS
}


def grps_json(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A GrpsMessage as compact JSON, ending in a newline (curl's output ends its line)."""
    return Response(_json_line(body), status_code=status, headers=headers, media_type=JSON)


def _json_line(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_APPEND_NEWLINE)


def status_body(code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A GrpsMessage with only its status: grps's error (and bare success) answer."""
    flag = "SUCCESS" if code < 400 else "FAILURE"
    return grps_json({"status": {"code": code, "msg": message, "status": flag}}, code, headers)


def json_message(body: bytes) -> dict[str, Any]:
    """A JSON GrpsMessage, as parsed; 400 for a body that is not a JSON object."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestException(f"the request body is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise BadRequestException("the request body must be a JSON object (a GrpsMessage)")
    return document


def json_payload(body: bytes) -> tuple[Payload, str | None]:
    """A JSON GrpsMessage's data, and the model it names (None: it names none)."""
    document = json_message(body)
    present = [(DATA_KEYS[key], value) for key, value in document.items() if key in DATA_KEYS]
    present = [(field, value) for field, value in present if value is not None]
    if not present:
        raise BadRequestException(
            'the request has no data: send "gtensors", "ndarray" or "str_data" (bin_data: '
            "as the body itself, with Content-Type: application/octet-stream)"
        )
    if len(present) > 1:
        raise BadRequestException(
            f'the request has both "{present[0][0]}" and "{present[1][0]}": one data field only'
        )
    field, value = present[0]
    model = document.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequestException('"model" must be a string: NAME-VERSION or NAME')
    return _payload(field, value), model or None


def _payload(field: str, value: Any) -> Payload:
    if field == "gtensors":
        tensors = value.get("tensors") if isinstance(value, dict) else None
        if not isinstance(tensors, list) or not tensors:
            raise BadRequestException('"gtensors" must be {"tensors": [...]} with a tensor or more')
        return Payload(tensors=[json_input(entry, index) for index, entry in enumerate(tensors)])
    if field == "ndarray":
        return Payload(tensors=[ndarray_input(value)])
    if field == "str_data":
        if not isinstance(value, str):
            raise BadRequestException('"str_data" must be a string')
        return Payload(text=value)
    if field == "bin_data":
        raise BadRequestException(
            "bin_data goes as the body itself, with Content-Type: application/octet-stream"
        )
    raise BadRequestException(
        "gmap is not served (modelserve's handlers take tensors, text or bytes): send "
        "gtensors, ndarray, str_data or bin_data"
    )


def answer_response(answer: Payload, as_ndarray: bool) -> Response:
    """The answer as grps renders it: bin_data as the body itself, else JSON."""
    media_type = BINARY if answer.data is not None else JSON
    return Response(answer_body(answer, as_ndarray), media_type=media_type)


def answer_body(answer: Payload, as_ndarray: bool) -> bytes:
    """An answer's body (one chunk of a streamed answer): bin_data itself, else the
    GrpsMessage as one line of JSON."""
    if answer.data is not None:
        return answer.data
    if answer.text is not None:
        return _json_line({"status": OK, "str_data": answer.text})
    tensors = answer.tensors or []
    try:
        if as_ndarray:
            return _json_line({"status": OK, "ndarray": _ndarray(tensors)})
        entries = [output_entry(tensor, _values(tensor)) for tensor in tensors]
    except ValueError as exc:
        raise InternalServerException(str(exc)) from exc
    return _json_line({"status": OK, "gtensors": {"tensors": entries}})


def _values(tensor: Tensor) -> list[Any]:
    values = json_values(tensor)
    if values is None:
        raise ValueError(
            f'output "{tensor.name}" ({tensor.datatype}) cannot be written as JSON values'
        )
    return values


def _ndarray(tensors: list[Tensor]) -> Any:
    """The one float32 output as a nested list (a number for a scalar)."""
    if len(tensors) != 1 or tensors[0].datatype != "FP32":
        found = ", ".join(f"{tensor.name} ({tensor.datatype})" for tensor in tensors)
        raise ValueError(
            f"return-ndarray needs one float32 output; the model answered {found or 'none'}"
        )
    tensor = tensors[0]
    return _nest(output_entry(tensor, _values(tensor))["flat_float32"], tensor.shape)


def _nest(values: list[Any], shape: list[int]) -> Any:
    if not shape:
        return values[0]
    if len(shape) == 1:
        return values
    step = len(values) // shape[0] if shape[0] else 0
    return [_nest(values[row * step : (row + 1) * step], shape[1:]) for row in range(shape[0])]


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() == "true"


def grps_routes(service: GrpsService) -> list[BaseRoute]:
    """Every path under ``/grps/v1`` of the inference plane."""

    async def predict(request: Request) -> Response | PartsResponse:
        body = await request.body()
        if not body:
            raise BadRequestException("the request body is empty")
        mime = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        model = request.query_params.get("model")
        if mime == BINARY:
            payload = Payload(data=body)
        elif mime in JSON_TYPES:
            payload, named = json_payload(body)
            model = named or model  # the body's model wins, as in grps
        else:
            raise BadRequestException(
                f"Content-Type {mime} is not served: send application/json (gtensors, ndarray, "
                "str_data) or application/octet-stream (bin_data)"
            )
        as_ndarray = _flag(request, "return-ndarray")
        if not _flag(request, "streaming"):
            return answer_response(await service.predict(payload, model or ""), as_ndarray)
        request_id, answer = await service.predict_streaming(payload, model or "")
        if not isinstance(answer, ResponseStream):  # answered whole: one body
            return answer_response(answer_payload(answer, payload), as_ndarray)

        def render(part: WireResponse) -> bytes:
            return answer_body(answer_payload(part, payload), as_ndarray)

        def render_error(error: ServingError) -> bytes:
            return status_body(error.status, error.message).body

        return parts_response(answer, request_id, render, render_error, media_type=BINARY)

    async def online(_request: Request) -> Response:
        service.online = True
        return status_body(200, "OK")

    async def offline(_request: Request) -> Response:
        service.online = False
        return status_body(200, "OK")

    async def live(_request: Request) -> Response:
        return status_body(200, "OK")

    async def ready(_request: Request) -> Response:
        reason = service.unready_reason()
        if reason is not None:
            return status_body(503, f"Service Unavailable: {reason}")
        return status_body(200, "OK")

    async def server_metadata(_request: Request) -> Response:
        return grps_json({"status": OK, "str_data": service.server_metadata()})

    async def model_metadata(request: Request) -> Response:
        body = await request.body()
        model = json_message(body).get("str_data") if body.strip() else None
        if model is not None and not isinstance(model, str):
            raise BadRequestException('"str_data" must be the model\'s name')
        return grps_json({"status": OK, "str_data": service.model_metadata(model or "")})

    both = ["GET", "POST"]
    routes: list[BaseRoute] = [
        Route("/infer/predict", predict, methods=["POST"]),
        Route("/health/online", online, methods=both),
        Route("/health/offline", offline, methods=both),
        Route("/health/live", live, methods=both),
        Route("/health/ready", ready, methods=both),
        Route("/metadata/server", server_metadata, methods=both),
        Route("/metadata/model", model_metadata, methods=both),
    ]
    return [Mount(PREFIX, app=protocol_app(routes, status_body))]
