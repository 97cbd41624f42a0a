"""The store's write lock: click batches share it, the server's own writes take it alone."""

from __future__ import annotations

import asyncio

from tracker.store.writelock import WriteLock


async def _hold(lock: WriteLock, kind: str, name: str, log: list[str], gate: asyncio.Event) -> None:
    async with lock.shared() if kind == "shared" else lock.exclusive():
        log.append(f"{name} in")
        await gate.wait()
        log.append(f"{name} out")


async def test_batches_share_it_and_a_write_waits_for_them_all() -> None:
    lock, log, gate = WriteLock(), [], asyncio.Event()
    a = asyncio.create_task(_hold(lock, "shared", "a", log, gate))
    b = asyncio.create_task(_hold(lock, "shared", "b", log, gate))
    await asyncio.sleep(0)
    assert log == ["a in", "b in"]  # together
    write = asyncio.create_task(_hold(lock, "exclusive", "w", log, asyncio.Event()))
    await asyncio.sleep(0)
    assert "w in" not in log
    gate.set()
    await asyncio.gather(a, b)
    await asyncio.sleep(0)
    assert log[-1] == "w in"  # only once both batches are done
    write.cancel()


async def test_a_waiting_write_keeps_new_batches_out_so_clicks_cannot_starve_it() -> None:
    lock, log = WriteLock(), []
    first, write_gate, later_gate = asyncio.Event(), asyncio.Event(), asyncio.Event()
    a = asyncio.create_task(_hold(lock, "shared", "a", log, first))
    await asyncio.sleep(0)
    write = asyncio.create_task(_hold(lock, "exclusive", "w", log, write_gate))
    await asyncio.sleep(0)
    later = asyncio.create_task(_hold(lock, "shared", "c", log, later_gate))
    await asyncio.sleep(0)
    assert log == ["a in"]  # c did not join a's share: w waits
    first.set()
    await a
    await asyncio.sleep(0)
    assert log == ["a in", "a out", "w in"]
    write_gate.set()
    later_gate.set()
    await asyncio.gather(write, later)
    assert log == ["a in", "a out", "w in", "w out", "c in", "c out"]


async def test_writes_take_it_one_at_a_time_and_a_cancelled_wait_leaves_it_free() -> None:
    lock, log, gate = WriteLock(), [], asyncio.Event()
    one = asyncio.create_task(_hold(lock, "exclusive", "1", log, gate))
    await asyncio.sleep(0)
    two = asyncio.create_task(_hold(lock, "exclusive", "2", log, gate))
    batch = asyncio.create_task(_hold(lock, "shared", "b", log, gate))
    await asyncio.sleep(0)
    assert log == ["1 in"]
    two.cancel()  # gave up waiting
    gate.set()
    await asyncio.gather(one, batch)
    assert log == ["1 in", "1 out", "b in", "b out"]
    async with lock.exclusive():  # free again
        pass
