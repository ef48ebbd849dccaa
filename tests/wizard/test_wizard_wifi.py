"""'Add a location' -> 'Join a Wi-Fi network': the dialog lists the networks, asks the
passphrase in a password field, says the wait and the result, keyboard only, at 80x24.

The Wi-Fi side is :class:`FakeWifi`, an explicit fake of the wizard's WifiServices: this
machine has no radio (and no mac80211_hwsim module), so no real scan or join can run
here. What the real module does with wpa_supplicant is tested in tests/unit/test_wifi.py
(a stand-in control socket) and tests/iso/test_wifi_join.py (the live ISO, simulated radios);
what is tested here is the wizard's behaviour."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from wizard_fakes import FixtureServices
from wizard_fixtures import english  # noqa: F401 (fixtures)
from wizard_helpers import on, press_button, run_async, to_select_image, wait_for

from rescue.net.wifi import JoinResult, Network, Status, WifiError
from rescue.wizard.app import RescueApp
from rescue.wizard.model import WizardState
from rescue.wizard.ports import WifiServices

PASS = "correct horse battery"
NETWORKS = [
    Network(b"rescue-test", "02:00:00:00:01:00", 2412, -30, "[WPA2-PSK-CCMP][ESS]"),
    Network(b"Guest", "02:00:00:00:02:00", 2437, -60, "[ESS]"),
    Network(b"corp", "02:00:00:00:03:00", 5180, -70, "[WPA2-EAP-CCMP][ESS]"),
]


@dataclass
class FakeWifi(FixtureServices):
    """FixtureServices plus a Wi-Fi adapter "wlan0" that finds :data:`NETWORKS`; the
    join takes *passphrase* for rescue-test and gives *address* (empty: no DHCP)."""

    networks: list[Network] = field(default_factory=lambda: list(NETWORKS))
    passphrase: str = PASS
    address: str = "10.0.0.23"
    hold_join: threading.Event | None = None  # the join waits for this
    joined: bytes | None = None

    def wifi_interfaces(self) -> list[str]:
        return ["wlan0"]

    def wifi_status(self, interface: str) -> Status:
        if self.joined is None:
            return Status(interface, "DISCONNECTED")
        return Status(interface, "COMPLETED", self.joined, address=self.address)

    def wifi_scan(self, interface: str) -> list[Network]:
        self.calls.append(("wifi_scan", interface))
        return list(self.networks)

    def wifi_join(self, interface: str, ssid: bytes, passphrase: str | None) -> JoinResult:
        self.calls.append(("wifi_join", interface, ssid, passphrase))
        if self.hold_join is not None:
            self.hold_join.wait(10)
        if ssid == b"rescue-test" and passphrase != self.passphrase:
            raise WifiError("The passphrase was not accepted by the Wi-Fi network "
                            "rescue-test. Check it (upper and lower case count) and try again.")
        self.joined = ssid
        where = (f"network address {self.address}" if self.address
                 else "but no network address was obtained")
        return JoinResult(interface, ssid, self.address,
                          f"Connected to the Wi-Fi network {ssid.decode()} ({interface}); "
                          f"{where}.")


def make_app(services: FixtureServices) -> RescueApp:
    return RescueApp(services, WizardState(), clock=lambda: 100.0, restart_countdown=0,
                     default_backup_name="web01")


def text(pilot, selector: str) -> str:
    return str(pilot.app.screen.query_one(selector).render())


async def open_wifi(pilot) -> None:
    await to_select_image(pilot)
    await press_button(pilot, "#add")
    await on(pilot, "AddLocationDialog")
    await wait_for(pilot, lambda: "wlan0" in text(pilot, "#wifi-state"), what="Wi-Fi state")
    assert text(pilot, "#wifi-state") == "wlan0: not connected (DISCONNECTED)."
    await press_button(pilot, "#wifi")
    await on(pilot, "WifiDialog")
    await wait_for(pilot, lambda: "found" in text(pilot, "#wifi-said"), what="scan")


def test_the_fake_is_what_the_wizard_asks_for() -> None:
    assert isinstance(FakeWifi(), WifiServices)
    assert not isinstance(FixtureServices(), WifiServices)


def test_join_a_network_with_its_passphrase() -> None:
    svc = FakeWifi()

    async def run() -> None:
        async with make_app(svc).run_test(size=(80, 24)) as pilot:
            await open_wifi(pilot)
            screen = pilot.app.screen
            options = screen.query_one("#networks")
            assert options.option_count == 3
            labels = [str(options.get_option_at_index(i).prompt) for i in range(3)]
            assert labels[0] == "rescue-test  ·  WPA2  ·  -30 dBm"
            assert labels[1] == "Guest  ·  open  ·  -60 dBm"
            assert "not supported" in labels[2]
            assert screen.query_one("#passphrase").password
            await pilot.press("enter")  # the strongest network is highlighted: choose it
            assert screen.focused is screen.query_one("#passphrase")
            await pilot.press(*PASS)
            await pilot.press("enter")
            await wait_for(pilot, lambda: "Connected" in text(pilot, "#wifi-said"),
                           what="join")
            assert ("wifi_join", "wlan0", b"rescue-test", PASS) in svc.calls
            assert screen.query_one("#passphrase").value == ""  # not kept in the field
            assert text(pilot, "#wifi-said") == ("Connected to the Wi-Fi network rescue-test "
                                                 "(wlan0); network address 10.0.0.23.")
            await pilot.press("enter")  # Close has the focus
            await on(pilot, "AddLocationDialog")
            assert "network address 10.0.0.23" in text(pilot, "#wifi-state")
            assert pilot.app.screen.focused is pilot.app.screen.query_one("#answer")
            await pilot.press(*"http://10.0.0.5/backups/", "enter")
            await on(pilot, "SelectImageScreen")
            assert pilot.app.state.locations == ["http://10.0.0.5/backups/"]

    run_async(run())


def test_a_wrong_passphrase_is_said_and_can_be_typed_again() -> None:
    svc = FakeWifi(hold_join=threading.Event())

    async def run() -> None:
        async with make_app(svc).run_test(size=(80, 24)) as pilot:
            await open_wifi(pilot)
            screen = pilot.app.screen
            await pilot.press("enter", *"wrong passphrase", "enter")
            await wait_for(pilot, lambda: "Joining rescue-test" in text(pilot, "#wifi-said"))
            assert screen.query_one("#join").disabled and screen.query_one("#refresh").disabled
            svc.hold_join.set()
            await wait_for(pilot, lambda: "not accepted" in text(pilot, "#wifi-said"))
            assert screen.focused is screen.query_one("#passphrase")
            assert not screen.query_one("#join").disabled
            await pilot.press(*PASS, "enter")
            await wait_for(pilot, lambda: "Connected" in text(pilot, "#wifi-said"))

    run_async(run())


def test_an_open_network_joins_without_a_passphrase_and_refresh_scans_again() -> None:
    svc = FakeWifi(address="")

    async def run() -> None:
        async with make_app(svc).run_test(size=(80, 24)) as pilot:
            await open_wifi(pilot)
            screen = pilot.app.screen
            await pilot.press("down")
            assert screen.query_one("#passphrase").disabled
            await pilot.press("enter")
            await wait_for(pilot, lambda: "no network address" in text(pilot, "#wifi-said"))
            assert ("wifi_join", "wlan0", b"Guest", None) in svc.calls
            svc.networks = []
            await press_button(pilot, "#refresh")
            await wait_for(pilot, lambda: "No Wi-Fi network" in text(pilot, "#wifi-said"))
            assert screen.query_one("#networks").option_count == 0
            assert screen.query_one("#join").disabled
            await pilot.press("escape")
            await on(pilot, "AddLocationDialog")
            assert "no network address" in text(pilot, "#wifi-state")
            await pilot.press("escape")
            await on(pilot, "SelectImageScreen")
            assert pilot.app.state.locations == []

    run_async(run())


def test_without_wifi_add_a_location_is_the_plain_question() -> None:
    async def run() -> None:
        async with make_app(FixtureServices()).run_test(size=(80, 24)) as pilot:
            await to_select_image(pilot)
            await press_button(pilot, "#add")
            await on(pilot, "InputDialog")

    run_async(run())
