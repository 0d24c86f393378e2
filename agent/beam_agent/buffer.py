"""The hand-off between sensor threads and the one thread that writes the SQLite queue.

Sensors never wait on the disk: they append here, and the writer commits whatever has
gathered in one transaction (group commit), which is what makes durable enqueue cheap.
A reading gets its seq only when that commit succeeds, so a crash before it leaves no gap.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class HandoffBuffer(Generic[T]):
    """A bounded, thread-safe FIFO; when full, the newest item is refused and counted."""

    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self.items: deque[T] = deque()
        self.condition = threading.Condition()
        self.refused = 0
        self.wake_at = 1  # how many items wake a waiting taker (raised while it lingers)
        self.closed = False  # set by close(): a taker no longer waits for items

    def close(self) -> None:
        """No more waiting: `take` returns at once when empty (the writer is stopping).
        So the writer can wait long for items and still stop at once."""
        with self.condition:
            self.closed = True
            self.condition.notify_all()

    def put(self, item: T) -> bool:
        with self.condition:
            if len(self.items) >= self.capacity:
                self.refused += 1
                return False
            self.items.append(item)
            if len(self.items) >= self.wake_at:
                self.condition.notify()
            return True

    def put_back(self, items: list[T]) -> None:
        """Return items a consumer could not handle to the front, in order, so they keep
        their place ahead of what arrived since (their seqs will still follow read order)."""
        with self.condition:
            self.items.extendleft(reversed(items))

    def take(self, max_items: int, wait_s: float, linger_s: float = 0.0) -> list[T]:
        """Wait up to `wait_s` for an item, then up to `linger_s` more for others to join it."""
        with self.condition:
            if not self.items and not self.closed:
                self.condition.wait(wait_s)
            if not self.items:
                return []
            if linger_s > 0 and len(self.items) < max_items:
                # Sleep through the linger unless a full batch gathers: one wake-up per
                # batch instead of one per item.
                self.wake_at = max_items
                try:
                    deadline = time.monotonic() + linger_s
                    while len(self.items) < max_items:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        self.condition.wait(remaining)
                finally:
                    self.wake_at = 1
            count = min(max_items, len(self.items))
            return [self.items.popleft() for _ in range(count)]

    def __len__(self) -> int:
        with self.condition:
            return len(self.items)
