"""Destination URLs: validation at issue time.

A destination is kept byte for byte, with one exception: a URL carrying non-ASCII
characters (an IRI, as people paste them) is stored in its ASCII form — the host in IDNA,
everything else percent-encoded as UTF-8 — because an HTTP ``Location`` header is ASCII and a
browser would send exactly those bytes anyway.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import quote, urlsplit, urlunsplit

MAX_URL_BYTES = 2048
WEB_SCHEMES = frozenset({"http", "https"})
# Schemes that can never be allowed: they run code or read local data in a browser.
FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob", "about"})
_SAFE_ASCII = "".join(chr(c) for c in range(0x21, 0x7F))


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
            ascii_host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise UrlError("has a host name that is not valid IDNA") from None
        userinfo = netloc.rpartition("@")[0]
        netloc = (userinfo + "@" if userinfo else "") + ascii_host
        netloc += f":{port}" if port is not None else ""
    rebuilt = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return quote(rebuilt, safe=_SAFE_ASCII)
