"""What serving Triton's models takes: a Python model's inputs checked against its config
(``inputs``) and its BLS calls to the server (``bls``), for the ``triton_python`` handler; a
stateful model's sequence and control inputs (``sequence_controls``), for it and the
``tensor`` handler."""
