"""The dispatcher's one queue: first in, first out, with when each item was put; a consumer waiting on an empty queue
is woken by the next put, and a producer waiting on a full one by the next take."""

from __future__ import annotations

import asyncio
import time

import pytest

from bridge.dispatch.inputs import StampedQueue


async def test_items_come_out_in_order_with_when_they_were_put() -> None:
    queue = StampedQueue()
    before = time.perf_counter()
    queue.put_nowait("a")
    queue.put_nowait("b")
    assert queue.qsize() == 2 and not queue.empty()
    assert await queue.get() == "a"
    first = queue.taken_put_at
    assert queue.get_nowait() == "b"
    assert before <= first <= queue.taken_put_at <= time.perf_counter()
    assert queue.empty() and queue.oldest_wait() == 0.0
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()


async def test_a_waiting_consumer_gets_the_next_item_put() -> None:
    queue = StampedQueue()
    taking = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not taking.done()
    queue.put_nowait("c")
    assert await asyncio.wait_for(taking, 1) == "c"


async def test_a_take_wakes_a_producer_waiting_on_a_full_queue() -> None:
    queue = StampedQueue(maxsize=1)
    queue.put_nowait("d")
    putting = asyncio.ensure_future(queue.put("e"))
    await asyncio.sleep(0)
    assert not putting.done()
    assert queue.get_nowait() == "d"
    await asyncio.wait_for(putting, 1)
    assert queue.get_nowait() == "e"
