"""An op's ``self.client`` (and ``self.local_predictor``): its model, served by the same
server as a model of its own (own batching, workers and metrics), called as Paddle's local
predictor is called."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np

from modelserve.protocol_contract import PaddleErrors
from modelserve_handlers.v2_client import decode_outputs, error_text, infer_call


class ModelCallError(Exception):
    """The op's model failed the call; ``err_no`` is Paddle's code for how: a request the
    model refused (4xx) is Paddle's INPUT_PARAMS_ERROR, anything else UNKNOW."""

    def __init__(self, err_no: int, message: str) -> None:
        super().__init__(message)
        self.err_no = err_no


class ModelTimeout(ModelCallError):
    """The op's model did not answer within the op's ``timeout``."""


class ModelClient:
    """``predict(feed, fetch, batch, log_id)`` → ``{output name: array}``, through a KServe v2
    infer call on the server's inference plane."""

    def __init__(self, server_url: str, token: str, model: str, timeout_s: float) -> None:
        self._url = server_url
        self._model = model
        self._timeout_s = timeout_s
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(headers=headers, timeout=timeout_s)

    def predict(
        self,
        feed: dict[str, Any],
        fetch: list[str] | None = None,
        batch: bool = True,
        log_id: int = 0,
    ) -> dict[str, np.ndarray]:
        """Run the model on ``feed`` (input name → array, the batch first); its ``fetch``
        outputs (None: all). ``batch`` is Paddle's and always true here."""
        url, body, headers = infer_call(
            self._url, self._model, "", feed, list(fetch or []), str(log_id)
        )
        try:
            answer = self._client.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise ModelTimeout(
                PaddleErrors.TIMEOUT, f"model {self._model}: no answer within {self._timeout_s:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise ModelCallError(PaddleErrors.UNKNOW, f"model {self._model}: {exc!r}") from exc
        status = answer.status_code
        if status != 200:
            code = PaddleErrors.INPUT_PARAMS_ERROR if 400 <= status < 500 else PaddleErrors.UNKNOW
            raise ModelCallError(
                code, f"model {self._model} answered {status}: {error_text(answer)}"
            )
        return decode_outputs(answer)

    def close(self) -> None:
        """Close the connections."""
        self._client.close()
