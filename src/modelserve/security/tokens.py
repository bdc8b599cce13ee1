"""Bearer keys: TorchServe 0.12's generated key file, or one static token for containers.

TorchServe writes ``key_file.json`` with a management key and an inference key that expire,
and an API key that never does and may regenerate the other two. Containers cannot follow a
key that changes every hour, so a fixed token (from the environment or a mounted secret) can
replace the file altogether.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Protocol

import orjson

# 32 random bytes; TorchServe's 6-byte keys can be guessed by a patient client.
KEY_BYTES = 32
# A static token shorter than this is a password, not a key.
MIN_STATIC_TOKEN_LENGTH = 16
# What a call without the right key is told, on every plane and protocol (TorchServe's words).
AUTH_FAILED_MESSAGE = (
    "Token Authorization failed. Token either incorrect, expired, or not provided correctly"
)


class KeyKind(Enum):
    """The three keys of TorchServe's key file, under its names."""

    MANAGEMENT = "management"
    INFERENCE = "inference"
    API = "API"


class TokenError(ValueError):
    """A static token or key file setting that cannot be used."""


class KeyVerifier(Protocol):
    """What the planes ask: does this presented key open that kind of door?"""

    def verify(self, kind: KeyKind, presented: str) -> bool:
        """True when ``presented`` is the current, unexpired key of ``kind``."""
        ...


@dataclass
class _Key:
    value: str
    expires_at: float | None  # epoch seconds; None never expires


def _new_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


def _same(presented: str, expected: str) -> bool:
    # Constant time, so response timing does not reveal how much of a guess was right.
    return hmac.compare_digest(presented.encode(), expected.encode())


def _instant(epoch: float) -> str:
    """Java's ``Instant.toString()`` form, which TorchServe writes: UTC, milliseconds, ``Z``."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class GeneratedKeys:
    """TorchServe's key file: expiring management and inference keys, and a lasting API key."""

    def __init__(
        self, path: Path, lifetime_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.lifetime_s = lifetime_s
        self._clock = clock
        self._keys = {kind: self._fresh(kind) for kind in KeyKind}
        # The server's own workers' key (a Python model's BLS calls): it opens the inference
        # plane, never expires and is never written to the key file.
        self.worker_key = _new_key()

    def _fresh(self, kind: KeyKind) -> _Key:
        expires = None if kind is KeyKind.API else self._clock() + self.lifetime_s
        return _Key(_new_key(), expires)

    def verify(self, kind: KeyKind, presented: str) -> bool:
        """True when ``presented`` is the current key of ``kind`` and has not expired, or the
        workers' key at the inference plane."""
        if kind is KeyKind.INFERENCE and _same(presented, self.worker_key):
            return True
        key = self._keys[kind]
        if not _same(presented, key.value):
            return False
        return key.expires_at is None or self._clock() < key.expires_at

    def regenerate(self, kind: KeyKind) -> dict[str, dict[str, str]]:
        """A new management or inference key with a new expiry; the file is rewritten."""
        if kind is KeyKind.API:
            raise TokenError("the API key cannot be regenerated")
        self._keys[kind] = self._fresh(kind)
        self.write()
        return {kind.value: self._entry(kind)}

    def _entry(self, kind: KeyKind) -> dict[str, str]:
        key = self._keys[kind]
        entry = {"key": key.value}
        if key.expires_at is not None:
            entry["expiration time"] = _instant(key.expires_at)
        return entry

    def write(self) -> None:
        """Write the key file, readable by the server's user only, atomically."""
        document = {kind.value: self._entry(kind) for kind in KeyKind}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        # Created 0600 from the start: a chmod after writing would leave a window.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as output:
                output.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
                output.flush()
                os.fsync(output.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def remove(self) -> None:
        """Delete the key file (at shutdown: the keys die with the server)."""
        self.path.unlink(missing_ok=True)


class StaticToken:
    """One fixed token that opens every door and never expires."""

    def __init__(self, token: str) -> None:
        token = token.strip()
        if len(token) < MIN_STATIC_TOKEN_LENGTH:
            raise TokenError(
                f"the static token must be at least {MIN_STATIC_TOKEN_LENGTH} characters "
                "(e.g. from: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        self._token = token

    @classmethod
    def from_file(cls, path: Path) -> StaticToken:
        """The token held in a secret file (surrounding whitespace ignored)."""
        try:
            return cls(path.read_text())
        except OSError as exc:
            raise TokenError(f"cannot read {path}: {exc.strerror}") from exc

    @property
    def token(self) -> str:
        """The token itself: what the server's own workers present (BLS)."""
        return self._token

    def verify(self, kind: KeyKind, presented: str) -> bool:
        """True when ``presented`` is the token; ``kind`` does not matter."""
        return _same(presented, self._token)
