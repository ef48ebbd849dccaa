"""The wizard's first screen does not wait for the engine: the application and its
screens import only the light ports module, and ``rescue wizard`` builds the engine's
services on first use or in a warm-up thread (rescue/wizard/deferred.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from rescue.wizard.deferred import DeferredServices


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout.split())


def test_the_wizard_application_does_not_load_the_engine() -> None:
    mods = loaded_after("import rescue.wizard.app, rescue.commands.wizard")
    assert "textual.app" in mods  # the probe itself sees imports
    heavy = {"rescue.services", "rescue.wizard.backend", "rescue.engine",
             "rescue.image.repository", "rescue.devices.catalog", "cryptography"}
    assert not heavy & mods, sorted(heavy & mods)
    # a plain command does not load the repository package either
    assert "rescue.repo" not in loaded_after("import rescue.cli")


class Engine:
    built = 0

    def __init__(self) -> None:
        time.sleep(0.05)
        Engine.built += 1
        self.closed = False

    def find_images(self) -> str:
        return "found"

    def close(self) -> None:
        self.closed = True


def test_built_once_on_first_use_or_warm_up() -> None:
    Engine.built = 0
    made: list[Engine] = []

    def build() -> Engine:
        made.append(Engine())
        return made[-1]

    services = DeferredServices(build)
    assert not services.built and Engine.built == 0
    callers = [threading.Thread(target=services.find_images) for _ in range(4)]
    warm = threading.Thread(target=services.warm_up)
    for t in [warm, *callers]:
        t.start()
    for t in [warm, *callers]:
        t.join()
    assert Engine.built == 1 and services.built
    assert services.find_images() == "found"
    services.close()
    assert made[0].closed


def test_close_before_use_builds_nothing() -> None:
    Engine.built = 0
    services = DeferredServices(Engine)
    services.close()
    assert Engine.built == 0
    assert not hasattr(services, "__wrapped__")  # dunder lookups never build
    assert Engine.built == 0


def test_a_failed_build_is_not_retried_and_says_the_same_error() -> None:
    calls: list[int] = []

    def build() -> Engine:
        calls.append(1)
        raise ImportError("No module named 'zstandard'")

    services = DeferredServices(build)
    for _ in range(3):
        try:
            services.find_images()
        except ImportError as exc:
            assert "zstandard" in str(exc)
        else:
            raise AssertionError("the failed build was not reported")
    assert len(calls) == 1


def test_closed_before_the_warm_up_builds_nothing() -> None:
    Engine.built = 0
    services = DeferredServices(Engine)
    services.close()
    services.warm_up()
    assert Engine.built == 0


class Radio(Engine):
    def wifi_interfaces(self) -> list[str]:
        return ["wlan0"]

    def wifi_status(self, interface: str) -> None: ...
    def wifi_scan(self, interface: str) -> list[str]: return []
    def wifi_join(self, interface: str, ssid: bytes, passphrase: str | None) -> None: ...


def test_wifi_is_found_through_the_deferred_services() -> None:
    from rescue.wizard.ports import wifi_services

    assert wifi_services(Engine()) is None
    deferred = DeferredServices(Radio)
    wifi = wifi_services(deferred)
    assert wifi is not None and wifi.wifi_interfaces() == ["wlan0"]
    assert wifi_services(DeferredServices(Engine)) is None


def test_a_method_looked_up_before_the_build_does_not_wait_for_it() -> None:
    """``in_thread(self.services.list_disks, ...)`` looks the method up on the event
    loop: during the warm-up that must return at once, and the call (in the worker
    thread) waits for the build."""
    release = threading.Event()

    class Slow:
        def list_disks(self, image: object, purpose: str) -> str:
            return f"disks for {purpose}"

    def build() -> Slow:
        assert release.wait(10)
        return Slow()

    services = DeferredServices(build)
    started = time.monotonic()
    method = services.list_disks
    assert time.monotonic() - started < 1 and not services.built
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(method(None, "check")))
    worker.start()
    time.sleep(0.1)
    assert not result  # the call waits for the build...
    release.set()
    worker.join(10)
    assert result == ["disks for check"] and services.built  # ...and then runs
    assert services.list_disks(None, "x") == "disks for x"  # the real method from now on
    with pytest.raises(AttributeError):
        services.no_such_method  # noqa: B018  (not a service method: asks the real one)
