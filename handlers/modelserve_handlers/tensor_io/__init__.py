"""The ``tensor`` handler's parts: request formats, binding to model inputs, batching, calls.

``Tensors`` (input or output name → numpy array) is what passes between them.
"""

import numpy as np

Tensors = dict[str, np.ndarray]
