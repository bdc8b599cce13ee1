"""modelserve: a model server compatible with TorchServe archives and APIs."""

__version__ = "0.1.0"
