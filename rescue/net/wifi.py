"""Join a Wi-Fi network from the live system (docs/WIFI.md).

wpa_supplicant does the radio work; this module starts it (one per wireless interface,
with a configuration file that holds nothing but its control socket) and talks to it
over that control socket, the same datagram protocol ``wpa_cli`` speaks. The passphrase
travels only over that socket (a root-only folder): it is never on a command line
(``ps``), never in a file, a log, an event or an exception message. Programs that carry
no secret (``ip``, ``wpa_supplicant``, ``dhclient``) run through the project's
:class:`~rescue.runner.CommandRunner`.

SSIDs are bytes (up to 32, any value): they are read back from wpa_supplicant's escaped
text (:func:`decode_ssid`), handed to it hex-encoded, and shown with every control or
undecodable byte escaped (:func:`show_ssid`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rescue.errors import DeviceError, ExternalCommandError
from rescue.i18n import _
from rescue.runner import CommandRunner

SYS_NET = Path("/sys/class/net")
RUN_DIR = Path("/run/rescue")  # root only (0700): configuration, our socket ends, leases
CTRL_DIR = Path("/run/wpa_supplicant")  # wpa_supplicant's control sockets, one per interface

CONNECT_TIMEOUT = 40.0  # seconds from "select this network" to wpa_state=COMPLETED
SCAN_TIMEOUT = 15.0  # seconds a scan may take before the results so far are read
DHCP_TIMEOUT = 30.0  # seconds dhclient may take to get an address

#: wpa_supplicant's states (``wpa_cli status``: wpa_state=...)
COMPLETED = "COMPLETED"


class WifiError(DeviceError):
    """Wi-Fi could not be used; the sentence says why and what to do."""


# -- reading wpa_supplicant's text --------------------------------------------------


# wpa_supplicant's one-letter escapes (printf_encode / printf_decode), both directions
_SIMPLE = {"\\": 0x5C, '"': 0x22, "n": 0x0A, "r": 0x0D, "t": 0x09, "e": 0x1B}
_ESCAPE = {byte: "\\" + letter for letter, byte in _SIMPLE.items()}


def encode_ssid(ssid: bytes) -> str:
    """*ssid* escaped the way wpa_supplicant prints it (its ``printf_encode``)."""
    return "".join(_ESCAPE.get(b) or (chr(b) if 32 <= b <= 126 else f"\\x{b:02x}")
                   for b in ssid)


_HEX = "0123456789abcdefABCDEF"


def decode_ssid(text: str) -> bytes:
    """The SSID bytes of wpa_supplicant's escaped text (its ``printf_decode``): ``\\\\``,
    ``\\"``, ``\\n``, ``\\r``, ``\\t``, ``\\e``, ``\\xHH`` and octal ``\\NNN``; any other
    character stands for its own UTF-8 bytes. Never fails, on any text."""
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "\\" or i + 1 >= n:
            out += c.encode("utf-8", "surrogateescape")
            i += 1
            continue
        e = text[i + 1]
        if e in _SIMPLE:
            out.append(_SIMPLE[e])
            i += 2
        elif e == "x":
            digits = text[i + 2:i + 4]
            count = 2 if len(digits) == 2 and all(d in _HEX for d in digits) else (
                1 if digits[:1] and digits[0] in _HEX else 0)
            if count:
                out.append(int(text[i + 2:i + 2 + count], 16))
            i += 2 + count
        elif e in "01234567":
            j = i + 1
            val = 0
            while j < n and j < i + 4 and text[j] in "01234567":
                val = val * 8 + int(text[j])
                j += 1
            out.append(val & 0xFF)
            i = j
        else:
            i += 1  # wpa_supplicant drops a backslash it does not know
    return bytes(out)


def show_ssid(ssid: bytes) -> str:
    """*ssid* for a screen or a log line: UTF-8 where it is, every control character and
    every other byte escaped (``\\x1b``), so no SSID can move a cursor or clear a screen.
    An empty SSID (a hidden network) is shown as such."""
    if not ssid:
        return _("(hidden network)")
    out = []
    for ch in ssid.decode("utf-8", "surrogateescape"):
        if "\udc80" <= ch <= "\udcff":  # a byte that is not UTF-8
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def _key_values(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and key not in values:
            values[key] = value
    return values


@dataclass(frozen=True)
class Network:
    """One network a scan found (its strongest access point)."""

    ssid: bytes
    bssid: str
    frequency: int  # MHz
    signal: int  # dBm; larger (closer to 0) is stronger
    flags: str  # wpa_supplicant's, e.g. "[WPA2-PSK-CCMP][ESS]"

    @property
    def name(self) -> str:
        return show_ssid(self.ssid)

    @property
    def security(self) -> str:
        """open, WEP, WPA, WPA2, WPA3, WPA2/WPA3 or Enterprise (802.1X)."""
        f = self.flags
        if "EAP" in f:
            return "Enterprise"
        sae, psk = "SAE" in f, "PSK" in f
        if sae and psk:
            return "WPA2/WPA3"
        if sae:
            return "WPA3"
        if psk:
            return "WPA2" if ("WPA2" in f or "RSN" in f) else "WPA"
        if "WEP" in f:
            return "WEP"
        return "open"

    @property
    def needs_passphrase(self) -> bool:
        return self.security != "open"

    @property
    def supported(self) -> bool:
        """False for what a passphrase cannot join: Enterprise (802.1X) and WEP."""
        return self.security not in ("Enterprise", "WEP")

    @property
    def band(self) -> str:
        return "5 GHz" if 4900 <= self.frequency < 5900 else (
            "6 GHz" if self.frequency >= 5925 else "2.4 GHz")


def parse_scan_results(text: str) -> list[Network]:
    """``SCAN_RESULTS`` (``wpa_cli scan_results``): one network per SSID (its strongest
    access point), strongest first, hidden networks (empty SSID) left out. Lines that
    are not results (the header, garbage) are skipped."""
    best: dict[bytes, Network] = {}
    for line in text.splitlines():
        parts = line.split("\t", 4)
        if len(parts) < 4 or not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", parts[0]):
            continue
        try:
            frequency, signal = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        ssid = decode_ssid(parts[4]) if len(parts) == 5 else b""
        if not ssid.strip(b"\0"):
            continue
        net = Network(ssid, parts[0].lower(), frequency, signal, parts[3])
        if ssid not in best or signal > best[ssid].signal:
            best[ssid] = net
    return sorted(best.values(), key=lambda n: (-n.signal, n.ssid))


@dataclass(frozen=True)
class Status:
    """``STATUS`` of one interface, plus its IPv4 address."""

    interface: str
    state: str  # wpa_state: COMPLETED, SCANNING, DISCONNECTED, ... or "" (not running)
    ssid: bytes | None = None
    bssid: str = ""
    frequency: int = 0
    key_mgmt: str = ""
    address: str = ""

    @property
    def connected(self) -> bool:
        return self.state == COMPLETED

    def sentence(self) -> str:
        if not self.state:
            return _("{interface}: Wi-Fi is not in use.").format(interface=self.interface)
        if not self.connected:
            return _("{interface}: not connected ({state}).").format(
                interface=self.interface, state=self.state)
        name = show_ssid(self.ssid or b"")
        if self.address:
            return _("{interface}: connected to {ssid}, address {address}.").format(
                interface=self.interface, ssid=name, address=self.address)
        return _("{interface}: connected to {ssid}, no network address yet.").format(
            interface=self.interface, ssid=name)


def parse_status(interface: str, text: str) -> Status:
    values = _key_values(text)
    try:
        frequency = int(values.get("freq", "0"))
    except ValueError:
        frequency = 0
    return Status(interface, values.get("wpa_state", ""),
                  decode_ssid(values["ssid"]) if "ssid" in values else None,
                  values.get("bssid", ""), frequency, values.get("key_mgmt", ""),
                  values.get("ip_address", ""))


#: what an event means for a join in progress
CONNECTED, WRONG_KEY, NOT_FOUND, REJECTED, SCAN_DONE, OTHER = (
    "connected", "wrong-key", "not-found", "rejected", "scan-done", "other")


def classify_event(line: str) -> str:
    """One unsolicited message of wpa_supplicant (``<3>CTRL-EVENT-...``)."""
    text = re.sub(r"^(IFNAME=\S+ )?(<\d+>)?", "", line.strip())
    if text.startswith("CTRL-EVENT-CONNECTED"):
        return CONNECTED
    # the SSID is inside the line (quoted, escaped): only the line's start and its
    # last field (reason=...) are wpa_supplicant's own words
    if text.startswith(("WPA: 4-Way Handshake failed",
                        "CTRL-EVENT-SAE-UNKNOWN-PASSWORD-IDENTIFIER")) or (
            text.startswith("CTRL-EVENT-SSID-TEMP-DISABLED")
            and re.search(r" reason=WRONG_KEY$", text) is not None):
        return WRONG_KEY
    if text.startswith("CTRL-EVENT-NETWORK-NOT-FOUND"):
        return NOT_FOUND
    if text.startswith(("CTRL-EVENT-ASSOC-REJECT", "CTRL-EVENT-AUTH-REJECT")):
        return REJECTED
    if text.startswith(("CTRL-EVENT-SCAN-RESULTS", "CTRL-EVENT-SCAN-FAILED")):
        return SCAN_DONE
    return OTHER


def check_passphrase(passphrase: str) -> None:
    """A WPA passphrase: 8 to 63 printable ASCII characters, or 64 hex digits (a raw
    key). The sentence never repeats it."""
    if re.fullmatch(r"[0-9a-fA-F]{64}", passphrase):
        return
    if not 8 <= len(passphrase) <= 63 or not all(32 <= ord(c) <= 126 for c in passphrase):
        raise WifiError(_(
            "A Wi-Fi passphrase has 8 to 63 characters (letters, digits, spaces and "
            "punctuation, no accented letters); the one given has {count}. Type it again."
        ).format(count=len(passphrase)))


# -- the control socket -------------------------------------------------------------

_counter = itertools.count()


class Control:
    """A connection to one wpa_supplicant control socket (what ``wpa_cli -i IF`` opens):
    requests and their replies; once attached, the events in between are kept in
    :attr:`events`. Our end is a socket file in *run_dir* (root only)."""

    def __init__(self, path: Path, run_dir: Path = RUN_DIR, timeout: float = 10.0) -> None:
        self.path, self.timeout = path, timeout
        self.events: list[str] = []
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.local = run_dir / f"wpa-ctrl-{os.getpid()}-{next(_counter)}"
        with contextlib.suppress(FileNotFoundError):
            self.local.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.sock.bind(str(self.local))
            self.sock.connect(str(path))
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.local.unlink()

    def __enter__(self) -> Control:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, command: str, timeout: float | None = None) -> str:
        """Send *command*, return its reply (events that arrive first are kept). The
        command is never part of an error: it may hold a passphrase."""
        self.sock.send(command.encode("utf-8"))
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("wpa_supplicant did not answer")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            text = data.decode("utf-8", "surrogateescape")
            if text.startswith("<"):
                self.events.append(text)
                continue
            return text

    def ok(self, command: str) -> None:
        """A request that answers OK; *command*'s first two words name it in an error
        (never its value)."""
        if self.request(command).strip() != "OK":
            what = " ".join(command.split(" ")[:3 if command.startswith("SET_NETWORK") else 1])
            raise WifiError(_("wpa_supplicant refused the request {what}.").format(what=what))

    def wait_event(self, timeout: float) -> str | None:
        """The next event (kept ones first), or None after *timeout* seconds."""
        if self.events:
            return self.events.pop(0)
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return None
        return data.decode("utf-8", "surrogateescape")


# -- the adapter ----------------------------------------------------------------------


@dataclass
class JoinResult:
    interface: str
    ssid: bytes
    address: str = ""  # IPv4 address DHCP gave, "" when none
    message: str = ""  # the sentence for the technician

    @property
    def name(self) -> str:
        return show_ssid(self.ssid)


@dataclass
class Wifi:
    """Wi-Fi on this machine: list interfaces, scan, join, status.

    *runner* runs ``ip``, ``wpa_supplicant`` and ``dhclient`` (never anything that holds
    the passphrase); the folders are parameters so that tests can put a fake
    wpa_supplicant's socket in a temporary folder."""

    runner: CommandRunner = field(default_factory=CommandRunner)
    sys_net: Path = SYS_NET
    run_dir: Path = RUN_DIR
    ctrl_dir: Path = CTRL_DIR
    connect_timeout: float = CONNECT_TIMEOUT
    scan_timeout: float = SCAN_TIMEOUT
    dhcp_timeout: float = DHCP_TIMEOUT
    clock: Callable[[], float] = time.monotonic

    def interfaces(self) -> list[str]:
        """Wireless interfaces (a ``wireless`` or ``phy80211`` entry in sysfs), by name."""
        try:
            names = sorted(p.name for p in self.sys_net.iterdir())
        except OSError:
            return []
        return [n for n in names if (self.sys_net / n / "wireless").exists()
                or (self.sys_net / n / "phy80211").exists()]

    def interface(self, name: str | None = None) -> str:
        """*name*, checked, or the first wireless interface."""
        found = self.interfaces()
        if name:
            if name not in found:
                raise WifiError(_(
                    "{interface} is not a Wi-Fi interface (Wi-Fi interfaces here: {found})."
                ).format(interface=name, found=", ".join(found) or _("none")))
            return name
        if not found:
            raise WifiError(_(
                "This machine has no Wi-Fi adapter the live system can use: none was found, "
                "or its driver or firmware is missing (see `dmesg`). Use a network cable."))
        return found[0]

    # -- wpa_supplicant ---------------------------------------------------------------
    def _socket(self, interface: str) -> Path:
        return self.ctrl_dir / interface

    @contextlib.contextmanager
    def control(self, interface: str) -> Iterator[Control]:
        with Control(self._socket(interface), self.run_dir) as ctrl:
            yield ctrl

    def _answers(self, interface: str) -> bool:
        try:
            with self.control(interface) as ctrl:
                return ctrl.request("PING", timeout=2).strip() == "PONG"
        except OSError:
            return False

    def start(self, interface: str) -> None:
        """wpa_supplicant running for *interface* (started when it is not), the link up."""
        if self._answers(interface):
            return
        with contextlib.suppress(ExternalCommandError):
            self.runner.run(["rfkill", "unblock", "wifi"], check=False, timeout=10)
        self.runner.run(["ip", "link", "set", interface, "up"], timeout=30,
                        what=_("Bringing up {interface}").format(interface=interface))
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        conf = self.run_dir / f"wpa-{interface}.conf"
        with contextlib.suppress(FileNotFoundError):
            conf.unlink()
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"ctrl_interface={self.ctrl_dir}\nupdate_config=0\n")
        self.runner.run(
            ["wpa_supplicant", "-B", "-i", interface, "-D", "nl80211,wext", "-c", str(conf),
             "-C", str(self.ctrl_dir), "-P", str(self.run_dir / f"wpa-{interface}.pid")],
            timeout=30, what=_("Starting wpa_supplicant on {interface}").format(
                interface=interface))
        deadline = self.clock() + 10
        while not self._answers(interface):
            if self.clock() > deadline:
                raise WifiError(_(
                    "wpa_supplicant did not start on {interface}; the adapter's driver may "
                    "not support it (see `dmesg`)."
                ).format(interface=interface))
            time.sleep(0.2)

    def scan(self, interface: str) -> list[Network]:
        """Networks in reach, strongest first (waits for a fresh scan, at most
        :attr:`scan_timeout` seconds)."""
        self.start(interface)
        with self.control(interface) as ctrl:
            ctrl.ok("ATTACH")
            reply = ctrl.request("SCAN").strip()
            if reply in ("OK", "FAIL-BUSY"):  # busy: a scan is running already
                deadline = self.clock() + self.scan_timeout
                while (left := deadline - self.clock()) > 0:
                    event = ctrl.wait_event(min(left, 1.0))
                    if event is not None and classify_event(event) == SCAN_DONE:
                        break
            results = ctrl.request("SCAN_RESULTS")
            with contextlib.suppress(OSError):
                ctrl.request("DETACH")
        return parse_scan_results(results)

    def status(self, interface: str) -> Status:
        if not self._answers(interface):
            return Status(interface, "", address=self.address(interface))
        with self.control(interface) as ctrl:
            status = parse_status(interface, ctrl.request("STATUS"))
        address = self.address(interface) or status.address
        return Status(status.interface, status.state, status.ssid, status.bssid,
                      status.frequency, status.key_mgmt, address)

    def address(self, interface: str) -> str:
        """The interface's first IPv4 address, "" when it has none."""
        try:
            out = self.runner.run(["ip", "-4", "-o", "addr", "show", "dev", interface],
                                  check=False, timeout=10).stdout
        except ExternalCommandError:
            return ""
        match = re.search(r"\binet (\d+\.\d+\.\d+\.\d+)", out)
        return match.group(1) if match else ""

    def join(self, interface: str, ssid: bytes, passphrase: str | None,
             dhcp: bool = True) -> JoinResult:
        """Join *ssid* (with *passphrase*; None or "" for an open network), wait for
        wpa_state=COMPLETED, then ask for an address with DHCP. Raises WifiError with a
        sentence when the network is not joined; no address is a sentence in the
        result, not an error (the link is up; a location by IP address may still be
        reached once a DHCP server answers or an address is set by hand)."""
        if not ssid or len(ssid) > 32:
            raise WifiError(_("A Wi-Fi network name (SSID) has 1 to 32 bytes."))
        if passphrase:
            check_passphrase(passphrase)
        name = show_ssid(ssid)
        self.start(interface)
        with self.control(interface) as ctrl:
            ctrl.ok("ATTACH")
            ctrl.ok("REMOVE_NETWORK all")
            net_id = ctrl.request("ADD_NETWORK").strip()
            if not net_id.isdigit():
                raise WifiError(_("wpa_supplicant refused the request {what}.").format(
                    what="ADD_NETWORK"))
            ctrl.ok(f"SET_NETWORK {net_id} ssid {ssid.hex()}")
            ctrl.ok(f"SET_NETWORK {net_id} scan_ssid 1")  # hidden networks too
            if passphrase:
                ctrl.ok(f"SET_NETWORK {net_id} key_mgmt WPA-PSK WPA-PSK-SHA256 SAE")
                ctrl.ok(f"SET_NETWORK {net_id} ieee80211w 1")  # WPA3 needs it, WPA2 allows it
                raw = re.fullmatch(r"[0-9a-fA-F]{64}", passphrase) is not None
                ctrl.ok(f"SET_NETWORK {net_id} psk "
                        + (passphrase if raw else f'"{passphrase}"'))
            else:
                ctrl.ok(f"SET_NETWORK {net_id} key_mgmt NONE")
            ctrl.ok(f"SELECT_NETWORK {net_id}")
            self._wait_connected(ctrl, interface, name)
        if not dhcp:
            return JoinResult(interface, ssid, "", _(
                "Connected to the Wi-Fi network {ssid} ({interface}).").format(
                ssid=name, interface=interface))
        address = self.dhcp(interface)
        if address:
            message = _("Connected to the Wi-Fi network {ssid} ({interface}); network "
                        "address {address}.").format(ssid=name, interface=interface,
                                                     address=address)
        else:
            message = _(
                "Connected to the Wi-Fi network {ssid} ({interface}), but no network address "
                "was obtained: no DHCP server answered within {seconds} s. Locations on "
                "this network cannot be reached until the machine has an address."
            ).format(ssid=name, interface=interface, seconds=int(self.dhcp_timeout))
        return JoinResult(interface, ssid, address, message)

    def _wait_connected(self, ctrl: Control, interface: str, name: str) -> None:
        deadline = self.clock() + self.connect_timeout
        not_found = rejected = False
        while (left := deadline - self.clock()) > 0:
            event = ctrl.wait_event(min(left, 1.0))
            kind = classify_event(event) if event is not None else OTHER
            if kind == WRONG_KEY:
                with contextlib.suppress(OSError, WifiError):
                    ctrl.ok("DISCONNECT")
                raise WifiError(_(
                    "The passphrase was not accepted by the Wi-Fi network {ssid}. Check it "
                    "(upper and lower case count) and try again."
                ).format(ssid=name))
            not_found = not_found or kind == NOT_FOUND
            rejected = rejected or kind == REJECTED
            if kind == CONNECTED or (event is None and parse_status(
                    interface, ctrl.request("STATUS")).connected):
                return
        state = parse_status(interface, ctrl.request("STATUS")).state
        with contextlib.suppress(OSError, WifiError):
            ctrl.ok("DISCONNECT")
        if not_found:
            raise WifiError(_(
                "The Wi-Fi network {ssid} is not in reach of this machine's adapter: move "
                "closer, or check the network's name (upper and lower case count)."
            ).format(ssid=name))
        if rejected:
            raise WifiError(_(
                "The Wi-Fi network {ssid} refused this machine (it may allow only known "
                "devices, or need a security mode the live system does not offer)."
            ).format(ssid=name))
        raise WifiError(_(
            "The Wi-Fi network {ssid} was not joined within {seconds} s (state: {state}). "
            "Check the passphrase and that the network is in reach, then try again."
        ).format(ssid=name, seconds=int(self.connect_timeout), state=state or "?"))

    def dhcp(self, interface: str) -> str:
        """Ask for an address (``dhclient -1``, at most :attr:`dhcp_timeout` seconds);
        the address, or "" when none came."""
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(ExternalCommandError):
            self.runner.run(
                ["dhclient", "-1", "-v", "-pf", str(self.run_dir / f"dhclient-{interface}.pid"),
                 "-lf", str(self.run_dir / f"dhclient-{interface}.leases"), interface],
                check=False, timeout=self.dhcp_timeout)
        return self.address(interface)
