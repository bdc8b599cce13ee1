"""What the ``triton_python`` handler is made of: a Python model's inputs checked against its
config (``inputs``) and its BLS calls to the server (``bls``)."""
