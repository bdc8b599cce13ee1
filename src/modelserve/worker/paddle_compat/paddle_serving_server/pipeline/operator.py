"""Paddle Serving's pipeline ops, as a service's ``web_service.py`` subclasses them.

An ``Op`` names its ``input_ops`` when it is built; ``WebService.get_pipeline_response``
returns the last one, and the ops it reads from (back to the ``RequestOp``) are the DAG.
modelserve runs each op in worker processes of its own (``concurrency`` of them): per
request, ``preprocess`` → ``process`` (the op's model, when ``local_service_conf`` names
one) → ``postprocess``, as Paddle Serving runs an op process. The signatures, return values
and defaults are Paddle's.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .error_catch import CustomExceptionCode

# The name Paddle gives the request and response ops (the DAG executor's).
DAG_EXECUTOR = "@DAGExecutor"
_unnamed = itertools.count()


class Op:
    """One step of a pipeline service. Override ``init_op``, ``preprocess`` and
    ``postprocess`` (rarely ``process``); ``self.client`` runs the op's model."""

    def __init__(
        self,
        name: str | None = None,
        input_ops: Any = None,
        server_endpoints: list[str] | None = None,
        fetch_list: list[str] | None = None,
        client_config: str | None = None,
        client_type: str | None = None,
        concurrency: int | None = None,
        timeout: int | None = None,
        retry: int = 0,
        batch_size: int | None = None,
        auto_batching_timeout: int | None = None,
        local_service_handler: Any = None,
        jump_to_ops: Any = None,
    ) -> None:
        self.name = name if name is not None else f"Op{next(_unnamed)}"
        if server_endpoints or local_service_handler is not None or jump_to_ops:
            raise NotImplementedError(
                f"Op {self.name}: server_endpoints, local_service_handler and jump_to_ops are "
                "not supported by modelserve; give the op's model as local_service_conf."
                "model_config in config.yml"
            )
        self.set_input_ops(input_ops)
        # What the constructor sets wins over config.yml, as in Paddle Serving.
        self.concurrency = concurrency
        self.client_type = client_type
        self._fetch_names = fetch_list
        self._client_config = client_config
        self._timeout = timeout
        self._retry = max(1, retry)
        self._retry_given = retry
        self._batch_size = batch_size
        self._auto_batching_timeout = auto_batching_timeout
        # Set by modelserve in the op's worker, before init_op.
        self.client: Any = None
        self.local_predictor: Any = None
        self.concurrency_idx: int | None = None
        self.model_config: str | None = None
        self.device_type = -1
        self.devices = ""
        self.dynamic_shape_info: dict[str, Any] = {}
        self.set_dynamic_shape_info()

    def set_dynamic_shape_info(self) -> None:
        """Paddle Inference's TensorRT dynamic shapes; kept, not used by modelserve."""

    def init_op(self) -> None:
        """Called once in each of the op's workers, before its first request."""

    def get_input_ops(self) -> list[Op]:
        """The ops this op reads from."""
        return self._input_ops

    def set_input_ops(self, ops: Any) -> None:
        """Set the ops this op reads from (one op or a list of them)."""
        if not isinstance(ops, list):
            ops = [] if ops is None else [ops]
        for op in ops:
            if not isinstance(op, Op):
                raise TypeError(
                    f"Op {self.name}: input_ops must be Op objects, not {type(op).__name__}"
                )
        self._input_ops = list(ops)

    def preprocess(
        self, input_dicts: dict[str, Any], data_id: int = 0, log_id: int = 0
    ) -> tuple[Any, bool, int | None, str]:
        """The model's feed from the inputs (one dict per input op, by op name); returns
        ``(feed, is_skip_process, err_code, err_info)``. By default: the one input as is."""
        if len(input_dicts) != 1:
            raise ValueError(
                f"Op {self.name} has several input ops: override preprocess to merge them"
            )
        ((_, input_dict),) = input_dicts.items()
        return input_dict, False, None, ""

    def process(self, feed_batch: list[Any], typical_logid: int = 0) -> tuple[Any, int, str]:
        """Run the model on ``feed_batch[0]`` (input name → numpy array); returns
        ``(fetch_dict, err_code, err_info)``."""
        feed = feed_batch[0]
        if not isinstance(feed, dict) or not all(
            isinstance(value, np.ndarray) for value in feed.values()
        ):
            return None, CustomExceptionCode.TYPE_ERROR.value, "feed_batch must be npdata"
        fetch = self.client.predict(
            feed=feed, fetch=self._fetch_names, batch=True, log_id=typical_logid
        )
        return fetch, CustomExceptionCode.OK.value, ""

    def postprocess(
        self, input_dicts: dict[str, Any], fetch_data: Any, data_id: int = 0, log_id: int = 0
    ) -> tuple[dict[str, Any], int | None, str]:
        """The op's output from the model's answer; returns ``(output, err_code, err_info)``.
        By default: the answer itself."""
        return (fetch_data if isinstance(fetch_data, dict) else {}), None, ""


class RequestOp(Op):
    """The DAG's entry: what a client sent, ``{key: value}``, for the ops that read it."""

    def __init__(self) -> None:
        super().__init__(name=DAG_EXECUTOR)


class ResponseOp(Op):
    """The DAG's exit: the last op's output becomes the response's ``key``/``value``."""

    def __init__(self, input_ops: Any) -> None:
        super().__init__(name=DAG_EXECUTOR, input_ops=input_ops)
