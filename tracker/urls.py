"""Destination URLs: validation at issue time, and the ``Location`` of a redirect.

A destination is kept byte for byte, with one exception: a URL carrying non-ASCII
characters (an IRI, as people paste them) is stored in its ASCII form — the host in IDNA,
everything else percent-encoded as UTF-8 — because an HTTP ``Location`` header is ASCII and a
browser would send exactly those bytes anyway.

A redirect's ``Location`` is built in two parts (DESIGN.md §4, "Redirect"):
``base_destination`` runs once per link (destination, UTM defaults, per-recipient params) and
the caller caches its result; ``finish_destination`` runs on every request (the short URL's
own query, then the click id). The query-string rules both share:

* A query is split on ``&`` only. A key is compared *decoded* (``unquote_plus`` of the raw key,
  so ``utm%5Fsource`` and ``utm_source`` are one key, and ``a+b`` is ``a b``); a segment
  without ``=`` is a key with no value, and it counts as present.
* Existing segments are never re-encoded or reordered; blank segments (``a=1&&b=2``) are kept
  as they are. "Set" replaces the first segment with that key in place and drops the later
  ones; a key not yet present is appended at the end. One trailing ``&`` (or a bare ``?``)
  is taken up by the first appended segment, so appending never creates an ``&&``.
* New keys and values are percent-encoded as UTF-8 with only RFC 3986 unreserved characters
  left as they are (a space is ``%20``, never ``+``). An empty value is written ``key=``.
* The fragment is everything from the first ``#``; it is never looked into (``#a?b=c`` is a
  fragment) and stays last. The query is between the first ``?`` before it and the fragment.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

import idna

MAX_URL_BYTES = 2048
WEB_SCHEMES = frozenset({"http", "https"})
# Schemes that can never be allowed: they run code or read local data in a browser.
FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob", "about"})
_SAFE_ASCII = "".join(chr(c) for c in range(0x21, 0x7F))
# RFC 3986 unreserved characters: the only ones a new query key or value carries unencoded.
_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"


class UrlError(ValueError):
    """A destination that cannot be used; the message says why, for the client."""


def check_destination(url: object, allowed_schemes: Collection[str] = ()) -> str:
    """The destination as it will be stored, or ``UrlError``.

    ``allowed_schemes`` are the workspace's extra schemes besides http and https
    (e.g. ``sms`` or an app's deep-link scheme).
    """
    if not isinstance(url, str):
        raise UrlError("must be a string")
    if not url:
        raise UrlError("must not be empty")
    if any(ch <= " " or ch == "\x7f" for ch in url):
        raise UrlError("must not contain spaces or control characters")
    if not url.isascii():
        url = _to_ascii(url)
    if len(url) > MAX_URL_BYTES:
        raise UrlError(f"must be at most {MAX_URL_BYTES} bytes")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as error:
        raise UrlError(f"is not a valid URL ({error})") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise UrlError("must be an absolute URL with a scheme, e.g. https://")
    if scheme in WEB_SCHEMES:
        if not hostname:
            raise UrlError("must name a host")
        return url
    if scheme in FORBIDDEN_SCHEMES or scheme not in allowed_schemes:
        raise UrlError(f"scheme {scheme!r} is not allowed (http and https are)")
    return url


def _to_ascii(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError as error:
        raise UrlError(f"is not a valid URL ({error})") from None
    netloc = parts.netloc
    if host and not host.isascii():
        try:
            # UTS #46 without transitional mapping, as browsers do: faß.de stays faß.de
            # (xn--fa-hia.de), where Python's IDNA 2003 codec would make it fass.de.
            ascii_host = idna.encode(host, uts46=True, transitional=False).decode("ascii")
        except (UnicodeError, idna.IDNAError):
            raise UrlError("has a host name that is not valid IDNA") from None
        userinfo = netloc.rpartition("@")[0]
        netloc = (userinfo + "@" if userinfo else "") + ascii_host
        netloc += f":{port}" if port is not None else ""
    rebuilt = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return quote(rebuilt, safe=_SAFE_ASCII)


def base_destination(
    destination: str, utm: Mapping[str, str], params: Mapping[str, str] | None
) -> str:
    """Steps 1-3 of a redirect's ``Location``: the part fixed per link, for the caller to cache.

    ``destination`` is the link's own (link override, else variant, else campaign), as
    stored by ``check_destination``; it is kept byte for byte. ``utm`` (the campaign's UTM
    defaults, plus ``utm_content`` for the link's variant when it has one) is added only for
    keys the destination lacks: a key present even with an empty value (``?utm_source=`` or
    ``?utm_source``) counts as present. ``params``, the recipient's, are then *set*: they
    replace a destination parameter of the same key in place (dropping its repeats), or a UTM
    default added just before, else they are appended. New segments come in mapping order,
    UTM defaults first.
    """
    updates = [(key, _segment(key, value)) for key, value in (params or {}).items()]
    return _rewrite(destination, utm, updates)


def finish_destination(
    base: str, passthrough: str, click_id_param: str | None, click_id: str | None
) -> str:
    """Steps 4-5 of a redirect's ``Location``, run per request on ``base_destination``'s result.

    ``passthrough`` is the short URL request's raw query string, without the ``?`` (empty on
    almost every request, which is the fast path). Its segments are *set* on ``base`` in
    their order, so they override destination, UTM and recipient parameters alike; a key set
    twice keeps the position of its first segment and the last value. Each one is re-encoded:
    key and value decoded with ``unquote_plus`` (``+`` is a space, malformed UTF-8 becomes
    U+FFFD), then percent-encoded like every new parameter, so ``a+b`` arrives as ``a%20b``.
    Blank segments and segments with an empty key (``=x``) are skipped; a key without ``=``
    passes as a bare key.

    ``click_id_param`` is the campaign's click-id parameter name, or ``None`` when the campaign
    disabled it. When set, a passthrough key equal to it is always ignored (a visitor cannot
    plant a click id), and ``click_id`` is set last: it replaces the first segment with that
    key already in ``base`` and drops the others. A ``click_id`` of ``None`` (no click
    recorded for this request) adds nothing and leaves ``base``'s own segments with that key as
    they are. When ``click_id_param`` is ``None`` no name is reserved: a passthrough
    ``tclid`` is an ordinary parameter, passed on like any other.
    """
    if passthrough:
        updates = _passthrough(passthrough, click_id_param)
    elif click_id_param is None or click_id is None:
        return base
    else:
        # The fast path: no passthrough, so only the click id is added, usually appended.
        slot = click_id_slot(base, click_id_param)
        if slot is not None:
            return f"{slot[0]}{_quote(click_id)}{slot[1]}"
        updates = []
    if click_id_param is not None and click_id is not None:
        updates.append((click_id_param, _segment(click_id_param, click_id)))
    return _rewrite(base, {}, updates)


def click_id_slot(base: str, click_id_param: str) -> tuple[str, str] | None:
    """``finish_destination``'s fast path, prepared once per ``base``: ``(before, after)``
    such that, for a request without passthrough, the ``Location`` is ``before + click id +
    after`` — the click id percent-encoded, which leaves ``new_click_id``'s (URL-safe base64)
    as they are. ``None`` when ``base`` already has a ``click_id_param`` segment: the id
    replaces it, which only ``finish_destination`` does."""
    head, hash_mark, fragment = base.partition("#")
    path, question_mark, query = head.partition("?")
    key = _quote(click_id_param)
    if not question_mark:
        return f"{path}?{key}=", f"{hash_mark}{fragment}"
    if _has_key(query, click_id_param):
        return None
    joiner = "&" if query and query[-1] != "&" else ""
    return f"{head}{joiner}{key}=", f"{hash_mark}{fragment}"


def build_destination(
    destination: str,
    utm: Mapping[str, str],
    params: Mapping[str, str] | None,
    passthrough: str,
    click_id_param: str | None,
    click_id: str | None,
) -> str:
    """The whole ``Location``: ``base_destination`` then ``finish_destination``, uncached."""
    base = base_destination(destination, utm, params)
    return finish_destination(base, passthrough, click_id_param, click_id)


def _quote(text: str) -> str:
    # Most keys and ids are unreserved already, and this check costs a fraction of quote().
    return quote(text, safe="") if text.strip(_UNRESERVED) else text


def _segment(key: str, value: str) -> str:
    return f"{_quote(key)}={_quote(value)}"


def _decode_key(raw_key: str) -> str:
    return unquote_plus(raw_key) if "%" in raw_key or "+" in raw_key else raw_key


def _has_key(query: str, key: str) -> bool:
    """Whether a segment of ``query`` has the decoded key ``key`` (fast: no split if it can't)."""
    if "%" not in key and "+" not in key:
        # Only a raw key without escapes decodes to itself, so this test is exact for those.
        bounded = f"&{query}&"
        if f"&{key}=" in bounded or f"&{key}&" in bounded:
            return True
    if "%" not in query and "+" not in query:
        return False
    for segment in query.split("&"):
        if "%" in segment or "+" in segment:
            raw_key = segment.partition("=")[0]
            if ("%" in raw_key or "+" in raw_key) and unquote_plus(raw_key) == key:
                return True
    return False


def _passthrough(query: str, reserved: str | None) -> list[tuple[str, str]]:
    updates = []
    for segment in query.split("&"):
        raw_key, equals, raw_value = segment.partition("=")
        key = unquote_plus(raw_key)
        if not key or key == reserved:
            continue
        encoded = f"{_quote(key)}={_quote(unquote_plus(raw_value))}" if equals else _quote(key)
        updates.append((key, encoded))
    return updates


def _rewrite(url: str, defaults: Mapping[str, str], updates: list[tuple[str, str]]) -> str:
    """``url`` with each key of ``defaults`` it lacks added, then each ``(key, segment)`` set."""
    head, hash_mark, fragment = url.partition("#")
    path, _, query = head.partition("?")
    segments = query.split("&") if query else []
    positions: dict[str, list[int]] = {}
    for index, segment in enumerate(segments):
        if segment:
            positions.setdefault(_decode_key(segment.partition("=")[0]), []).append(index)
    missing = [
        (key, _segment(key, value)) for key, value in defaults.items() if key not in positions
    ]
    if not missing and not updates:
        return url
    dropped: list[int] = []
    appending = False
    for key, new_segment in missing + updates:
        found = positions.get(key)
        if found:
            segments[found[0]] = new_segment
            dropped += found[1:]
            del found[1:]
            continue
        if not appending:
            appending = True
            if segments and not segments[-1]:
                segments.pop()  # a trailing "&": the first appended segment takes its place
        positions[key] = [len(segments)]
        segments.append(new_segment)
    if dropped:
        gone = set(dropped)
        segments = [segment for index, segment in enumerate(segments) if index not in gone]
    return f"{path}?{'&'.join(segments)}{hash_mark}{fragment}"
