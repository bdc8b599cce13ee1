"""``ts.handler_utils.utils``: ``send_intermediate_predict_response``, the call a TorchServe
handler makes to send one part of its answer before returning the last one."""

from __future__ import annotations

from typing import Any

from modelserve.worker.context import Context

# The batch-level code TorchServe's handlers pass for parts that are answers, not errors.
SUCCESS = 200


def send_intermediate_predict_response(
    ret: Any, req_id_map: dict[int, str], message: str, code: int, context: Context
) -> None:
    """Send ``ret[idx]`` now as a part of the answer to each request ``idx`` of
    ``req_id_map`` (usually ``context.request_ids``), as TorchServe does.

    A ``code`` other than 200 fails those requests instead, with ``message`` (TorchServe
    fails the whole batch with it). Blocks while a client is behind; parts for cancelled
    requests are dropped (``context.is_cancelled``).
    """
    for idx in req_id_map:
        if code == SUCCESS:
            context.send_part(idx, ret[idx])
            continue
        context.set_response_status(code, message, idx)
        context.send_part(idx, {"code": code, "type": "PredictionException", "message": message})
