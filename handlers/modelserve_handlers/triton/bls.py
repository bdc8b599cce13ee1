"""Triton's Business Logic Scripting: a Python model's inference requests to other models of
the same server, sent through the server's front door.

Each ``pb_utils.InferenceRequest(...).exec()`` becomes a KServe v2 infer request with binary
tensors on the server's own inference plane, so it is queued and batched with every other
client's requests to that model, and counted in its metrics. A failure of any kind (the model
refused the input, is not there, its worker died, the server is unreachable) comes back as a
response whose ``has_error()`` is true, never as a hang: every call has a timeout. The
repository calls (``pb_utils.load_model`` …) go to Triton's repository API on the same plane.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from modelserve_handlers.errors import BadInputError
from modelserve_handlers.v2_client import (
    DEFAULT_TIMEOUT_S,
    decode_outputs,
    error_text,
    infer_call,
)

# Triton's error codes by the HTTP status the server answered.
CODES_BY_STATUS = {400: "INVALID_ARG", 404: "NOT_FOUND", 503: "UNAVAILABLE", 499: "CANCELLED"}


class BlsClient:
    """The executor ``triton_python_backend_utils`` hands BLS calls to, in one worker."""

    def __init__(self, pb_utils: Any, server_url: str, token: str, caller: str) -> None:
        self._pb = pb_utils
        self._url = server_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._caller = caller
        self._client: httpx.Client | None = None
        self._async_client: httpx.AsyncClient | None = None

    # ----- inference

    def execute(self, request: Any) -> Any:
        """Send ``request`` and wait for its answer (``InferenceRequest.exec``)."""
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        url, body, headers, timeout = self._infer_call(request)
        try:
            answer = self._sync().post(url, content=body, headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            return self._failure(f"BLS request to model {_name(request)} failed: {exc!r}")
        return self._response(request, answer)

    async def async_execute(self, request: Any) -> Any:
        """As ``execute``, awaited (``InferenceRequest.async_exec``)."""
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        url, body, headers, timeout = self._infer_call(request)
        if self._async_client is None:
            self._async_client = httpx.AsyncClient(headers=self._headers)
        try:
            answer = await self._async_client.post(
                url, content=body, headers=headers, timeout=timeout
            )
        except httpx.HTTPError as exc:
            return self._failure(f"BLS request to model {_name(request)} failed: {exc!r}")
        return self._response(request, answer)

    # ----- the repository (explicit model control)

    def load_model(self, model_name: str, config: str, files: dict[str, bytes] | None) -> None:
        """Triton's repository load; TritonModelException when the server refuses."""
        parameters: dict[str, str] = {"config": config} if config else {}
        for path, contents in (files or {}).items():
            parameters[path] = base64.b64encode(contents).decode()
        body = {"parameters": parameters} if parameters else {}
        self._repository_call(f"/v2/repository/models/{model_name}/load", body)

    def unload_model(self, model_name: str, unload_dependents: bool) -> None:
        """Triton's repository unload; TritonModelException when the server refuses."""
        body = {"parameters": {"unload_dependents": unload_dependents}}
        self._repository_call(f"/v2/repository/models/{model_name}/unload", body)

    def is_model_ready(self, model_name: str, model_version: int) -> bool:
        """Whether the model (version; -1: its default one) can take requests now."""
        version = f"/versions/{model_version}" if model_version >= 0 else ""
        try:
            answer = self._sync().get(f"{self._url}/v2/models/{model_name}{version}/ready")
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    # ----- internals

    def _sync(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(headers=self._headers, timeout=DEFAULT_TIMEOUT_S)
        return self._client

    def _repository_call(self, path: str, body: dict[str, Any]) -> None:
        try:
            answer = self._sync().post(f"{self._url}{path}", json=body, timeout=DEFAULT_TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise self._pb.TritonModelException(f"{path}: {exc!r}") from exc
        if answer.status_code != 200:
            raise self._pb.TritonModelException(error_text(answer))

    def _refusal(self, request: Any) -> Any:
        if _name(request) == self._caller:
            return self._failure(
                f"a BLS request from model {self._caller} to itself is refused: it would wait "
                "for the worker that is running it (a deadlock)",
                "INVALID_ARG",
            )
        return None

    def _infer_call(self, request: Any) -> tuple[str, bytes, dict[str, str], float]:
        """The URL, body, headers and timeout of the v2 infer request for ``request``."""
        url, body, headers = infer_call(
            self._url,
            _name(request),
            _version(request),
            {tensor.name(): tensor.as_numpy() for tensor in request.inputs()},
            sorted(request.requested_output_names()),
            request.request_id(),
            json.loads(request.parameters() or "{}"),
        )
        return url, body, headers, _timeout(request)

    def _response(self, request: Any, answer: httpx.Response) -> Any:
        if answer.status_code != 200:
            code = CODES_BY_STATUS.get(answer.status_code, "INTERNAL")
            message = f"model {_name(request)}: {answer.status_code}: {error_text(answer)}"
            return self._failure(message, code)
        try:
            tensors = decode_outputs(answer)
        except (ValueError, KeyError, TypeError, BadInputError) as exc:
            return self._failure(f"model {_name(request)}: unreadable response: {exc}")
        outputs = [self._pb.Tensor(name, array) for name, array in tensors.items()]
        return self._pb.InferenceResponse(output_tensors=outputs)

    def _failure(self, message: str, code: str = "INTERNAL") -> Any:
        error = self._pb.TritonError(message, getattr(self._pb.TritonError, code))
        return self._pb.InferenceResponse(output_tensors=[], error=error)


def _name(request: Any) -> str:
    return str(request.model_name())


def _version(request: Any) -> str:
    """The version asked for; "" for Triton's -1 (the newest, our default version)."""
    version = int(request.model_version())
    return "" if version < 0 else str(version)


def _timeout(request: Any) -> float:
    """Triton's timeout is in microseconds, 0 meaning none (here: DEFAULT_TIMEOUT_S)."""
    microseconds = int(request.timeout())
    return microseconds / 1e6 if microseconds > 0 else DEFAULT_TIMEOUT_S
