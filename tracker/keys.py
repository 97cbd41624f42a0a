"""API keys: their format, their scopes, and how they are hashed.

A key reads ``trk_<key id>_<secret>``. The key id (public, 12 characters) finds the stored
record; the SHA-256 of the whole key is stored, never the key, and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import NamedTuple

SCOPES = ("links:write", "events:write", "conversions:write", "stats:read", "admin")
PREFIX = "trk_"
_KEY_ID_LENGTH = 12


class NewKey(NamedTuple):
    key: str  # shown once, never stored
    key_id: str
    key_hash: str


def generate() -> NewKey:
    key_id = secrets.token_hex(_KEY_ID_LENGTH // 2)
    key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return NewKey(key, key_id, hash_key(key))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The key id inside ``key``, or ``None`` when it does not look like one of our keys."""
    if not key.startswith(PREFIX):
        return None
    key_id, sep, secret = key[len(PREFIX) :].partition("_")
    if not sep or len(key_id) != _KEY_ID_LENGTH or not secret:
        return None
    return key_id


def matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)


def check_scopes(scopes: list[str]) -> frozenset[str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    return frozenset(scopes)
