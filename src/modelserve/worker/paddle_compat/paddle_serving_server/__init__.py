"""modelserve's stand-in for Paddle Serving's ``paddle_serving_server``: the pipeline
service API (``web_service.WebService``, ``pipeline.Op``) that a ``web_service.py`` imports,
served by ``modelserve paddle web_service.py``."""
