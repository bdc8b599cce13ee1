"""An op's outcome in Paddle Serving's terms: its failures (``err_no`` and the message shapes
Paddle's ErrorCatch writes) and the response its last op packs (ResponseOp's rules)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from modelserve.protocol_contract import PADDLE_REQUEST_OP, PaddleErrors


class OpFailure(Exception):
    """A request the op fails: its Paddle ``err_no`` and ``err_msg``."""

    def __init__(self, err_no: int, err_msg: str) -> None:
        super().__init__(err_msg)
        self.err_no = int(err_no)
        self.err_msg = err_msg


def call_op_method(method: Callable[..., Any], returns: int, log_id: int, *args: Any) -> tuple:
    """``method(*args)``, which must return a tuple of ``returns`` values; an exception it
    raises (or another answer) fails the request as Paddle's ErrorCatch fails it: the
    exception's own code (a CustomException's) or UNKNOW."""
    try:
        result = method(*args)
    except Exception as exc:
        err_no = getattr(exc, "err_no", PaddleErrors.UNKNOW)
        message = getattr(exc, "error_msg", None) or str(exc).replace("'", "")
        raise OpFailure(err_no, raised_message(log_id, message, method)) from exc
    if not isinstance(result, tuple) or len(result) != returns:
        message = f"{method.__name__} must return a tuple of {returns} values, not {result!r:.80}"
        raise OpFailure(PaddleErrors.UNKNOW, raised_message(log_id, message, method))
    return result


def raised_message(log_id: int, message: str, method: Callable[..., Any]) -> str:
    """Paddle's ErrorCatch message for a failure in an op's method."""
    return (
        f"Log_id: {log_id}  Raise_msg: {message}  ClassName: {method.__qualname__}  "
        f"FunctionName: {method.__name__}"
    )


def packed_response(output: dict[str, Any]) -> dict[str, Any]:
    """The response of the last op's ``output``, as Paddle's ResponseOp packs it: arrays (and
    lists of strings) as their repr in full, else every value must be a str (TYPE_ERROR)."""
    values = list(output.values())
    if all(_is_array_data(value) for value in values):
        with np.printoptions(threshold=sys.maxsize):
            values = [repr(value) for value in values]
    for value in values:
        if not isinstance(value, str):
            raise OpFailure(
                PaddleErrors.TYPE_ERROR,
                f"{PADDLE_REQUEST_OP} fetch var type must be str({type(value)}).",
            )
    return {"err_no": 0, "err_msg": "", "key": list(output), "value": values}


def _is_array_data(value: Any) -> bool:
    return isinstance(value, np.ndarray) or (
        isinstance(value, list) and bool(value) and isinstance(value[0], str)
    )
