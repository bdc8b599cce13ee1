"""Paddle Serving pipeline services, served unchanged: ``modelserve paddle web_service.py``.

The service file's DAG is read in a process of its own (``dag``), its ``config.yml`` with
PyYAML (``config``); every op becomes a model served by the built-in ``paddle_op`` handler
(its preprocess and postprocess run in the op's workers), every op's model
(``local_service_conf.model_config``) a model of its own for the ``tensor`` handler, both
packed into a private store (``deploy``). The engine runs a request through the ops
(``engine.paddle_pipelines``); the inference plane and gRPC answer in Paddle's format.
"""
