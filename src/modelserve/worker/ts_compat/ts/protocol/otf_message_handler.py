"""``ts.protocol.otf_message_handler``: where TorchServe handlers before 0.9 imported
``send_intermediate_predict_response`` from (TorchServe deprecates it there for 1.0)."""

from ts.handler_utils.utils import send_intermediate_predict_response
from ts.utils.util import deprecated

__all__ = ["send_intermediate_predict_response"]

send_intermediate_predict_response = deprecated(
    version=1.0, replacement="ts.handler_utils.utils.send_intermediate_predict_response"
)(send_intermediate_predict_response)
