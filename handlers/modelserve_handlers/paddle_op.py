"""The ``paddle_op`` built-in handler: one op of a Paddle Serving pipeline service
(``web_service.py``), run as a Paddle Serving op process runs it.

At load the service file runs up to its ``run_service()`` (the worker's
``paddle_serving_server`` is modelserve's compatibility package unless Paddle Serving is
installed); the op named in the model config's ``paddle`` section gets the knobs config.yml
gave it, a ``client`` for its model when it has one, and its ``init_op()``. Per request:
``preprocess(input_dicts, data_id, log_id)`` → ``process`` (the model: a v2 infer call to
the op's model, served by the same server as a model of its own, with its own batching and
workers; skipped when preprocess says so or the op has no model) → ``postprocess``.

A request's inputs are parameters named after the op they come from (``protocol_contract``'s
Paddle section): the client's ``{key: value}`` from the request op, the pickled output of
every other op. The answer is the op's output, pickled for the ops after it; for the last
op, the response's ``key``/``value`` as Paddle's ResponseOp packs them; for a failure,
``{"err_no", "err_msg"}`` with Paddle's codes and message shapes. The module defines
exactly one class, as handler loading requires.
"""

from __future__ import annotations

import importlib
import pickle
from typing import Any

from modelserve.protocol_contract import (
    PADDLE_DATA_ID,
    PADDLE_LOG_ID,
    PADDLE_OP_OUTPUT,
    PADDLE_REQUEST_OP,
    PADDLE_SETTINGS,
    PaddleErrors,
)
from modelserve_handlers.paddle.answers import (
    OpFailure,
    call_op_method,
    packed_response,
    raised_message,
)
from modelserve_handlers.paddle.model_client import ModelClient, ModelTimeout
from modelserve_handlers.v2_client import DEFAULT_TIMEOUT_S

WEB_SERVICE = "paddle_serving_server.web_service"


class PaddleOpHandler:
    """Runs one op object of the service in the worker."""

    def __init__(self) -> None:
        self.op: Any = None
        self.last = False
        self.initialized = False

    def initialize(self, context: Any) -> None:
        """Run the service file, configure the op and call its ``init_op()``."""
        settings = context.model_yaml_config[PADDLE_SETTINGS]
        properties = context.system_properties
        web_service = importlib.import_module(WEB_SERVICE)
        ops = web_service.service_ops(web_service.load_service(settings["service_file"]))
        op = ops.get(settings["op"])
        if op is None:
            raise RuntimeError(
                f"{settings['service_file']} no longer has an op {settings['op']!r} in its DAG"
            )
        timeout_ms = settings["timeout"]
        op.concurrency = settings["concurrency"]
        op._fetch_names = settings["fetch_list"]
        op._timeout = timeout_ms / 1000 if timeout_ms > 0 else -1
        op._retry = settings["retry"]
        op._batch_size = settings["batch_size"]
        op._auto_batching_timeout = settings["auto_batching_timeout"]
        op.client_type = settings["client_type"]
        op.model_config = settings["model_config"]
        op.device_type = settings["device_type"]
        op.devices = settings["devices"]
        # In range(concurrency), as in Paddle; not told apart per worker.
        worker = str(properties.get("worker_id", "0"))
        op.concurrency_idx = int(worker) % op.concurrency if worker.isdigit() else 0
        if settings["model"]:
            op.client = op.local_predictor = ModelClient(
                properties.get("server_url", ""),
                properties.get("server_token", ""),
                settings["model"],
                op._timeout if op._timeout > 0 else DEFAULT_TIMEOUT_S,
            )
        op.init_op()
        self.op = op
        self.last = settings["last"]
        self.initialized = True

    def close(self) -> None:
        """The worker stops: close the model client's connections."""
        if isinstance(getattr(self.op, "client", None), ModelClient):
            self.op.client.close()

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        """Each request through the op: its output, its response (the last op) or its error."""
        return [self._answer(row, context, index) for index, row in enumerate(data)]

    # ----- internals

    def _answer(self, row: dict[str, Any], context: Any, index: int) -> Any:
        data_id = int(context.get_request_header(index, PADDLE_DATA_ID) or 0)
        log_id = int(context.get_request_header(index, PADDLE_LOG_ID) or 0)
        input_dicts = {
            name: value if name == PADDLE_REQUEST_OP else pickle.loads(value)
            for name, value in row.items()
        }
        try:
            output = self._run(input_dicts, data_id, log_id)
            if self.last:
                return packed_response(output)
        except OpFailure as failure:
            return {"err_no": failure.err_no, "err_msg": failure.err_msg}
        context.set_response_content_type(index, PADDLE_OP_OUTPUT)
        return pickle.dumps(output, protocol=pickle.HIGHEST_PROTOCOL)

    def _run(self, input_dicts: dict[str, Any], data_id: int, log_id: int) -> dict[str, Any]:
        """preprocess → process → postprocess, as Paddle's op loop runs one request."""
        op = self.op
        preped, skip, code, info = call_op_method(
            op.preprocess, 4, log_id, input_dicts, data_id, log_id
        )
        if code is not None:
            raise OpFailure(code, info)
        fetched = preped if skip or op.client is None else self._process(preped, data_id, log_id)
        output, code, info = call_op_method(
            op.postprocess, 3, log_id, input_dicts, fetched, data_id, log_id
        )
        if not isinstance(output, dict):
            message = raised_message(log_id, "postprocess should return dict", op.postprocess)
            raise OpFailure(PaddleErrors.TYPE_ERROR, message)
        if code is not None:
            raise OpFailure(code, info)
        return output

    def _process(self, preped: Any, data_id: int, log_id: int) -> Any:
        """The op's ``process`` (its model) on one feed dict, or on each of a list of them;
        tried again while it times out, up to the op's ``retry`` when it has a ``timeout``.
        Paddle passes the data id as process's log id."""
        op = self.op
        where = f"(data_id={data_id} log_id={log_id}) [{op.name}|{op.concurrency_idx}]"
        if not isinstance(preped, dict | list):
            message = f"expect input type is dict or list, but get {type(preped)}"
            raise OpFailure(PaddleErrors.TYPE_ERROR, message)
        attempts = op._retry if op._timeout > 0 else 1
        fetched: Any = None
        for attempt in range(1, attempts + 1):
            try:
                fetched, code, info = self._process_once(preped, data_id)
            except ModelTimeout:
                if attempt < attempts:
                    continue
                code = PaddleErrors.TIMEOUT
                info = f"{where} Failed to process(batch: [{data_id}]): exceeded retry count."
            except Exception as exc:
                code = getattr(exc, "err_no", PaddleErrors.UNKNOW)
                info = f"{where} Failed to process(batch: [{data_id}]): {exc}"
            break
        if code != PaddleErrors.OK or fetched is None:
            raise OpFailure(
                code or PaddleErrors.UNKNOW,
                f"[{op.name}] failed to predict. {info}. Please check the input dict and the "
                "server log for more details.",
            )
        return fetched

    def _process_once(self, preped: Any, data_id: int) -> tuple[Any, int, str]:
        if isinstance(preped, dict):
            return self.op.process([preped], data_id)
        fetched = []
        for feed in preped:
            one, code, info = self.op.process([feed], data_id)
            if code != PaddleErrors.OK:
                return None, code, info
            fetched.append(one)
        return fetched, PaddleErrors.OK, ""
