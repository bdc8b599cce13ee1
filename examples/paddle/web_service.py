"""A Paddle Serving pipeline service, written as for Paddle Serving: one op that decodes a
base64 image, classifies it with the digits model and answers the digit.

    modelserve paddle examples/paddle/web_service.py

``config.yml`` gives the op its model (``digits_model/model.onnx``, written by build.py)
and its workers; pipeline_http_client.py calls it as Paddle's own examples do.
"""

import base64
import io

import numpy as np
from paddle_serving_server.web_service import Op, WebService
from PIL import Image, UnidentifiedImageError

# A product error code of this service (Paddle keeps 51-99 for them).
BAD_IMAGE = 51


class DigitsOp(Op):
    def init_op(self):
        self.grid = (8, 8)

    def preprocess(self, input_dicts, data_id, log_id):
        ((_, input_dict),) = input_dicts.items()
        if "image" not in input_dict:
            return None, False, BAD_IMAGE, "no image: send it under the key 'image'"
        try:
            image = Image.open(io.BytesIO(base64.b64decode(input_dict["image"])))
        except (ValueError, UnidentifiedImageError):
            return None, False, BAD_IMAGE, "image: not a base64 PNG or JPEG"
        # The digits model reads 8x8 grey levels from 0 to 1, ink light on dark.
        pixels = image.convert("L").resize(self.grid, Image.Resampling.BOX)
        feed = np.asarray(pixels, dtype=np.float32).reshape(1, 64) / 255.0
        return {"pixels": feed}, False, None, ""

    def postprocess(self, input_dicts, fetch_dict, data_id, log_id):
        probabilities = fetch_dict["probabilities"][0]
        digit = int(probabilities.argmax())
        return {"label": str(digit), "prob": str(float(probabilities[digit]))}, None, ""


class DigitsService(WebService):
    def get_pipeline_response(self, read_op):
        return DigitsOp(name="digits", input_ops=[read_op])


digits_service = DigitsService(name="digits")
digits_service.prepare_pipeline_config("config.yml")
digits_service.run_service()
