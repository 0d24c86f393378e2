from __future__ import annotations

import threading
import time

from beam_agent.buffer import HandoffBuffer


def test_bounded_and_counts_refusals() -> None:
    buffer: HandoffBuffer[int] = HandoffBuffer(capacity=3)
    assert [buffer.put(i) for i in range(5)] == [True, True, True, False, False]
    assert buffer.refused == 2
    assert buffer.take(10, wait_s=0) == [0, 1, 2]
    assert len(buffer) == 0


def test_take_waits_for_an_item_and_lingers_for_more() -> None:
    buffer: HandoffBuffer[int] = HandoffBuffer()

    def producer() -> None:
        for i in range(5):
            buffer.put(i)
            time.sleep(0.01)

    threading.Thread(target=producer).start()
    batch = buffer.take(100, wait_s=5, linger_s=1.0)
    assert batch[0] == 0 and batch == sorted(batch)
    rest = []
    while len(batch) + len(rest) < 5:
        rest += buffer.take(100, wait_s=5)
    assert batch + rest == [0, 1, 2, 3, 4]


def test_take_returns_empty_after_wait() -> None:
    buffer: HandoffBuffer[int] = HandoffBuffer()
    assert buffer.take(10, wait_s=0.05) == []


def test_take_respects_max_items() -> None:
    buffer: HandoffBuffer[int] = HandoffBuffer()
    for i in range(10):
        buffer.put(i)
    assert buffer.take(4, wait_s=0, linger_s=0.5) == [0, 1, 2, 3]


def test_put_back_keeps_order_ahead_of_newer_items() -> None:
    buffer: HandoffBuffer[int] = HandoffBuffer()
    for i in range(5):
        buffer.put(i)
    batch = buffer.take(3, wait_s=0)
    buffer.put(5)
    buffer.put_back(batch)
    assert buffer.take(10, wait_s=0) == [0, 1, 2, 3, 4, 5]


def test_close_ends_a_long_wait_and_every_later_one() -> None:
    # The runner's writer waits long for readings; stopping closes the buffer instead.
    buffer: HandoffBuffer[int] = HandoffBuffer()
    taken: list[list[int]] = []
    taker = threading.Thread(target=lambda: taken.append(buffer.take(10, wait_s=60)))
    taker.start()
    time.sleep(0.1)
    started = time.monotonic()
    buffer.close()
    taker.join(10)
    assert not taker.is_alive() and taken == [[]]
    assert time.monotonic() - started < 5
    started = time.monotonic()
    assert buffer.take(10, wait_s=60) == []  # closed before the wait: no wait at all
    assert time.monotonic() - started < 5
    buffer.put(7)  # what sensors hand over while stopping is still taken
    assert buffer.take(10, wait_s=60) == [7]
