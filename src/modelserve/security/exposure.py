"""Which doors are open: token authorization on or off, and whether model control is allowed.

A server reachable only from this machine behaves as a local tool (register with a plain
curl, as the README shows). Once a plane listens on another address, keys are required by
default, and model control (register, unregister) is refused without them: an open
management API on a network is how TorchServe installations were taken over ("ShellTorch").
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from modelserve.config import Address, ConfigError, Settings
from modelserve.security.tokens import GeneratedKeys, KeyVerifier, StaticToken, TokenError

log = logging.getLogger("modelserve.security")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only; unknown names count as public."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AccessPolicy:
    """The authorization decisions the planes act on."""

    # None = no token needed anywhere.
    verifier: KeyVerifier | None
    # Why register/unregister are refused, or None when they are allowed.
    model_control_refusal: str | None

    @property
    def generated_keys(self) -> GeneratedKeys | None:
        """The key file keys, when those (not a static token) are in use."""
        return self.verifier if isinstance(self.verifier, GeneratedKeys) else None


def worker_token(policy: AccessPolicy) -> str | None:
    """The token the server's own workers present on its inference plane: the static token,
    or the key file's workers' key (which does not expire); None with no authorization."""
    verifier = policy.verifier
    if isinstance(verifier, StaticToken):
        return verifier.token
    if isinstance(verifier, GeneratedKeys):
        return verifier.worker_key
    return None


def token_auth_wanted(settings: Settings) -> bool:
    """Explicit ``disable_token_authorization`` wins; unset means on once a plane is public."""
    if settings.disable_token_authorization is not None:
        return not settings.disable_token_authorization
    if settings.auth_token or settings.auth_token_file:
        return True
    return not all(is_loopback(address.host) for address in _keyed_addresses(settings))


def _keyed_addresses(settings: Settings) -> list[Address]:
    """The listeners that need keys: the inference and management planes and their gRPC ports."""
    addresses = [settings.address(plane) for plane in ("inference", "management")]
    if settings.enable_grpc:
        addresses += [settings.grpc_address(plane) for plane in ("inference", "management")]
    return addresses


def _verifier(settings: Settings) -> KeyVerifier | None:
    if not token_auth_wanted(settings):
        if settings.auth_token or settings.auth_token_file:
            log.warning("token authorization is disabled: the configured static token is unused")
        return None
    try:
        if settings.auth_token and settings.auth_token_file:
            raise TokenError("set auth_token or auth_token_file, not both")
        if settings.auth_token:
            return StaticToken(settings.auth_token)
        if settings.auth_token_file:
            return StaticToken.from_file(settings.auth_token_file)
    except TokenError as exc:
        raise ConfigError(f"auth_token: {exc}") from exc
    return GeneratedKeys(settings.key_file, settings.token_expiration_min * 60)


def _model_control_refusal(settings: Settings, verifier: KeyVerifier | None) -> str | None:
    if not settings.enable_model_api:
        return "Model registration and removal are disabled (enable_model_api=false)"
    addresses = [settings.address("management")]
    if settings.enable_grpc:
        addresses.append(settings.grpc_address("management"))
    public = [address for address in addresses if not is_loopback(address.host)]
    if verifier is None and public:
        address = public[0]
        return (
            f"Model registration and removal are refused: the management API listens on "
            f"{address} without token authorization. Enable token authorization (set "
            "auth_token or remove disable_token_authorization) or listen on 127.0.0.1."
        )
    return None


def access_policy(settings: Settings) -> AccessPolicy:
    """Decide, once at startup, what the planes require."""
    verifier = _verifier(settings)
    return AccessPolicy(verifier, _model_control_refusal(settings, verifier))
