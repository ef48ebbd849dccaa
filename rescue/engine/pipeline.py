"""Bounded, ordered thread pipelines: run a function over items in worker threads,
consume the results in order, keep at most *depth* items in flight (bounded memory)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from rescue.errors import Cancelled
from rescue.i18n import _

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    func: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    depth: int,
    cancel: threading.Event | None = None,
) -> Iterator[tuple[T, R]]:
    """Yield (item, func(item)) in input order, computed by *workers* threads."""
    pending: deque[tuple[T, Future[R]]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rescue") as pool:
        try:
            for item in items:
                if cancel is not None and cancel.is_set():
                    raise Cancelled(_("Cancelled."))
                pending.append((item, pool.submit(func, item)))
                if len(pending) >= depth:
                    done_item, fut = pending.popleft()
                    yield done_item, fut.result()
            while pending:
                if cancel is not None and cancel.is_set():
                    raise Cancelled(_("Cancelled."))
                done_item, fut = pending.popleft()
                yield done_item, fut.result()
        finally:
            for _item, fut in pending:
                fut.cancel()
