"""What the ``paddle_op`` handler needs beside its class: an op's model client
(``model_client``) and how an op's outcome is answered in Paddle's terms (``answers``)."""
