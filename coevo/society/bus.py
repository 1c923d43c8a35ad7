"""An in-process event stream: the runner publishes every event, subscribers (the TUI, progress
displays, tests) each get their own queue. Publishing never blocks the society."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from coevo.messages import Event

Listener = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[Event | None]] = []
        self._listeners: list[Listener] = []
        self.closed = False

    def subscribe(self, maxsize: int = 0) -> asyncio.Queue[Event | None]:
        """A queue that receives every later event, then None when the run ends."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize)
        self._queues.append(queue)
        return queue

    def listen(self, listener: Listener) -> None:
        """Call `listener(event)` synchronously on every event (cheap callbacks only)."""
        self._listeners.append(listener)

    def publish(self, event: Event) -> None:
        for listener in self._listeners:
            listener(event)
        for queue in self._queues:
            # A slow consumer must not stall the society: drop its oldest event instead.
            if queue.maxsize and queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    def close(self) -> None:
        """End every subscriber's stream (once, however the run ended)."""
        if self.closed:
            return
        self.closed = True
        for queue in self._queues:
            if queue.maxsize and queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
