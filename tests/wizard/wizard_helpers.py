"""Helpers of the wizard's Pilot tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from textual.css.query import NoMatches


def run_async(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


async def wait_for(pilot, predicate: Callable[[], bool], timeout: float = 30.0,
                   what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    def ready() -> bool:
        try:
            return predicate()
        except NoMatches:  # asked while the screen recomposes: its widgets are being replaced
            return False

    while not ready():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}; screen is "
                                 f"{type(pilot.app.screen).__name__}")
        await pilot.pause(0.05)
