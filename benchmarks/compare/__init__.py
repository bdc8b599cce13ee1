"""Cross-server comparison benchmark (``make bench``): modelserve against
TorchServe 0.12, MLServer, LitServe and the in-process limit."""
