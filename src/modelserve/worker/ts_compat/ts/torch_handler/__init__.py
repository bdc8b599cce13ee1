"""``ts.torch_handler``: the built-in handlers."""
