"""Typed reading of JSON objects: each reader names the field it refuses.

``Fields(data, allowed, prefix)`` checks that ``data`` is an object without unknown keys;
its methods pull one typed value each or raise a 422 ``ApiError`` whose ``field`` is the
full path (``recipients[3].ref``).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tracker.urls import UrlError, check_destination
from tracker.web.errors import ApiError, invalid

_MISSING: Any = object()
CLOCK_SKEW_MS = 5 * 60 * 1000  # an event time this far ahead of our clock is still "now"
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def parse_time(text: str, field: str) -> datetime:
    """An RFC 3339 time with an offset, in UTC, between 1970 and 9998; else a 422."""
    try:
        moment = datetime.fromisoformat(text)
        moment = moment.astimezone(UTC) if moment.tzinfo is not None else None
    except (ValueError, OverflowError):
        moment = None
    if moment is None:
        raise invalid(field, "must be an RFC 3339 time with offset, e.g. 2026-01-31T18:00:00Z")
    if not _EARLIEST <= moment < _LATEST:
        raise invalid(field, "must be between 1970 and 9998")
    return moment


class Fields:
    __slots__ = ("_data", "_prefix")

    def __init__(self, data: object, allowed: Collection[str], prefix: str = "") -> None:
        if not isinstance(data, dict):
            where = prefix.rstrip(".") or "the body"
            raise invalid(where, "must be a JSON object")
        for key in data:
            if key not in allowed:
                raise ApiError(
                    422, "unknown_field", f"unknown field {prefix}{key}", f"{prefix}{key}"
                )
        self._data: dict[str, Any] = data
        self._prefix = prefix

    def name(self, key: str) -> str:
        return self._prefix + key

    def has(self, key: str) -> bool:
        return key in self._data

    def raw(self, key: str, required: bool = False) -> Any:
        value = self._data.get(key, _MISSING)
        if value is _MISSING or value is None:
            if required:
                raise invalid(self.name(key), "is required", "missing_field")
            return None
        return value

    def string(
        self,
        key: str,
        *,
        required: bool = False,
        max_length: int = 256,
        pattern: re.Pattern[str] | None = None,
        hint: str = "",
    ) -> str | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise invalid(self.name(key), "must be a string")
        if not value:
            raise invalid(self.name(key), "must not be empty")
        if len(value) > max_length:
            raise invalid(self.name(key), f"must be at most {max_length} characters")
        if pattern is not None and not pattern.fullmatch(value):
            raise invalid(self.name(key), f"must match {hint or pattern.pattern}")
        return value

    def integer(self, key: str, *, minimum: int, maximum: int) -> int | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise invalid(self.name(key), "must be an integer")
        if not minimum <= value <= maximum:
            raise invalid(self.name(key), f"must be between {minimum} and {maximum}")
        return value

    def boolean(self, key: str) -> bool | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise invalid(self.name(key), "must be true or false")
        return value

    def money(self, key: str, *, maximum: Decimal, places: int = 6) -> Decimal | None:
        """A non-negative decimal given as a string (``"0.05"``) or a JSON number."""
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise invalid(self.name(key), 'must be a decimal string such as "0.05"')
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise invalid(self.name(key), 'must be a decimal number such as "0.05"') from None
        if not amount.is_finite() or amount < 0 or amount > maximum:
            raise invalid(self.name(key), f"must be between 0 and {maximum}")
        exponent = amount.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > places:
            raise invalid(self.name(key), f"must have at most {places} decimal places")
        # Plain notation, no negative zero: "5E+2" is stored and answered as "500".
        return Decimal(format(amount.copy_abs() if amount.is_zero() else amount, "f"))

    def time(self, key: str) -> datetime | None:
        """An RFC 3339 time with an offset, returned in UTC."""
        value = self.string(key, max_length=64)
        return None if value is None else parse_time(value, self.name(key))

    def event_time(self, key: str, now_ms: int) -> int:
        """When something happened, in ms: ``now_ms`` when not given; a time more than
        ``CLOCK_SKEW_MS`` ahead of ours is refused (clocks differ, but not by that)."""
        moment = self.time(key)
        if moment is None:
            return now_ms
        at_ms = int(moment.timestamp() * 1000)
        if at_ms > now_ms + CLOCK_SKEW_MS:
            raise invalid(self.name(key), "is in the future")
        return at_ms

    def url(self, key: str, allowed_schemes: Collection[str], required: bool = False) -> str | None:
        value = self.raw(key, required)
        if value is None:
            return None
        try:
            return check_destination(value, allowed_schemes)
        except UrlError as error:
            raise invalid(self.name(key), str(error), "invalid_url") from None

    def string_map(
        self, key: str, *, max_items: int, max_key: int = 64, max_value: int = 512
    ) -> dict[str, str] | None:
        """An object of string (or integer) values, returned as strings."""
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise invalid(self.name(key), "must be an object of strings")
        if len(value) > max_items:
            raise invalid(self.name(key), f"must have at most {max_items} entries")
        result = {}
        for name, item in value.items():
            where = f"{self.name(key)}.{name}"
            if not name or len(name) > max_key:
                raise invalid(where, f"name must be 1 to {max_key} characters")
            if isinstance(item, int) and not isinstance(item, bool):
                item = str(item)
            if not isinstance(item, str):
                raise invalid(where, "must be a string")
            if len(item) > max_value:
                raise invalid(where, f"must be at most {max_value} characters")
            result[name] = item
        return result

    def array(self, key: str, *, required: bool = False) -> list[Any] | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if not isinstance(value, list):
            raise invalid(self.name(key), "must be an array")
        return value
