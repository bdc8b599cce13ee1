"""Text cleaning, tokenizing and the ``vocab.json`` vocabulary of the text classifier."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modelserve_handlers.errors import BadInputError
from modelserve_handlers.payload import payload_kind

VOCAB_FILE = "vocab.json"
PAD_TOKEN = "<pad>"
UNKNOWN_TOKEN = "<unk>"
# HTML tags and character entities (&amp; &#39; &#x27;), as TorchServe's text handler strips them.
HTML_MARKUP = re.compile(r"<.*?>|&([a-z0-9]+|#[0-9]{1,6}|#x[0-9a-f]{1,6});")
PUNCTUATION = re.compile(r"[^\w\s]")


def decode_text(payload: Any) -> str:
    """A request payload as text: UTF-8 bytes or an already decoded string."""
    if isinstance(payload, str):
        return payload
    if isinstance(payload, bytes | bytearray):
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInputError(f"the text is not valid UTF-8: {exc}") from None
    raise BadInputError(f"expected UTF-8 text or a JSON string, got {payload_kind(payload)}")


def _strip_accents(text: str) -> str:
    # Decomposing and dropping the combining marks turns "é" into "e" but keeps letters of
    # scripts without an ASCII form (TorchServe drops every non-ASCII character).
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def tokenize(text: str) -> list[str]:
    """Markup removed, lower case, accents and punctuation dropped, split on whitespace."""
    text = HTML_MARKUP.sub("", text).lower()
    return PUNCTUATION.sub("", _strip_accents(text)).split()


@dataclass(frozen=True)
class Vocabulary:
    """Token → id; ``<pad>`` pads (id 0 when absent), ``<unk>`` stands for unknown tokens."""

    ids: dict[str, int]

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        """Read ``{"token": id, …}``; a missing or malformed file says what is wrong."""
        if not path.is_file():
            raise FileNotFoundError(
                f"{path.name} is missing from the archive: the text classifier needs a JSON "
                f'object of token → id (for example {{"{PAD_TOKEN}": 0, "{UNKNOWN_TOKEN}": 1, '
                f'"good": 2}}), packed with --extra-files'
            )
        ids = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(ids, dict) or not all(
            isinstance(token, str) and isinstance(index, int) for token, index in ids.items()
        ):
            raise ValueError(f"{path.name} must map each token (a string) to an integer id")
        return cls(ids)

    @property
    def pad_id(self) -> int:
        """The id that fills short sequences."""
        return self.ids.get(PAD_TOKEN, 0)

    def encode(self, tokens: list[str]) -> list[int]:
        """Token ids; unknown tokens become ``<unk>``, or are skipped when there is none."""
        unknown = self.ids.get(UNKNOWN_TOKEN)
        ids = (self.ids.get(token, unknown) for token in tokens)
        return [index for index in ids if index is not None]

    def batch(self, texts: list[str]) -> torch.Tensor:
        """An NxL LongTensor of token ids, padded to the longest text (at least 1 column)."""
        rows = [self.encode(tokenize(text)) for text in texts]
        width = max(1, *(len(row) for row in rows))
        return torch.tensor([row + [self.pad_id] * (width - len(row)) for row in rows])
