"""A stand-in wpa_supplicant for the Wi-Fi tests: this machine has no radio and no
mac80211_hwsim module, so the real one cannot run here (tests/iso/test_wifi_join.py runs it in
the live ISO under QEMU, on simulated radios).

:class:`FakeSupplicant` answers on a real control socket (a UNIX datagram socket, as
wpa_supplicant's) what wpa_supplicant 2.10 answers: PING, ATTACH, SCAN (then the event
CTRL-EVENT-SCAN-RESULTS), SCAN_RESULTS (escaped SSIDs, as printf_encode writes them),
ADD_NETWORK / SET_NETWORK / SELECT_NETWORK (then CTRL-EVENT-CONNECTED for the right
passphrase, the 4-Way Handshake failure and WRONG_KEY events for a wrong one,
CTRL-EVENT-NETWORK-NOT-FOUND for an SSID out of reach) and STATUS. It keeps every
request it got, so a test can see that the passphrase went over the socket.
:class:`FakeRunner` stands in for ``ip``, ``wpa_supplicant`` and ``dhclient``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rescue.net.wifi import Wifi, encode_ssid
from rescue.runner import CommandRunner, Result


@dataclass
class AccessPoint:
    ssid: bytes
    passphrase: str | None  # None: open
    signal: int = -40
    bssid: str = "02:00:00:00:01:00"
    frequency: int = 2412
    flags: str = ""

    def line(self) -> str:
        flags = self.flags or ("[WPA2-PSK-CCMP][ESS]" if self.passphrase else "[ESS]")
        return f"{self.bssid}\t{self.frequency}\t{self.signal}\t{flags}\t{encode_ssid(self.ssid)}"


class FakeSupplicant:
    def __init__(self, path: Path, aps: list[AccessPoint]) -> None:
        self.path, self.aps = path, aps
        self.requests: list[str] = []
        self.networks: dict[int, dict[str, str]] = {}
        self.state = "DISCONNECTED"
        self.current: AccessPoint | None = None
        self.monitors: set[str] = set()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def event(self, text: str) -> None:
        for peer in list(self.monitors):
            with contextlib.suppress(OSError):
                self.sock.sendto(f"<3>{text}".encode(), peer)

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            command = data.decode("utf-8", "surrogateescape")
            self.requests.append(command)
            reply = self.answer(command, peer)
            with contextlib.suppress(OSError):
                self.sock.sendto(reply.encode("utf-8", "surrogateescape"), peer)
            self.after(command)

    def answer(self, command: str, peer: str) -> str:
        words = command.split(" ", 3)
        if command == "PING":
            return "PONG\n"
        if command == "ATTACH":
            self.monitors.add(peer)
            return "OK\n"
        if command == "DETACH":
            self.monitors.discard(peer)
            return "OK\n"
        if command in ("SCAN", "DISCONNECT"):
            return "OK\n"
        if command == "SCAN_RESULTS":
            return "bssid / frequency / signal level / flags / ssid\n" + "".join(
                ap.line() + "\n" for ap in self.aps)
        if command == "ADD_NETWORK":
            net_id = len(self.networks)
            self.networks[net_id] = {}
            return f"{net_id}\n"
        if command == "REMOVE_NETWORK all":
            self.networks.clear()
            return "OK\n"
        if words[0] == "SET_NETWORK" and len(words) == 4:
            if words[2] == "psk" and words[3].startswith('"') and not (
                    10 <= len(words[3]) <= 65):
                return "FAIL\n"
            self.networks[int(words[1])][words[2]] = words[3]
            return "OK\n"
        if words[0] == "SELECT_NETWORK":
            return "OK\n"
        if command == "STATUS":
            lines = [f"wpa_state={self.state}"]
            if self.current is not None and self.state == "COMPLETED":
                lines[:0] = [f"bssid={self.current.bssid}", f"freq={self.current.frequency}",
                             f"ssid={encode_ssid(self.current.ssid)}", "id=0",
                             "mode=station", "key_mgmt=WPA2-PSK"]
            lines.append("address=02:00:00:00:00:00")
            return "\n".join(lines) + "\n"
        return "UNKNOWN COMMAND\n"

    def after(self, command: str) -> None:
        """The events a request sets off (sent after its reply, as wpa_supplicant does)."""
        if command == "SCAN":
            self.event("CTRL-EVENT-SCAN-STARTED ")
            self.event("CTRL-EVENT-SCAN-RESULTS ")
        elif command.startswith("SELECT_NETWORK"):
            net = self.networks[int(command.split()[1])]
            ssid = bytes.fromhex(net["ssid"])
            ap = next((a for a in self.aps if a.ssid == ssid), None)
            if ap is None:
                self.event("CTRL-EVENT-NETWORK-NOT-FOUND")
                return
            given = net.get("psk", "")
            if (ap.passphrase or "") and given != f'"{ap.passphrase}"':
                self.state = "4WAY_HANDSHAKE"
                self.event("WPA: 4-Way Handshake failed - pre-shared key may be incorrect")
                self.event(f'CTRL-EVENT-SSID-TEMP-DISABLED id=0 ssid="{encode_ssid(ssid)}" '
                           "auth_failures=1 duration=10 reason=WRONG_KEY")
                self.state = "DISCONNECTED"
                return
            self.state, self.current = "COMPLETED", ap
            self.event(f"CTRL-EVENT-CONNECTED - Connection to {ap.bssid} completed [id=0 "
                       "id_str=]")


class FakeRunner(CommandRunner):
    """``ip``, ``wpa_supplicant``, ``rfkill`` and ``dhclient`` as the tests want them; every
    argv is kept (what ``ps`` would have shown)."""

    def __init__(self, address: str = "") -> None:
        self.address = address
        self.log: list[list[str]] = []
        self.inputs: list[str | None] = []

    def run(self, argv, **kwargs) -> Result:  # type: ignore[override]
        args = [str(a) for a in argv]
        self.log.append(args)
        self.inputs.append(kwargs.get("input"))
        if args[:3] == ["ip", "-4", "-o"] and self.address:
            return Result(args, 0, f"3: wlan0    inet {self.address}/24 brd 10.0.0.255 scope "
                          "global dynamic wlan0\\       valid_lft 600sec\n", "")
        return Result(args, 0, "", "")


@contextlib.contextmanager
def fake_wifi(aps: list[AccessPoint], address: str = "10.0.0.23",
              interface: str = "wlan0", **kw) -> Iterator[tuple[Wifi, FakeSupplicant,
                                                                  FakeRunner]]:
    """A Wifi whose sysfs shows *interface* as wireless, whose wpa_supplicant is a
    :class:`FakeSupplicant` already running, and whose programs are a FakeRunner. In a
    short temporary folder of its own: a socket's path has at most 107 bytes."""
    tmp = Path(tempfile.mkdtemp(prefix="wifi-"))
    sys_net = tmp / "sys-class-net"
    (sys_net / interface / "wireless").mkdir(parents=True)
    (sys_net / "eth0").mkdir()
    ctrl_dir, run_dir = tmp / "ctrl", tmp / "run"
    ctrl_dir.mkdir()
    supplicant = FakeSupplicant(ctrl_dir / interface, aps)
    runner = FakeRunner(address)
    wifi = Wifi(runner, sys_net=sys_net, run_dir=run_dir, ctrl_dir=ctrl_dir,
                **({"connect_timeout": 5.0, "scan_timeout": 3.0, "dhcp_timeout": 5.0} | kw))
    try:
        yield wifi, supplicant, runner
    finally:
        supplicant.close()
        shutil.rmtree(tmp, ignore_errors=True)

