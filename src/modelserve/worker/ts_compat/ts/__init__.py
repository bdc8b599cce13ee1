"""TorchServe's ``ts`` import names, served by modelserve.

The worker puts this package on the import path only when TorchServe is not installed, so a
handler written for TorchServe (``from ts.torch_handler.base_handler import BaseHandler``)
runs unchanged. Only the modules handlers use are here; each re-exports modelserve's own.
It is always imported as the top-level ``ts`` (see ``modelserve.worker.ts_compat``).
"""
