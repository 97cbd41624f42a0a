"""A/B variants: the deterministic weighted split of recipients."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from tracker.models import Variant


def assign_variant(variants: Sequence[Variant], campaign_id: int, ref: str) -> str | None:
    """The key of the variant recipient ``ref`` of campaign ``campaign_id`` falls into.

    The same (campaign, ref) always gets the same variant; over many refs the shares follow
    the weights. ``None`` when the campaign has no variants.
    """
    total = sum(v.weight for v in variants)
    if total <= 0:
        return None
    digest = hashlib.blake2b(f"{campaign_id}:{ref}".encode(), digest_size=8).digest()
    point = int.from_bytes(digest, "big") % total
    for variant in variants:
        if point < variant.weight:
            return variant.key
        point -= variant.weight
    raise AssertionError("unreachable: point < total")
