"""The Tracker-Signature scheme: what verifies and what does not."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from tracker import signatures as sig

NOW = 1_800_000_000
BODY = b'{"event":"purchase","order_id":"A17"}'


def test_sign_matches_the_documented_formula() -> None:
    expected = hmac.new(b"whsec_x", b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert sig.sign("whsec_x", BODY, NOW) == f"t=1800000000,v1={expected}"


def test_a_signed_body_verifies() -> None:
    sig.verify(sig.sign("s1", BODY, NOW), BODY, ["s1"], NOW)


def test_either_secret_verifies_during_a_rotation() -> None:
    sig.verify(sig.sign("old", BODY, NOW), BODY, ["new", "old"], NOW)
    sig.verify(sig.sign("new", BODY, NOW), BODY, ["new", "old"], NOW)


def test_several_v1_values_any_may_match() -> None:
    good = sig.sign("s1", BODY, NOW).split(",")[1]
    sig.verify(f"t={NOW},v1={'0' * 64},{good}", BODY, ["s1"], NOW)


@pytest.mark.parametrize("skew", [-300, 300, 0])
def test_five_minutes_either_way_still_verify(skew: int) -> None:
    sig.verify(sig.sign("s1", BODY, NOW + skew), BODY, ["s1"], NOW)


@pytest.mark.parametrize("skew", [-301, 301, -86400])
def test_stale_or_future_timestamps_are_refused(skew: int) -> None:
    with pytest.raises(sig.SignatureError, match="300 s"):
        sig.verify(sig.sign("s1", BODY, NOW + skew), BODY, ["s1"], NOW)


def test_a_body_altered_after_signing_is_refused() -> None:
    header = sig.sign("s1", BODY, NOW)
    with pytest.raises(sig.SignatureError, match="does not match"):
        sig.verify(header, BODY.replace(b"A17", b"A18"), ["s1"], NOW)


def test_the_wrong_secret_or_no_secret_is_refused() -> None:
    header = sig.sign("s1", BODY, NOW)
    for secrets in (["s2"], []):
        with pytest.raises(sig.SignatureError, match="does not match"):
            sig.verify(header, BODY, secrets, NOW)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"t={NOW}",
        "v1=abcd",
        f"t=-{NOW},v1=ab",
        f"t={NOW}.5,v1=ab",
        "t=²,v1=ab",
        f"t={NOW},v1=",
        f"t={'9' * 40},v1=ab",
    ],
)
def test_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(sig.SignatureError, match="must be"):
        sig.verify(header, BODY, ["s1"], NOW)


def test_non_ascii_digests_are_refused_not_crashed() -> None:
    with pytest.raises(sig.SignatureError, match="does not match"):
        sig.verify(f"t={NOW},v1=é{'a' * 63}", BODY, ["s1"], NOW)


def test_secrets_are_derived_from_key_and_salt() -> None:
    one = sig.derive_secret(b"k" * 32, b"salt-1")
    assert one.startswith("whsec_") and len(one) == 6 + 43
    assert one == sig.derive_secret(b"k" * 32, b"salt-1")
    assert one != sig.derive_secret(b"k" * 32, b"salt-2")
    assert one != sig.derive_secret(b"K" * 32, b"salt-1")
    assert len(sig.new_salt()) == 16 and sig.new_salt() != sig.new_salt()
