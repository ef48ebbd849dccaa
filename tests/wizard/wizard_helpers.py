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


def name(pilot) -> str:
    return type(pilot.app.screen).__name__


async def on(pilot, screen: str, timeout: float = 30.0) -> None:
    """Wait until the screen called *screen* is on top."""
    await wait_for(pilot, lambda: name(pilot) == screen, timeout=timeout, what=screen)


async def press_button(pilot, selector: str) -> None:
    """Focus a button the way Tab would and press Enter (keyboard path)."""
    pilot.app.screen.query_one(selector).focus()
    await pilot.press("enter")


async def to_repair(pilot) -> None:
    """Language -> Start -> "Repair your computer" (each the focused default)."""
    await press_button(pilot, "#next")
    await on(pilot, "StartScreen")
    await pilot.press("enter")
    await on(pilot, "RepairScreen")


async def to_select_image(pilot) -> None:
    """On to "Select a system image", its image search finished."""
    await to_repair(pilot)
    await pilot.press("enter")  # "Restore a system image" is the first option
    await on(pilot, "SelectImageScreen")
    await wait_for(pilot, lambda: pilot.app.screen.loaded, what="image search")


async def to_target(pilot) -> None:
    """On to the target screen with the newest image, its disk list loaded."""
    await to_select_image(pilot)
    await press_button(pilot, "#next")
    await on(pilot, "TargetScreen")
    await wait_for(pilot, lambda: pilot.app.screen.loaded, what="disk list")


async def to_summary(pilot) -> None:
    """On to the summary with the pre-selected target, its plan made (or refused)."""
    await to_target(pilot)
    await press_button(pilot, "#next")
    await on(pilot, "SummaryScreen")
    await wait_for(pilot, lambda: pilot.app.screen.prepared is not None
                   or bool(pilot.app.screen.error), what="plan")


async def confirm_restore(pilot, disk: str = "sda") -> None:
    """From the summary: Finish, and the target disk's name typed into the confirmation."""
    await press_button(pilot, "#finish")
    await on(pilot, "TypedConfirmDialog")
    await pilot.press(*disk, "enter")


async def restore_from_summary(pilot, timeout: float = 180.0):
    """From the target screen: Next, the plan made without a refusal, Finish on a blank
    target, wait for the result; returns the outcome (which the caller checks)."""
    await press_button(pilot, "#next")
    await on(pilot, "SummaryScreen")
    summary = pilot.app.screen
    await wait_for(pilot, lambda: summary.prepared is not None or bool(summary.error),
                   what="plan")
    assert not summary.error, summary.error
    await press_button(pilot, "#finish")
    await on(pilot, "FinishedScreen", timeout=timeout)
    finished = pilot.app.screen
    await wait_for(pilot, lambda: finished.is_mounted and bool(finished.query("#result")),
                   what="the result shown")
    await pilot.pause(0.1)  # its on_mount (focus, countdown) has run
    return pilot.app.state.outcome
