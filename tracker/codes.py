"""Short codes and click ids.

A code is ``<body><tag>``: the body is the link's numeric id encoded with hashids under a
salt derived from the server secret, the tag is ``TAG_LENGTH`` base-62 characters of a keyed
BLAKE2b MAC over the body. The hot path recomputes the tag (≈ 1 µs), answers 404 without
touching the store when it does not verify, and decodes the id from precomputed tables
(≈ 1 µs, where hashids' own decoder takes ≈ 20 µs). Without the secret, the code of
link n+1 cannot be derived from the code of link n, and a guessed code passes the tag check
once in 62³ = 238 328 tries. See docs/decisions/0001-short-codes.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time

import hashids  # type: ignore[import-untyped]

ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
TAG_LENGTH = 3
MAX_CODE_LENGTH = 24
_BASE = len(ALPHABET)
_ALLOWED = frozenset(ALPHABET)
_PAIRS = [a + b for a in ALPHABET for b in ALPHABET]  # TAG_LENGTH = 3: two from here, one more
_PAIR_COUNT = len(_PAIRS)


class CodeBook:
    """Encodes link ids to short codes and checks codes, under one server secret."""

    __slots__ = ("_digits", "_hashids", "_lottery", "_mac", "_values")

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the code secret must be at least 16 bytes")
        salt = hashlib.blake2b(secret, person=b"tracker-salt").hexdigest()
        self._hashids = hashids.Hashids(salt=salt, alphabet=ALPHABET)
        mac_key = hashlib.blake2b(secret, person=b"tracker-mac").digest()
        self._mac = hashlib.blake2b(key=mac_key, digest_size=8)  # copied per tag: cheaper
        # Hashids encodes one number as a "lottery" character chosen by ``n % 100`` followed
        # by n's digits in an alphabet reshuffled for that lottery. There are only 100 such
        # alphabets, so shuffle them once with hashids' own reorder: encoding then costs
        # ≈ 1.5 µs instead of ≈ 12 µs. tests/unit/test_codes.py checks it against
        # Hashids.encode.
        alphabet: str = self._hashids._alphabet
        self._lottery = [alphabet[r % len(alphabet)] for r in range(100)]
        self._digits = [
            hashids._reorder(alphabet, (lottery + salt + alphabet)[: len(alphabet)])
            for lottery in self._lottery
        ]
        # Decoding inverts the same tables: the lottery character names the alphabet.
        self._values = {
            lottery: {char: value for value, char in enumerate(digits)}
            for lottery, digits in zip(self._lottery, self._digits, strict=True)
        }

    def encode(self, link_id: int) -> str:
        """The short code of link ``link_id`` (a positive integer)."""
        if link_id < 1:
            raise ValueError("link ids start at 1")
        digits: str = self._digits[link_id % 100]
        base = len(digits)
        body = ""
        number = link_id
        while number:
            number, digit = divmod(number, base)
            body = digits[digit] + body
        body = self._lottery[link_id % 100] + body
        return body + self._tag(body)

    def verify(self, code: str) -> bool:
        """Whether ``code`` carries a valid tag: a forged or mistyped code fails here."""
        if not TAG_LENGTH < len(code) <= MAX_CODE_LENGTH or not _ALLOWED.issuperset(code):
            return False
        body, tag = code[:-TAG_LENGTH], code[-TAG_LENGTH:]
        return hmac.compare_digest(self._tag(body), tag)

    def decode(self, code: str) -> int | None:
        """The link id inside ``code``, or ``None`` when its tag does not verify or it is no
        code of ours. ≈ 3 µs, tag check included (hashids' own decode takes ≈ 20 µs).

        Only ``encode``'s own spelling decodes (no leading zero digit), so a verified code
        names one link and each link has one code: a redirect may trust the id it gets
        without reading the link's stored code."""
        # ``verify``, inlined: this runs for every redirect missing the link cache.
        if not TAG_LENGTH < len(code) <= MAX_CODE_LENGTH or not _ALLOWED.issuperset(code):
            return None
        body = code[:-TAG_LENGTH]
        if not hmac.compare_digest(self._tag(body), code[-TAG_LENGTH:]):
            return None
        values = self._values.get(body[0])
        if values is None or len(body) < 2:
            return None
        if values.get(body[1]) == 0:
            return None  # a leading zero: not how ``encode`` writes any id
        base = len(values)
        number = 0
        for char in body[1:]:
            value = values.get(char)
            if value is None:
                return None
            number = number * base + value
        if number < 1 or self._lottery[number % 100] != body[0]:
            return None
        return number

    def _tag(self, body: str) -> str:
        mac = self._mac.copy()
        mac.update(body.encode())
        number = int.from_bytes(mac.digest()[:4], "big")
        return _PAIRS[number % _PAIR_COUNT] + ALPHABET[number // _PAIR_COUNT % _BASE]


def new_secret() -> bytes:
    """A fresh server secret (32 random bytes)."""
    return secrets.token_bytes(32)


class ClickIds:
    """Fresh click ids: 48 bits of the time in milliseconds, then 72 random bits, as 20
    URL-safe base64 characters.

    The time first keeps the unique index on click ids appending near one place instead of
    all over the B-tree; the 72 random bits make ids unguessable. Both parts are whole groups
    of three bytes, so each encodes on its own: the time's 8 characters are kept for the
    millisecond they stand for, and random bytes are read from the OS and encoded 512 ids at
    a time (one syscall per block) — ≈ 0.3 µs an id where encoding each one took ≈ 1.5 µs.
    A forked child starts a fresh block, so parent and child never share random bits.
    """

    __slots__ = ("_millis", "_offset", "_random", "_time")
    _BLOCK = 512

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._random = ""  # 12 characters per id: 9 random bytes each
        self._offset = 0
        self._millis = -1
        self._time = ""

    def __call__(self, millis: int | None = None) -> str:
        """A new id; ``millis`` is the time to carry (default: now), e.g. the click's."""
        if millis is None:
            millis = time.time_ns() // 1_000_000
        if millis != self._millis:
            self._millis = millis
            self._time = base64.urlsafe_b64encode(millis.to_bytes(6, "big")).decode()
        start = self._offset
        if start >= len(self._random):
            self._random = base64.urlsafe_b64encode(os.urandom(9 * self._BLOCK)).decode()
            start = 0
        self._offset = start + 12
        return self._time + self._random[start : start + 12]


# The bound method, not the instance: calling an instance looks ``__call__`` up on its type
# each time (≈ 0.1 µs, on every redirect).
new_click_id = ClickIds().__call__
