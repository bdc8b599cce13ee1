"""A token generator: answers each request with numbered pieces, one every ``delay`` seconds,
sent to the client as each is made (docs/streaming.md).

A request is JSON: ``{"pieces": 10, "delay": 0.1}`` (both optional). The answer is
``token 1 of 10`` … ``token 10 of 10``, one line per piece. Requests batched together get
their pieces side by side, one round every ``delay``; a request whose client went away gets
no more pieces, and the generation stops once no client is left.

``inference`` is a generator: modelserve's ``BaseHandler`` sends what each step yields (after
``postprocess``) at once, one piece per request of the batch.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from ts.torch_handler.base_handler import BaseHandler
from ts.utils.util import PredictionException

log = logging.getLogger(__name__)

DEFAULT_PIECES = 10
DEFAULT_DELAY_S = 0.1
MAX_PIECES = 100_000
MAX_DELAY_S = 10.0
USAGE = 'expected a JSON object like {"pieces": 10, "delay": 0.1}'


class TokenGenerator(BaseHandler):
    """Numbered pieces for every request of the batch, one round every ``delay``."""

    def initialize(self, context: Any) -> None:
        """Nothing to load: the "model" is a counter."""
        self.context = context
        self.initialized = True

    def preprocess(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each request's JSON, its ``pieces`` and ``delay`` checked and filled in (400 for
        values out of range). (A handler module holds one class only, so no request class.)"""
        return [self._parse(row.get("data") or row.get("body") or {}) for row in data]

    def inference(self, requests: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Iterator[Any]:
        """One round per piece: the batch's pieces, None for a request that has all its
        pieces or whose client went away."""
        delay_s = max(request["delay"] for request in requests)
        gone: set[int] = set()
        for index in range(1, max(request["pieces"] for request in requests) + 1):
            self.before_piece(index, requests)
            time.sleep(delay_s)
            wanted = []
            for i, request in enumerate(requests):
                if i not in gone and self.context.is_cancelled(i):
                    gone.add(i)
                    self.cancelled(i, min(index - 1, request["pieces"]))
                wanted.append(i not in gone and index <= request["pieces"])
            if not any(wanted):
                return  # nobody listens any more: the worker is free again
            yield [
                f"token {index} of {request['pieces']}\n" if wanted[i] else None
                for i, request in enumerate(requests)
            ]

    def postprocess(self, data: Any) -> Any:
        """The round's pieces as they are."""
        return data

    # ----- where a subclass can pace the generation and see cancellations

    def before_piece(self, index: int, requests: list[dict[str, Any]]) -> None:
        """Called before the batch's piece ``index`` (from 1) is made."""

    def cancelled(self, request_index: int, pieces_sent: int) -> None:
        """Request ``request_index`` of the batch was cancelled after ``pieces_sent`` pieces."""
        log.info("request %d of the batch cancelled after %d pieces", request_index, pieces_sent)

    # ----- internals

    def _parse(self, body: Any) -> dict[str, Any]:
        if isinstance(body, str | bytes | bytearray):  # a text body (grps str_data) too
            try:
                body = json.loads(body or b"{}")
            except ValueError:
                body = None
        if not isinstance(body, dict):
            raise PredictionException(USAGE, 400)
        pieces = body.get("pieces", DEFAULT_PIECES)
        delay_s = body.get("delay", DEFAULT_DELAY_S)
        if isinstance(pieces, bool) or not isinstance(pieces, int) or not 1 <= pieces <= MAX_PIECES:
            raise PredictionException(f'"pieces" must be an integer from 1 to {MAX_PIECES}', 400)
        if isinstance(delay_s, bool) or not isinstance(delay_s, int | float):
            delay_s = -1
        if not 0 <= delay_s <= MAX_DELAY_S:
            raise PredictionException(
                f'"delay" must be a number of seconds from 0 to {MAX_DELAY_S:g}', 400
            )
        return {**body, "pieces": pieces, "delay": float(delay_s)}
