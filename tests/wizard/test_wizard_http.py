# ruff: noqa: F811  (pytest fixtures imported from wizard_fixtures shadow as parameters)
"""The wizard restores from a web address typed into "Add a location": a real web server
on 127.0.0.1 shares a real backup, the real engine writes a loop device."""

from __future__ import annotations

import pytest
from httpserve import serve
from loopdev import MiB
from test_wizard_restore_real import services_for
from wizard_disks import check_restored
from wizard_fixtures import english, loops, real_backup  # noqa: F401 (fixtures)
from wizard_helpers import (
    on,
    press_button,
    restore_from_summary,
    run_async,
    to_select_image,
    wait_for,
)

from rescue.wizard.app import RescueApp
from rescue.wizard.model import WizardState

pytestmark = pytest.mark.root



def test_add_a_web_address_and_restore_from_it(real_backup, loops, tmp_path):
    target = loops(256 * MiB, "target")
    services = services_for([target], tmp_path)
    app = RescueApp(services, WizardState(), restart_countdown=0)

    async def walk(url: str) -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_select_image(pilot)
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.loaded, what="first search")
            assert screen.query_one("#images").row_count == 0
            await press_button(pilot, "#add")
            await on(pilot, "InputDialog")
            await pilot.press(*url)
            await pilot.press("enter")
            await on(pilot, "SelectImageScreen")
            await wait_for(pilot, lambda: screen.query_one("#images").row_count == 1,
                           what="the image on the web server")
            info = str(screen.query_one("#latest-info").render())
            assert "demo-pc" in info and url in info
            await press_button(pilot, "#next")
            await on(pilot, "TargetScreen")
            await wait_for(pilot, lambda: pilot.app.screen.loaded, what="disk list")
            assert app.state.target is not None and app.state.target.path == target
            outcome = await restore_from_summary(pilot)
            assert outcome is not None and outcome.ok and outcome.verified, outcome

    try:
        with serve(real_backup.repo) as (url, requests):
            run_async(walk(url))
    finally:
        services.close()
    assert any(r.startswith("GET /chunks/") for r in requests)
    check_restored(target, tmp_path)


def test_a_web_address_that_does_not_answer_is_said(tmp_path, monkeypatch):
    from rescue.image import http_repository

    monkeypatch.setattr(http_repository, "BACKOFF", 0.01)
    with serve(tmp_path) as (url, _):
        pass  # the server is gone again: nothing listens on the port
    services = services_for([], tmp_path)
    app = RescueApp(services, WizardState(locations=[url]), restart_countdown=0)
    seen: list[str] = []

    async def walk() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            pilot.app.notify = lambda message, **kw: seen.append(str(message))  # type: ignore
            await to_select_image(pilot)
            await wait_for(pilot, lambda: pilot.app.screen.loaded and bool(seen),
                           what="warning")

    try:
        run_async(walk())
    finally:
        services.close()
    assert url in seen[0] and "did not answer" in seen[0], seen


def test_a_login_in_the_address_is_never_shown_or_logged(real_backup, tmp_path):
    from rescue.wizard.texts import describe_location

    services = services_for([], tmp_path)
    try:
        with serve(real_backup.repo, user="tech", password="s3cret") as (url, _):
            authed = url.replace("http://", "http://tech:s3cret@")
            [image] = services.find_images([authed])
            assert describe_location(image) == url.replace("http://", "http://tech@")
            wrong = url.replace("http://", "http://tech:wrong-pw@")
            assert services.find_images([wrong]) == []
            [problem] = services.search_problems()
            assert "refused access" in problem and "wrong-pw" not in problem
    finally:
        services.close()
    log = (tmp_path / "wizard.log").read_text()
    assert "s3cret" not in log and "wrong-pw" not in log
