"""``ts.protocol``: the old home of ``send_intermediate_predict_response``."""
