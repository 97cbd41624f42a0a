"""The store's interface: what the rest of tracker may ask of durable data.

Backends (``SqliteStore``, later ``PostgresStore``) implement ``Store``; the hot path needs
only the ``LinkReader`` role. Nothing outside ``tracker.store`` writes SQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

from tracker.models import (
    Campaign,
    CampaignResults,
    CampaignSpec,
    ClickFields,
    ClickRow,
    ConversionInput,
    ConversionResult,
    EventsResult,
    IssuedLink,
    Link,
    LinkRequest,
    LinkTarget,
    MessageEvent,
    Principal,
    RecipientRow,
    WebhookSecret,
    Workspace,
)


class StoreError(Exception):
    """The store cannot do what was asked (unreachable, misconfigured, schema mismatch)."""


class LinkReader(Protocol):
    """What the redirect reads: a link by its id (decoded from its code), a campaign by its
    id — both meant to answer in microseconds (the SQLite backend does not even leave the
    event loop), a campaign read seeing every change committed before it — and, to fill the
    link index at startup, which campaign each link belongs to."""

    async def find_link_target(self, link_id: int) -> LinkTarget | None: ...

    async def find_campaign(self, campaign_id: int) -> Campaign | None: ...

    async def newest_link_id(self) -> int:
        """The highest link id issued (0 before the first link)."""

    async def campaign_links(
        self, first_id: int, last_id: int
    ) -> list[tuple[int, int, str | None]]:
        """(id, campaign id, variant) of each link in ``first_id..last_id``, in id order,
        that takes its campaign's destination as it is: no destination or parameters of its
        own. For the link index; read off the event loop."""


class ClickSink(Protocol):
    async def record_clicks(self, rows: Sequence[ClickRow]) -> None:
        """Write the batch in one transaction, all or nothing; a click id already stored
        is skipped (so a retried batch is harmless). Raises ``StoreError``."""


class HitSink(Protocol):
    @property
    def prepares_clicks(self) -> bool:
        """Whether ``record_hits`` can be used: the store classifies raw clicks itself."""
        ...

    async def record_hits(
        self, clicks: Sequence[ClickFields], committed: Callable[[], None] | None = None
    ) -> None:
        """As ``record_clicks``, for clicks not yet classified or anonymised. ``committed``
        is called as soon as the batch is known to be committed, from the event loop's
        I/O callback — a turn of the loop before this coroutine resumes."""


class Store(LinkReader, ClickSink, HitSink, Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raises ``StoreError`` unless the store answers a trivial read."""

    @property
    def code_secret(self) -> bytes:
        """The server secret behind short codes; available once the store is open."""
        ...

    # Workspaces and API keys
    async def ensure_workspace(self, name: str) -> Workspace: ...

    async def set_allowed_schemes(self, workspace_id: int, schemes: Sequence[str]) -> Workspace: ...

    async def add_api_key(
        self, workspace_id: int, key_id: str, key_hash: str, scopes: frozenset[str], label: str
    ) -> None: ...

    async def find_api_key(self, key_id: str) -> tuple[str, Principal] | None:
        """The stored hash and the principal of an unrevoked key."""

    async def count_api_keys(self) -> int: ...

    # Links
    async def find_link(self, link_id: int) -> Link | None: ...

    # Campaigns
    async def add_campaign(self, workspace_id: int, spec: CampaignSpec) -> Campaign: ...

    async def get_campaign(self, workspace_id: int, campaign_id: int) -> Campaign | None: ...

    async def list_campaigns(
        self, workspace_id: int, limit: int, before_id: int | None
    ) -> list[Campaign]: ...

    async def update_campaign(
        self, workspace_id: int, campaign_id: int, changes: dict[str, Any]
    ) -> Campaign | None: ...

    # Links
    async def issue_links(
        self,
        workspace_id: int,
        campaign_id: int | None,
        requests: Sequence[LinkRequest],
        encode: Callable[[int], str],
    ) -> list[IssuedLink]:
        """One link per request, in request order.

        A request whose (campaign, ref) already has a link gets that link unchanged; a ref
        repeated within ``requests`` gets the same link each time; a request without a ref
        always gets a new link. All new links are written in one transaction.
        """

    async def reclassify_clicks(
        self, classify: Callable[[str, str], tuple[str, str, str, str, str]], batch: int = 5000
    ) -> tuple[int, int]:
        """Apply ``classify(user_agent, method)`` to every stored click; (seen, changed)."""

    # Conversions, receipts, webhook secrets

    async def click_workspace(self, click_id: str) -> int | None:
        """The workspace a stored click belongs to."""

    async def record_conversions(
        self, workspace_id: int, conversions: Sequence[ConversionInput]
    ) -> list[ConversionResult]:
        """Attribute (``tracker.attribution``) and store each conversion in one transaction,
        in order; a conversion that repeats a stored one (or an earlier one of the batch) is
        not stored again and answers the stored one's result with ``duplicate`` set."""

    async def record_message_events(
        self, campaign_id: int, events: Sequence[MessageEvent]
    ) -> EventsResult:
        """Store each receipt of a link of the campaign once per (link, status), in one
        transaction; events naming no link of the campaign are reported, not stored."""

    @property
    def webhook_key(self) -> bytes:
        """The server key webhook secrets are derived from; available once open."""
        ...

    async def webhook_salts(self, workspace_id: int) -> list[bytes]:
        """The salts of the secrets that verify now, newest first."""

    async def rotate_webhook_secret(
        self, workspace_id: int, salt: bytes, grace_ms: int
    ) -> list[WebhookSecret]: ...

    async def list_webhook_secrets(self, workspace_id: int) -> list[WebhookSecret]: ...

    # Results

    async def fold_all_clicks(self) -> int:
        """Bring the click rollup up to date; how many clicks it took in."""

    async def campaign_results(
        self, campaign_id: int, since_ms: int | None = None, until_ms: int | None = None
    ) -> CampaignResults:
        """Whole campaign: from the rollups. With a range: clicks and conversions in
        [since, until) recounted from the raw rows; links and receipts are the whole."""

    async def recount_results(self, campaign_id: int) -> CampaignResults: ...

    def recipient_rows(
        self, campaign_id: int, only: str | None = None
    ) -> AsyncIterator[list[RecipientRow]]: ...
