"""Fetch the next item of a slow iterator while the caller works on this one.

Why: a sync's bill feed waits for each m3ter page (the HTTP call) and then validates it; one
after the other, the feed was the slowest stage of a sync. With the next page fetched by a
helper thread while this one is validated, the feed takes as long as the slower of the two.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_ITEM, _END, _ERROR = "item", "end", "error"


def read_ahead(source: Iterator[T], *, depth: int = 1, name: str = "read-ahead") -> Iterator[T]:
    """``source``'s items in order, at most ``depth`` of them fetched ahead by a helper thread.

    An error in ``source`` is raised here, after the items before it. Closing this iterator
    early stops the helper after the item it is fetching, then closes ``source``.
    """
    items: queue.Queue[tuple[str, object]] = queue.Queue()
    room = threading.Semaphore(depth)  # an item is fetched only when there is room for it
    stop = threading.Event()

    def produce() -> None:
        try:
            while True:
                while not room.acquire(timeout=0.2):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                try:
                    item = next(source)
                except StopIteration:
                    items.put((_END, None))
                    return
                items.put((_ITEM, item))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            items.put((_ERROR, exc))

    helper = threading.Thread(target=produce, name=name, daemon=True)
    helper.start()
    try:
        while True:
            kind, value = items.get()
            room.release()
            if kind == _END:
                return
            if kind == _ERROR:
                assert isinstance(value, BaseException)
                raise value
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        helper.join()
        close = getattr(source, "close", None)
        if close is not None:
            close()
