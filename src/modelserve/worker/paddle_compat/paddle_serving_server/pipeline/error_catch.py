"""Paddle Serving's pipeline error codes (``err_no`` of a response), with its values."""

from __future__ import annotations

import enum


class CustomExceptionCode(enum.Enum):
    """0 success; 50-99 a product error (an op's own ``err_code``); 3000s internal service
    errors; 4000s configuration; 5000s user input; 6000s timeouts; 7000s type checks; 8000s
    request packing; 9000s the client; 10000 anything else."""

    OK = 0
    PRODUCT_ERROR = 50

    NOT_IMPLEMENTED = 3000
    CLOSED_ERROR = 3001
    NO_SERVICE = 3002
    INIT_ERROR = 3003
    CONF_ERROR = 4000
    INPUT_PARAMS_ERROR = 5000
    TIMEOUT = 6000
    TYPE_ERROR = 7000
    RPC_PACKAGE_ERROR = 8000
    CLIENT_ERROR = 9000
    UNKNOW = 10000  # Paddle's spelling


class ProductErrCode(enum.Enum):
    """A service's own error codes (51-99): subclass it to name them."""


class CustomException(Exception):
    """An error with one of the codes above; ``err_no`` is what the response carries."""

    def __init__(self, exceptionCode: enum.Enum, errorMsg: str, isSendToUser: bool = False) -> None:
        super().__init__(errorMsg)
        self.err_no = exceptionCode.value
        self.error_msg = errorMsg
        self.is_send_to_user = isSendToUser
