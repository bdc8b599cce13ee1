"""modelserve's built-in handlers, addressable by short name in an archive's ``--handler``.

``base_handler`` is TorchServe 0.12's ``BaseHandler`` (to subclass); the task handlers follow
TorchServe's built-ins of the same names; ``tensor`` serves raw tensors for a model of any
framework; ``triton_python`` and ``paddle_op`` run Triton Python models and Paddle Serving
ops. Each module defines exactly one class, as handler loading requires.
"""

BUILTIN_HANDLERS: tuple[str, ...] = (
    "base_handler",
    "image_classifier",
    "image_segmenter",
    "object_detector",
    "paddle_op",
    "text_classifier",
    "tensor",
    "triton_python",
)
