from __future__ import annotations

import base64
import itertools
import re
import time

import hashids
import pytest

from tracker.codes import ALPHABET, TAG_LENGTH, CodeBook, new_click_id, new_secret

SECRET = b"0123456789abcdef0123456789abcdef"


@pytest.fixture
def book() -> CodeBook:
    return CodeBook(SECRET)


@pytest.mark.parametrize("link_id", [1, 2, 61, 62, 1000, 10**6, 10**9, 2**53])
def test_round_trip(book: CodeBook, link_id: int) -> None:
    code = book.encode(link_id)
    assert book.verify(code)
    assert book.decode(code) == link_id


@pytest.mark.parametrize(("links", "length"), [(10**6, 8), (10**9, 10)])
def test_code_length_at_scale(book: CodeBook, links: int, length: int) -> None:
    """The README states these lengths; the body grows by one character about every 40x."""
    assert max(len(book.encode(n)) for n in range(links - 1000, links + 1)) == length


def test_body_is_exactly_hashids() -> None:
    """The fast encoder must agree with the hashids library it shortcuts."""
    book = CodeBook(SECRET)
    reference = hashids.Hashids(salt=book._hashids._salt, alphabet=ALPHABET)
    for link_id in [*range(1, 5001), 10**6 + 7, 10**9 + 123, 2**40 + 5, 2**62 + 99]:
        assert book.encode(link_id)[:-TAG_LENGTH] == reference.encode(link_id), link_id


def test_decode_is_exactly_hashids() -> None:
    book = CodeBook(SECRET)
    reference = hashids.Hashids(salt=book._hashids._salt, alphabet=ALPHABET)
    for link_id in [*range(1, 3001), 10**6 + 7, 10**9 + 123, 2**40 + 5]:
        code = book.encode(link_id)
        assert book.decode(code) == link_id == reference.decode(code[:-TAG_LENGTH])[0]


def test_codes_are_alphanumeric_and_unique(book: CodeBook) -> None:
    codes = [book.encode(n) for n in range(1, 20_001)]
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(f"[{ALPHABET}]+", code) for code in codes)


def test_every_single_character_change_is_rejected(book: CodeBook) -> None:
    code = book.encode(123_456)
    for position in range(len(code)):
        for char in ALPHABET:
            if char != code[position]:
                tampered = code[:position] + char + code[position + 1 :]
                assert not book.verify(tampered), tampered


@pytest.mark.parametrize(
    "code", ["", "a", "ab", "abc", "abcd", "ab-cd", "abc$def", "x" * 25, "ééééé", "abc def"]
)
def test_malformed_codes_are_rejected(book: CodeBook, code: str) -> None:
    assert not book.verify(code)
    assert book.decode(code) is None


def test_random_guesses_rarely_pass_the_tag() -> None:
    """A guessed code passes the tag once in 62**3 tries; 20 000 guesses expect < 0.1 passes."""
    book = CodeBook(SECRET)
    guesses = [book.encode(n)[:-TAG_LENGTH] + "aaa" for n in range(1, 20_001)]
    assert sum(book.verify(g) for g in guesses) <= 2


def test_another_secret_gives_other_codes_that_do_not_verify(book: CodeBook) -> None:
    other = CodeBook(b"another secret, also 32 bytes!!!")
    codes = [book.encode(n) for n in range(1, 1001)]
    assert not set(codes) & {other.encode(n) for n in range(1, 1001)}
    assert sum(other.verify(code) for code in codes) <= 1


def test_no_sequential_pattern(book: CodeBook) -> None:
    """Consecutive ids share no prefix and no suffix pattern an enumerator could follow."""
    codes = [book.encode(n) for n in range(10_000, 10_200)]
    shared_prefix = sum(a[:2] == b[:2] for a, b in itertools.pairwise(codes))
    shared_tag = sum(a[-TAG_LENGTH:] == b[-TAG_LENGTH:] for a, b in itertools.pairwise(codes))
    assert shared_prefix < 20
    assert shared_tag == 0
    # Sorting the codes does not sort the ids.
    order = sorted(range(len(codes)), key=codes.__getitem__)
    assert order != list(range(len(codes)))


def test_short_secret_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        CodeBook(b"short")


def test_ids_start_at_one(book: CodeBook) -> None:
    with pytest.raises(ValueError):
        book.encode(0)


def test_secrets_and_click_ids_are_fresh() -> None:
    assert len(new_secret()) == 32
    assert new_secret() != new_secret()
    ids = [new_click_id() for _ in range(5000)]  # crosses several blocks of random bytes
    assert len(set(ids)) == 5000
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{20}", i) for i in ids)


def test_click_ids_carry_the_time_and_72_random_bits() -> None:
    before = time.time_ns() // 1_000_000
    raw = base64.urlsafe_b64decode(new_click_id())
    after = time.time_ns() // 1_000_000
    assert before <= int.from_bytes(raw[:6], "big") <= after
    tails = {base64.urlsafe_b64decode(new_click_id())[6:] for _ in range(2000)}
    assert len(tails) == 2000
    assert all(len(tail) == 9 for tail in tails)
    given = base64.urlsafe_b64decode(new_click_id(1_767_225_600_123))  # the click's own time
    assert int.from_bytes(given[:6], "big") == 1_767_225_600_123


@pytest.mark.parametrize("link_id", [1, 62, 10**6, 10**9])
def test_only_the_encoders_spelling_decodes(book: CodeBook, link_id: int) -> None:
    """The same number with a leading zero digit, even carrying a valid tag, is no code: a
    verified code names exactly one link, so the redirect may trust the id it decodes."""
    body = book.encode(link_id)[:-TAG_LENGTH]
    zero = next(char for char, value in book._values[body[0]].items() if value == 0)
    padded = body[0] + zero + body[1:]
    forged = padded + book._tag(padded)
    assert book.verify(forged)
    assert book.decode(forged) is None
    assert book.decode(book.encode(link_id)) == link_id
