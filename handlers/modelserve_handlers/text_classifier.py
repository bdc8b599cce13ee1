"""Built-in ``text_classifier``: UTF-8 text in, ``{label: probability}`` out, batched.

TorchServe's version needs a torchtext vocabulary (``source_vocab.pt``), bigrams and a batch
of one; this one reads ``vocab.json`` (token → id) from the archive, tokenizes each text on
whitespace after cleaning it, and feeds the model one padded NxL LongTensor for the batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from modelserve_handlers.base_handler import BaseHandler
from modelserve_handlers.labels import map_class_to_label
from modelserve_handlers.payload import required_payload
from modelserve_handlers.text import VOCAB_FILE, Vocabulary, decode_text
from modelserve_handlers.timing import timed


class TextClassifier(BaseHandler):
    """Per text ``{label: probability}`` over every class.

    The model takes an NxL LongTensor of token ids padded with the ``<pad>`` id (an
    ``nn.EmbeddingBag`` with ``padding_idx`` ignores the padding) and returns NxK scores.
    """

    vocabulary: Vocabulary

    def initialize(self, context: Any) -> None:
        """Load the model and ``vocab.json``."""
        super().initialize(context)
        self.vocabulary = Vocabulary.load(Path(self.model_dir) / VOCAB_FILE)

    @timed
    def preprocess(self, data: list[dict[str, Any]]) -> torch.Tensor:
        """Every request's text as one padded batch of token ids on the device."""
        texts = [decode_text(required_payload(row, "UTF-8 text")) for row in data]
        return self.vocabulary.batch(texts).to(self.device)

    @timed
    def postprocess(self, data: torch.Tensor) -> list[dict[str, Any]]:
        """Softmax over the classes, each labelled through ``index_to_name.json``."""
        return map_class_to_label(torch.softmax(data, dim=1).tolist(), self.mapping)
