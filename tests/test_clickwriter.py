"""The click writer on its own, with a sink we control."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from tracker.clickwriter import ClickWriter
from tracker.models import Click, ClickRow
from tracker.store.base import StoreError


def click(n: int) -> Click:
    return Click(1, 1, n, f"id{n}", "GET", "ua", "127.0.0.1", None, None)


def prepare(clicks: Sequence[Click]) -> list[ClickRow]:
    return [
        ClickRow(
            c.link_id,
            c.campaign_id,
            c.clicked_at_ms,
            c.click_id,
            c.method,
            "human",
            "default_human",
            "mobile",
            "iOS",
            "Safari",
            c.user_agent,
            None,
            None,
        )
        for c in clicks
    ]


class Sink:
    def __init__(self, failures: int = 0, delay: float = 0.0) -> None:
        self.batches: list[list[str]] = []
        self.failures = failures
        self.delay = delay
        self.gate: asyncio.Event | None = None

    async def record_clicks(self, rows: Sequence[ClickRow]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise StoreError("locked")
        self.batches.append([row.click_id for row in rows])

    @property
    def written(self) -> list[str]:
        return [click_id for batch in self.batches for click_id in batch]


async def test_durable_waits_for_the_commit_and_groups_clicks() -> None:
    sink = Sink(delay=0.01)
    writer = ClickWriter(sink.record_clicks, prepare, durable=True)
    futures = [writer.submit(click(n)) for n in range(3)]
    assert all(f is not None and not f.done() for f in futures)
    await asyncio.sleep(0.002)  # the first batch is being written; more clicks gather
    later = [writer.submit(click(n)) for n in range(3, 100)]
    await asyncio.gather(*(f for f in futures + later if f is not None))
    assert sink.written == [f"id{n}" for n in range(100)]
    assert len(sink.batches) <= 3  # group commit: 100 clicks, a handful of commits
    assert writer.recorded == 100
    await writer.close()


async def test_a_future_completes_only_after_its_batch_committed() -> None:
    sink = Sink()
    sink.gate = asyncio.Event()
    writer = ClickWriter(sink.record_clicks, prepare, durable=True, max_wait=5)
    future = writer.submit(click(1))
    assert future is not None
    await asyncio.sleep(0.01)
    assert not future.done()
    sink.gate.set()
    await future
    assert sink.written == ["id1"]
    await writer.close()


async def test_fast_mode_does_not_wait() -> None:
    sink = Sink(delay=0.01)
    writer = ClickWriter(sink.record_clicks, prepare, durable=False)
    assert writer.submit(click(1)) is None
    assert sink.written == []
    await writer.close()
    assert sink.written == ["id1"]


async def test_failing_store_releases_waiters_and_retries() -> None:
    sink = Sink(failures=2)
    writer = ClickWriter(sink.record_clicks, prepare, durable=True, retry_seconds=5)
    future = writer.submit(click(1))
    assert future is not None
    await asyncio.wait_for(future, 1)  # released at the first failure
    assert sink.written == []
    await writer.close()
    assert sink.written == ["id1"]  # the third attempt went through
    assert (writer.failures, writer.dropped, writer.recorded) == (2, 0, 1)


async def test_giving_up_counts_the_dropped_clicks() -> None:
    sink = Sink(failures=1000)
    writer = ClickWriter(sink.record_clicks, prepare, durable=True, retry_seconds=0.2)
    futures = [writer.submit(click(n)) for n in range(4)]
    await asyncio.gather(*(f for f in futures if f is not None))
    await writer.close()
    assert writer.dropped == 4
    assert writer.recorded == 0
    assert writer.failures >= 2


async def test_an_unexpected_error_drops_its_batch_and_the_writer_goes_on() -> None:
    calls: list[int] = []

    async def write(rows: Sequence[ClickRow]) -> None:
        calls.append(len(rows))
        if len(calls) == 1:
            raise RuntimeError("a bug, not the store")

    writer = ClickWriter(write, prepare, durable=True)
    first = writer.submit(click(1))
    assert first is not None
    await asyncio.wait_for(first, 1)  # answered at once, not after max_wait
    second = writer.submit(click(2))
    assert second is not None
    await asyncio.wait_for(second, 1)
    await writer.close()
    assert calls == [1, 1]
    assert (writer.dropped, writer.recorded, writer.failures) == (1, 1, 1)


async def test_a_stuck_store_releases_waiters_after_max_wait() -> None:
    sink = Sink()
    sink.gate = asyncio.Event()  # never opens until the end
    writer = ClickWriter(sink.record_clicks, prepare, durable=True, max_wait=0.05)
    future = writer.submit(click(1))
    assert future is not None
    await asyncio.wait_for(future, 1)
    assert sink.written == []
    sink.gate.set()
    await writer.close()
    assert sink.written == ["id1"]


async def test_full_queue_drops_and_counts() -> None:
    sink = Sink()
    sink.gate = asyncio.Event()
    writer = ClickWriter(sink.record_clicks, prepare, durable=False, queue_size=10, batch_size=5)
    for n in range(5):
        writer.submit(click(n))
    await asyncio.sleep(0.01)  # the writer took a batch of 5 and waits at the gate
    for n in range(5, 25):
        writer.submit(click(n))
    assert writer.dropped == 10
    sink.gate.set()
    await writer.close()
    assert len(sink.written) == 15
    assert writer.recorded == 15


async def test_close_gives_up_after_its_grace_and_counts() -> None:
    sink = Sink()
    sink.gate = asyncio.Event()
    writer = ClickWriter(sink.record_clicks, prepare, durable=True)
    future = writer.submit(click(1))
    writer.submit(click(2))
    await writer.close(grace=0.05)
    assert future is not None and future.done()
    assert writer.dropped >= 1
    assert writer.dropped == 2  # both: the one being written and the one behind it
    assert sink.written == []


async def test_closed_writer_takes_no_more() -> None:
    writer = ClickWriter(Sink().record_clicks, prepare, durable=True)
    await writer.close()
    assert writer.submit(click(1)) is None
    assert writer.dropped == 1


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
async def test_batches_respect_the_size(batch_size: int) -> None:
    sink = Sink()
    writer = ClickWriter(sink.record_clicks, prepare, durable=False, batch_size=batch_size)
    for n in range(30):
        writer.submit(click(n))
    await writer.close()
    assert sink.written == [f"id{n}" for n in range(30)]
    assert max(len(b) for b in sink.batches) <= batch_size


async def test_fast_mode_lets_a_batch_gather() -> None:
    sink = Sink()
    writer = ClickWriter(sink.record_clicks, prepare, durable=False, linger=0.05)
    writer.submit(click(0))
    await asyncio.sleep(0.01)
    for n in range(1, 50):
        writer.submit(click(n))
    await asyncio.sleep(0.1)
    assert sink.batches == [[f"id{n}" for n in range(50)]]  # one commit, not fifty
    await writer.close()


async def test_clicks_queued_behind_a_failing_batch_are_released_too() -> None:
    sink = Sink(failures=1000)
    sink.delay = 0.01
    writer = ClickWriter(sink.record_clicks, prepare, durable=True, retry_seconds=5, max_wait=5)
    first = writer.submit(click(1))
    await asyncio.sleep(0.001)  # the first batch is being written
    behind = writer.submit(click(2))
    assert first is not None and behind is not None
    await asyncio.wait_for(asyncio.gather(first, behind), 1)  # not after the 5 s retries
    await writer.close(grace=0.05)


class CountingSink(Sink):
    """Records how many batches were being written at once."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = 0
        self.most = 0

    async def record_clicks(self, rows: Sequence[ClickRow]) -> None:
        self.writing += 1
        self.most = max(self.most, self.writing)
        try:
            await super().record_clicks(rows)
        finally:
            self.writing -= 1


@pytest.mark.parametrize("in_flight", [1, 2, 3])
async def test_at_most_in_flight_batches_are_written_at_once(in_flight: int) -> None:
    sink = CountingSink()
    sink.gate = asyncio.Event()
    writer = ClickWriter(sink.record_clicks, prepare, durable=True, in_flight=in_flight)
    futures = []
    for n in range(6):  # one at a time: each free writing task takes what is queued
        futures.append(writer.submit(click(n)))
        await asyncio.sleep(0)
    assert sink.writing == in_flight
    assert not any(f is not None and f.done() for f in futures)  # durable: none answered yet
    sink.gate.set()
    await asyncio.gather(*[f for f in futures if f is not None])
    await writer.close()
    assert sink.most == in_flight
    assert sorted(sink.written) == sorted(f"id{n}" for n in range(6))  # each once
    assert writer.recorded == 6


async def test_close_with_two_in_flight_counts_both_batches_and_the_queue() -> None:
    sink = Sink()
    sink.gate = asyncio.Event()
    writer = ClickWriter(sink.record_clicks, prepare, durable=True, in_flight=2)
    futures = []
    for n in range(3):
        futures.append(writer.submit(click(n)))
        await asyncio.sleep(0)  # the first two go to the two writing tasks
    await writer.close(grace=0.05)
    assert all(f is not None and f.done() for f in futures)
    assert writer.dropped == 3
    assert sink.written == []


async def test_a_store_that_signals_its_commit_releases_the_redirects_at_once() -> None:
    """With ``signals_commit`` the durable futures complete when the store calls
    ``committed``, before its write returns; without it, when the write returns."""
    gate = asyncio.Event()
    written: list[list[str]] = []

    async def write(rows: Sequence[ClickRow], committed: Callable[[], None]) -> None:
        written.append([row.click_id for row in rows])
        committed()
        await gate.wait()  # the store's own bookkeeping, after the commit

    writer = ClickWriter(write, prepare, durable=True, signals_commit=True)
    future = writer.submit(click(1))
    assert future is not None
    await asyncio.wait_for(future, 1)  # released although ``write`` has not returned
    assert written == [["id1"]] and writer.recorded == 0
    gate.set()
    await writer.close()
    assert writer.recorded == 1
