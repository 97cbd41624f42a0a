"""The ``Tracker-Signature`` scheme for server-to-server conversions (DESIGN.md §4).

``Tracker-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``.
A request verifies when ``t`` is within ``TOLERANCE_SECONDS`` of now and one ``v1`` matches
the HMAC under one of the workspace's current secrets (two during a rotation). Digests are
compared in constant time.

Secrets are not stored: each is derived from the server's webhook key and a random salt
that is (docs/decisions/0008), so the secrets table alone reveals none of them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import NamedTuple

HEADER = "tracker-signature"
TOLERANCE_SECONDS = 300
SECRET_PREFIX = "whsec_"


class SignatureError(Exception):
    """Why a signature does not verify; the message is safe to show to the sender."""


def new_salt() -> bytes:
    return secrets.token_bytes(16)


def derive_secret(webhook_key: bytes, salt: bytes) -> str:
    digest = hmac.new(webhook_key, salt, hashlib.sha256).digest()
    return SECRET_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value a sender sends (used by the docs' example, the CLI and the tests)."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


class Signature(NamedTuple):
    timestamp: int
    candidates: list[bytes]  # the v1 digests, lower-case hex


def parse(header: str, now: float) -> Signature:
    """The header's timestamp and digests; raises ``SignatureError`` when it is malformed
    or ``t`` is more than ``TOLERANCE_SECONDS`` away — before the body is even read."""
    timestamp: int | None = None
    candidates: list[bytes] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value.lower().encode())
    if timestamp is None or not candidates:
        raise SignatureError("Tracker-Signature must be 't=<unix seconds>,v1=<hex hmac>'")
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise SignatureError(
            f"the signature's timestamp is more than {TOLERANCE_SECONDS} s away from now"
        )
    return Signature(timestamp, candidates)


def check(signature: Signature, body: bytes, secrets_: Iterable[str]) -> None:
    """Raises ``SignatureError`` unless a digest is the body's HMAC under one secret."""
    matched = False
    for secret in secrets_:
        expected = _digest(secret, signature.timestamp, body).encode()
        for candidate in signature.candidates:
            # Every comparison runs, so the time taken does not tell which one matched.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError("the signature does not match the body")


def verify(header: str, body: bytes, secrets_: Iterable[str], now: float) -> None:
    """Raises ``SignatureError`` unless ``header`` signs ``body`` under one of ``secrets_``."""
    check(parse(header, now), body, secrets_)


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
