"""tracker.urls: destination checks at issue time and the redirect's ``Location``."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote

import pytest

from tracker.urls import (
    MAX_URL_BYTES,
    UrlError,
    base_destination,
    build_destination,
    check_destination,
    click_id_slot,
    finish_destination,
)

# -- check_destination --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allowed", "expected"),
    [
        ("https://shop.example/sale", (), "https://shop.example/sale"),
        ("http://shop.example", (), "http://shop.example"),
        ("HTTPS://Shop.Example/A?b=c+d&e=%20#f", (), "HTTPS://Shop.Example/A?b=c+d&e=%20#f"),
        ("https://shop.example:8443/x", (), "https://shop.example:8443/x"),
        ("sms:+15551234?body=Hi", ("sms",), "sms:+15551234?body=Hi"),
        ("myapp://open/item/7", ("myapp", "sms"), "myapp://open/item/7"),
        # IRIs are stored in their ASCII form: IDNA host, UTF-8 percent-encoded elsewhere.
        (
            "https://bücher.example/straße?q=ü#frag",
            (),
            "https://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%BC#frag",
        ),
        (
            "https://user@bücher.example:8443/ä",
            (),
            "https://user@xn--bcher-kva.example:8443/%C3%A4",
        ),
        ("https://shop.example/ü", (), "https://shop.example/%C3%BC"),
        # UTS #46, not IDNA 2003: sharp s and final sigma are letters of their own.
        ("https://faß.de/", (), "https://xn--fa-hia.de/"),
        ("https://σίσυφος.gr/", (), "https://xn--kxa6ajbbmh.gr/"),
        ("https://shop.example/" + "a" * (MAX_URL_BYTES - 21), (), None),
    ],
    ids=[
        "https",
        "http-no-path",
        "kept-byte-for-byte",
        "port",
        "sms-allowed",
        "app-scheme-allowed",
        "iri",
        "iri-userinfo-port",
        "non-ascii-path",
        "uts46-sharp-s",
        "uts46-final-sigma",
        "exactly-max-length",
    ],
)
def test_check_destination_accepts(
    url: str, allowed: tuple[str, ...], expected: str | None
) -> None:
    assert check_destination(url, allowed) == (url if expected is None else expected)


@pytest.mark.parametrize(
    ("url", "allowed", "message"),
    [
        (None, (), "must be a string"),
        (42, (), "must be a string"),
        (b"https://shop.example/", (), "must be a string"),
        ("", (), "must not be empty"),
        ("https://shop.example/a b", (), "spaces or control characters"),
        (" https://shop.example/", (), "spaces or control characters"),
        ("https://shop.example/\n", (), "spaces or control characters"),
        ("https://shop.example/\x00", (), "spaces or control characters"),
        ("https://shop.example/\x7f", (), "spaces or control characters"),
        ("https://shop.example/" + "a" * (MAX_URL_BYTES - 20), (), "at most 2048 bytes"),
        ("https://shop.example/" + "ü" * 700, (), "at most 2048 bytes"),
        ("ftp://files.example/x", (), "scheme 'ftp' is not allowed"),
        ("javascript:alert(1)", (), "scheme 'javascript' is not allowed"),
        ("JavaScript:alert(1)", ("javascript",), "scheme 'javascript' is not allowed"),
        ("data:text/html,<b>x</b>", ("data",), "scheme 'data' is not allowed"),
        ("vbscript:x", ("vbscript",), "scheme 'vbscript' is not allowed"),
        ("file:///etc/passwd", ("file",), "scheme 'file' is not allowed"),
        ("sms:+15551234", (), "scheme 'sms' is not allowed"),
        ("/relative/path", (), "absolute URL with a scheme"),
        ("//shop.example/x", (), "absolute URL with a scheme"),
        ("shop.example/x", (), "absolute URL with a scheme"),
        ("https:///x", (), "must name a host"),
        ("https://", (), "must name a host"),
        ("https://x:99999/", (), "not a valid URL"),
        ("https://x:abc/", (), "not a valid URL"),
        ("http://[::1/", (), "not a valid URL"),
    ],
    ids=[
        "none",
        "int",
        "bytes",
        "empty",
        "space",
        "leading-space",
        "newline",
        "nul",
        "del",
        "too-long",
        "too-long-once-encoded",
        "ftp",
        "javascript",
        "javascript-never-allowed",
        "data-never-allowed",
        "vbscript-never-allowed",
        "file-never-allowed",
        "sms-not-allowed-by-default",
        "relative-path",
        "scheme-relative",
        "no-scheme",
        "missing-host",
        "scheme-only",
        "port-out-of-range",
        "port-not-a-number",
        "bad-ipv6",
    ],
)
def test_check_destination_rejects(url: object, allowed: tuple[str, ...], message: str) -> None:
    with pytest.raises(UrlError, match=re.escape(message)):
        check_destination(url, allowed)


def test_url_error_is_a_value_error() -> None:
    assert issubclass(UrlError, ValueError)


# -- build_destination --------------------------------------------------------------------------

D = "https://shop.example/p"
SMS = {"utm_source": "sms"}
NONE: Mapping[str, str] = {}


@pytest.mark.parametrize(
    ("destination", "utm", "params", "passthrough", "click_id_param", "expected"),
    [
        # Step 2: UTM defaults only for keys the destination lacks.
        (D, SMS, None, "", "tclid", D + "?utm_source=sms&tclid=C1"),
        (
            D + "?utm_source=newsletter&x=1",
            {"utm_source": "sms", "utm_medium": "sms"},
            None,
            "",
            "tclid",
            D + "?utm_source=newsletter&x=1&utm_medium=sms&tclid=C1",
        ),
        (D + "?utm_source=", SMS, None, "", "tclid", D + "?utm_source=&tclid=C1"),
        (D + "?utm_source", SMS, None, "", "tclid", D + "?utm_source&tclid=C1"),
        (D + "?utm%5Fsource=x", SMS, None, "", "tclid", D + "?utm%5Fsource=x&tclid=C1"),
        (
            D + "?utm_source=a&utm_source=b",
            SMS,
            None,
            "",
            "tclid",
            D + "?utm_source=a&utm_source=b&tclid=C1",
        ),
        # A variant's utm_content comes in with the UTM defaults, and yields the same way.
        (
            D,
            {"utm_source": "sms", "utm_content": "B"},
            None,
            "",
            "tclid",
            D + "?utm_source=sms&utm_content=B&tclid=C1",
        ),
        (
            D + "?utm_content=hero",
            {"utm_content": "B"},
            None,
            "",
            "tclid",
            D + "?utm_content=hero&tclid=C1",
        ),
        # Existing parameters keep their order and encoding, "+" and "%20" alike.
        (
            D + "?q=a+b&r=c%20d&s=%C3%A9",
            SMS,
            None,
            "",
            "tclid",
            D + "?q=a+b&r=c%20d&s=%C3%A9&utm_source=sms&tclid=C1",
        ),
        (D + "?a=1&&b=2", SMS, None, "", "tclid", D + "?a=1&&b=2&utm_source=sms&tclid=C1"),
        (D + "?a=1&a=2", NONE, None, "", "tclid", D + "?a=1&a=2&tclid=C1"),
        # New values: UTF-8 percent-encoding, space as %20, reserved characters escaped.
        (
            D,
            {"utm_campaign": "Spring sale"},
            {"name": "Zoë", "odd": "&=+#?/%", "empty": ""},
            "",
            "tclid",
            D
            + "?utm_campaign=Spring%20sale&name=Zo%C3%AB&odd=%26%3D%2B%23%3F%2F%25&empty=&tclid=C1",
        ),
        (D, NONE, {"a b": "ü"}, "", "tclid", D + "?a%20b=%C3%BC&tclid=C1"),
        # Step 3: per-recipient params are set: in place, later repeats dropped, else appended.
        (
            D + "?coupon=OLD&x=1",
            NONE,
            {"coupon": "NEW"},
            "",
            "tclid",
            D + "?coupon=NEW&x=1&tclid=C1",
        ),
        (D + "?a=1&b=2&a=3", NONE, {"a": "9"}, "", "tclid", D + "?a=9&b=2&tclid=C1"),
        (D + "?a+b=0&c=1", NONE, {"a b": "1"}, "", "tclid", D + "?a%20b=1&c=1&tclid=C1"),
        (
            D + "?x=1",
            {"utm_source": "sms", "utm_medium": "sms"},
            {"utm_source": "vip"},
            "",
            "tclid",
            D + "?x=1&utm_source=vip&utm_medium=sms&tclid=C1",
        ),
        (
            D + "?utm_source=newsletter",
            SMS,
            {"utm_source": "vip"},
            "",
            "tclid",
            D + "?utm_source=vip&tclid=C1",
        ),
        # Fragments stay last and are never looked into.
        (D + "?x=1#sec", SMS, None, "", "tclid", D + "?x=1&utm_source=sms&tclid=C1#sec"),
        (D + "#sec", SMS, None, "", "tclid", D + "?utm_source=sms&tclid=C1#sec"),
        (D + "#a?b=c", SMS, None, "", "tclid", D + "?utm_source=sms&tclid=C1#a?b=c"),
        (D + "?x=1#tclid=old", NONE, None, "", "tclid", D + "?x=1&tclid=C1#tclid=old"),
        (D + "?#", NONE, None, "", "tclid", D + "?tclid=C1#"),
        # "?" without parameters, and a trailing "&": no leading "&", never "&&".
        (D + "?", SMS, None, "", "tclid", D + "?utm_source=sms&tclid=C1"),
        (D + "?x=1&", SMS, None, "", "tclid", D + "?x=1&utm_source=sms&tclid=C1"),
        (D + "?x=1&", NONE, None, "", "tclid", D + "?x=1&tclid=C1"),
        (D + "?x=1&#f", NONE, None, "", "tclid", D + "?x=1&tclid=C1#f"),
        (D + "?&", NONE, None, "", "tclid", D + "?&tclid=C1"),
        # Nothing to add: the destination comes back byte for byte.
        (D + "?x=1&", NONE, None, "", None, D + "?x=1&"),
        (D + "?", NONE, None, "", None, D + "?"),
        (D + "?a=1&&b=2#f", NONE, None, "", None, D + "?a=1&&b=2#f"),
        # Step 4: passthrough is set after UTM and params, re-encoded.
        (D, SMS, None, "utm_source=facebook", "tclid", D + "?utm_source=facebook&tclid=C1"),
        (
            D + "?utm_source=newsletter&x=1",
            SMS,
            {"coupon": "X1"},
            "coupon=X2&utm%5Fsource=fb",
            "tclid",
            D + "?utm_source=fb&x=1&coupon=X2&tclid=C1",
        ),
        (
            D,
            NONE,
            None,
            "q=a+b%21&e=%C3%A9&raw=é&k&&=orphan&",
            "tclid",
            D + "?q=a%20b%21&e=%C3%A9&raw=%C3%A9&k&tclid=C1",
        ),
        (D, NONE, None, "a=1&b=2&a=3", "tclid", D + "?a=3&b=2&tclid=C1"),
        (D + "?k=v", NONE, None, "k", "tclid", D + "?k&tclid=C1"),
        (D + "?q=a+b", NONE, None, "q=a+b", "tclid", D + "?q=a%20b&tclid=C1"),
        (D, NONE, None, "bad=%ZZ%FF", "tclid", D + "?bad=%25ZZ%EF%BF%BD&tclid=C1"),
        # Step 5: the click id is ours, whatever the passthrough or the destination says.
        (D, NONE, None, "tclid=evil&x=1", "tclid", D + "?x=1&tclid=C1"),
        (D, NONE, None, "tcl%69d=evil&tclid", "tclid", D + "?tclid=C1"),
        (D + "?tclid=old&x=1&tclid=old2", NONE, None, "", "tclid", D + "?tclid=C1&x=1"),
        (D + "?tcl%69d=old&x=1", NONE, None, "", "tclid", D + "?tclid=C1&x=1"),
        (D + "?x=1", NONE, {"tclid": "mine"}, "", "tclid", D + "?x=1&tclid=C1"),
        (D + "?x=1", NONE, None, "", "ref_id", D + "?x=1&ref_id=C1"),
        # The campaign disabled the click id: nothing added, the name is not reserved.
        (D + "?x=1", SMS, None, "", None, D + "?x=1&utm_source=sms"),
        (D + "?tclid=old", NONE, None, "", None, D + "?tclid=old"),
        (D, NONE, None, "tclid=abc", None, D + "?tclid=abc"),
        # Other schemes work the same way; their "+" stays.
        (
            "sms:+15551234?body=Hi+there",
            SMS,
            None,
            "",
            "tclid",
            "sms:+15551234?body=Hi+there&utm_source=sms&tclid=C1",
        ),
    ],
    ids=[
        "plain",
        "utm-kept-not-duplicated",
        "utm-empty-value-counts",
        "utm-bare-key-counts",
        "utm-encoded-key-counts",
        "utm-repeated-kept",
        "variant-utm-content",
        "variant-utm-content-yields",
        "plus-and-percent-kept",
        "blank-segment-kept",
        "repeated-keys-kept",
        "new-values-encoded",
        "new-key-encoded",
        "params-override-in-place",
        "params-override-drops-repeats",
        "params-decoded-key-match",
        "params-override-utm-default",
        "params-override-destination-utm",
        "fragment-with-query",
        "fragment-without-query",
        "fragment-with-question-mark",
        "fragment-with-click-id",
        "empty-query-empty-fragment",
        "question-mark-only",
        "trailing-ampersand",
        "trailing-ampersand-click-only",
        "trailing-ampersand-fragment",
        "ampersand-only",
        "untouched-trailing-ampersand",
        "untouched-question-mark",
        "untouched-blank-segment",
        "passthrough-beats-utm",
        "passthrough-beats-all",
        "passthrough-reencoded",
        "passthrough-last-value-wins",
        "passthrough-bare-key",
        "passthrough-plus-is-space",
        "passthrough-malformed-escapes",
        "passthrough-click-id-ignored",
        "passthrough-encoded-click-id-ignored",
        "destination-click-id-replaced",
        "destination-encoded-click-id-replaced",
        "params-click-id-replaced",
        "custom-click-id-param",
        "click-id-disabled",
        "click-id-disabled-destination-kept",
        "click-id-disabled-passthrough-allowed",
        "sms-scheme",
    ],
)
def test_build_destination(
    destination: str,
    utm: Mapping[str, str],
    params: Mapping[str, str] | None,
    passthrough: str,
    click_id_param: str | None,
    expected: str,
) -> None:
    result = build_destination(destination, utm, params, passthrough, click_id_param, "C1")
    assert result == expected
    # The two halves, as the redirect uses them, give the same answer.
    base = base_destination(destination, utm, params)
    assert finish_destination(base, passthrough, click_id_param, "C1") == expected


@pytest.mark.parametrize(
    ("click_id", "encoded"),
    [("k3J9xQ2mPz", "k3J9xQ2mPz"), ("a-b_c.d~e", "a-b_c.d~e"), ("a b/ü&", "a%20b%2F%C3%BC%26")],
)
def test_click_id_is_encoded(click_id: str, encoded: str) -> None:
    assert finish_destination(D, "", "tclid", click_id) == f"{D}?tclid={encoded}"


@pytest.mark.parametrize(
    ("base", "passthrough", "expected"),
    [
        (D + "?x=1", "", D + "?x=1"),
        (D + "?tclid=old", "", D + "?tclid=old"),
        # The name stays reserved even without an id for this request.
        (D + "?x=1", "tclid=evil&y=2", D + "?x=1&y=2"),
    ],
)
def test_no_click_id_for_this_request(base: str, passthrough: str, expected: str) -> None:
    assert finish_destination(base, passthrough, "tclid", None) == expected


def test_finish_without_anything_to_add_returns_base_itself() -> None:
    base = D + "?x=1#f"
    assert finish_destination(base, "", None, None) is base
    assert finish_destination(base, "", "tclid", None) is base


FAST_PATH_BASES = [
    D,
    D + "?",
    D + "?&",
    D + "?x=1",
    D + "?x=1&",
    D + "?x=1&&",
    D + "#f",
    D + "?#f",
    D + "?x=1#f?tclid=2",
    D + "?tclid=old",
    D + "?a=1&tclid=old&b=2&tclid=again",
    D + "?a=1&tcl%69d=old",
    D + "?a=1&tclid",
    D + "?a=1&tclid=",
    D + "?xtclid=1&tclidx=2&a=tclid",
    D + "?a%20b=c+d&e=%C3%A9",
    D + "?a=x%26tclid%3D1",
    "sms:+1555?body=a+b",
]


@pytest.mark.parametrize("base", FAST_PATH_BASES)
@pytest.mark.parametrize("click_id_param", ["tclid", "t+c", "t%63", None])
@pytest.mark.parametrize("slow_passthrough", ["&", "&&", "{reserved}=spoof&&"])
def test_empty_passthrough_fast_path_equals_slow_path(
    base: str, click_id_param: str | None, slow_passthrough: str
) -> None:
    # A passthrough of blank segments, only the reserved key, or (with no click-id param) only
    # an empty key adds nothing, but takes the general path: the answers must agree.
    slow_passthrough = slow_passthrough.format(reserved=quote(click_id_param or "", safe=""))
    fast = finish_destination(base, "", click_id_param, "C1")
    assert fast == finish_destination(base, slow_passthrough, click_id_param, "C1")


@pytest.mark.parametrize("base", FAST_PATH_BASES)
@pytest.mark.parametrize("click_id_param", ["tclid", "t+c", "t%63"])
def test_click_id_slot_is_the_fast_path_prepared(base: str, click_id_param: str) -> None:
    slot = click_id_slot(base, click_id_param)
    if slot is None:  # the base has the key already: only finish_destination replaces it
        assert click_id_param == "tclid" and "tcl" in base.partition("#")[0]
        return
    for click_id in ("C1", "AaIIIeOG-wsdpGcoUOAa"):
        before, after = slot
        assert before + click_id + after == finish_destination(base, "", click_id_param, click_id)


# -- properties ---------------------------------------------------------------------------------

_KEYS = ["a", "b", "utm_source", "utm_content", "tclid", "tcl%69d", "t+c", "x%20y", "%C3%BC"]
_VALUES = ["", "1", "a+b", "c%20d", "%C3%A9", "x=y", "%26", "tclid", "%ZZ"]
_PASS_KEYS = ["a", "utm_source", "tclid", "TCLID", "tcl%69d", "ü", "a+b", "", "q"]
_PASS_VALUES = ["", "1", "é", "a+b", "%2B", "%ZZ", "x=y"]
_NEW_VALUES = ["", "sms", "Spring sale", "Zoë", "&=#?+%", "tclid=x"]
_CLICK_IDS = ["C1", "k3J9xQ2mPz", "a b", "ü/?&=#"]


def _random_segment(rng: random.Random, keys: list[str], values: list[str]) -> str:
    shape = rng.random()
    if shape < 0.1:
        return ""
    if shape < 0.25:
        return rng.choice(keys)
    return f"{rng.choice(keys)}={rng.choice(values)}"


def _random_query(rng: random.Random, keys: list[str], values: list[str]) -> str:
    return "&".join(_random_segment(rng, keys, values) for _ in range(rng.randrange(5)))


def _random_destination(rng: random.Random) -> str:
    url = rng.choice(["https://shop.example", "https://shop.example/p/q", "sms:+1555"])
    shape = rng.random()
    if shape < 0.2:
        pass
    elif shape < 0.3:
        url += "?"
    else:
        url += "?" + _random_query(rng, _KEYS, _VALUES)
    if rng.random() < 0.5:
        url += rng.choice(["#", "#top", "#a?tclid=zz&b", "#tclid=1"])
    return url


def _random_mapping(rng: random.Random, keys: list[str]) -> dict[str, str]:
    return {rng.choice(keys): rng.choice(_NEW_VALUES) for _ in range(rng.randrange(4))}


def test_build_destination_properties() -> None:
    rng = random.Random(20240501)
    for _ in range(3000):
        destination = _random_destination(rng)
        utm = _random_mapping(rng, ["utm_source", "utm_medium", "utm_content", "tclid"])
        params = _random_mapping(rng, ["coupon", "a", "utm_source", "tclid", "a b", "ü"]) or None
        passthrough = _random_query(rng, _PASS_KEYS, _PASS_VALUES)
        click_id = rng.choice(_CLICK_IDS)
        context = (destination, utm, params, passthrough, click_id)

        result = build_destination(destination, utm, params, passthrough, "tclid", click_id)

        head = re.split(r"[?#]", destination, maxsplit=1)[0]
        assert result.startswith(head), context
        if "#" in destination:
            assert result.endswith(destination[destination.index("#") :]), context
        query = result.partition("#")[0].partition("?")[2]
        pairs = parse_qsl(query, keep_blank_values=True)
        assert [value for key, value in pairs if key == "tclid"] == [click_id], context
        assert result.isascii(), context
        assert " " not in result, context

        base = base_destination(destination, utm, params)
        assert finish_destination(base, passthrough, "tclid", click_id) == result, context
        fast = finish_destination(base, "", "tclid", click_id)
        assert fast == finish_destination(base, "&", "tclid", click_id), context


@pytest.mark.parametrize(
    "passthrough",
    [
        "a=%0D%0ASet-Cookie:%20x=1",
        "a=\r\nSet-Cookie: x=1",
        "%0d%0a=1&b=%00%7f",
        "k=caf%C3%A9&n=%FF&u=\u00e9\u20ac",
        "x=\x00\x1f\x7f\x80",
    ],
)
def test_a_location_is_printable_ascii_whatever_the_query(passthrough: str) -> None:
    """The protocol writes ``Location`` as it is (tracker.web.protocol): no query a client
    sends may put a control character or a non-ASCII byte in it."""
    location = finish_destination("https://shop.example/p?a=1", passthrough, "tclid", "C1")
    assert location.isascii() and location.isprintable() and " " not in location
