"""Wi-Fi (rescue.net.wifi): wpa_supplicant's text read back (scan results, status,
events) for any SSID a hostile access point can send (escapes, bytes that are not UTF-8,
tabs, control characters, empty), and the join's steps against a stand-in wpa_supplicant
on a real control socket (tests/wifi_fakes.py: this machine has no radio)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wifi_fakes import AccessPoint, fake_wifi

from rescue.net.wifi import (
    CONNECTED,
    NOT_FOUND,
    OTHER,
    SCAN_DONE,
    WRONG_KEY,
    Network,
    WifiError,
    check_passphrase,
    classify_event,
    decode_ssid,
    encode_ssid,
    parse_scan_results,
    parse_status,
    show_ssid,
)

ssids = st.binary(min_size=1, max_size=32)
HEADER = "bssid / frequency / signal level / flags / ssid\n"


@given(ssids)
def test_an_escaped_ssid_reads_back_as_its_bytes(ssid: bytes) -> None:
    text = encode_ssid(ssid)
    assert "\t" not in text and "\n" not in text and text.isascii()
    assert decode_ssid(text) == ssid


@given(st.text())
def test_any_text_decodes_without_error(text: str) -> None:
    assert isinstance(decode_ssid(text), bytes)


@pytest.mark.parametrize(("text", "ssid"), [
    (r"caf\xc3\xa9", "café".encode()),
    (r"tab\there", b"tab\there"),
    (r"quote\"back\\slash", b'quote"back\\slash'),
    (r"\e[2J", b"\x1b[2J"),
    (r"\101\102", b"AB"),
    (r"\xf", b"\x0f"),
    (r"\q", b"q"),
    ("trailing\\", b"trailing\\"),
])
def test_wpa_supplicant_escapes(text: str, ssid: bytes) -> None:
    assert decode_ssid(text) == ssid


@given(st.binary(max_size=32))
def test_a_shown_ssid_cannot_drive_the_terminal(ssid: bytes) -> None:
    shown = show_ssid(ssid)
    assert shown and shown.isprintable()
    assert "\x1b" not in shown and "\t" not in shown


def test_shown_ssids() -> None:
    assert show_ssid("Café Wi-Fi".encode()) == "Café Wi-Fi"
    assert show_ssid(b"\x1b[2Jgone") == "\\x1b[2Jgone"
    assert show_ssid(b"\xff\xfe") == "\\xff\\xfe"
    assert show_ssid(b"a\\b") == "a\\\\b"  # a shown backslash is never an escape
    assert show_ssid(b"") == "(hidden network)"


@settings(max_examples=200)
@given(st.lists(st.tuples(ssids, st.integers(-95, -20),
                          st.sampled_from(["[WPA2-PSK-CCMP][ESS]", "[ESS]", "[WPA2-SAE-CCMP]"])),
                max_size=12))
def test_scan_results_hold_every_ssid_once_strongest_first(aps) -> None:
    lines = [f"02:00:00:00:{i // 256:02x}:{i % 256:02x}\t2412\t{signal}\t{flags}\t"
             f"{encode_ssid(ssid)}" for i, (ssid, signal, flags) in enumerate(aps)]
    found = parse_scan_results(HEADER + "\n".join(lines) + "\n")
    expected = {ssid for ssid, _, _ in aps if ssid.strip(b"\0")}
    assert {n.ssid for n in found} == expected
    assert [n.signal for n in found] == sorted((n.signal for n in found), reverse=True)
    for net in found:
        assert net.signal == max(s for ssid, s, _ in aps if ssid == net.ssid)


def test_scan_results_of_the_real_format() -> None:
    text = HEADER + (
        "02:00:00:00:01:00\t2412\t-30\t[WPA2-PSK-CCMP][ESS]\trescue-test\n"
        "0a:11:22:33:44:55\t5180\t-67\t[WPA2-PSK+SAE-CCMP][ESS]\tOffice\\tFloor 2\n"
        "0a:11:22:33:44:66\t2437\t-50\t[WPA2-SAE-CCMP][ESS]\tcaf\\xc3\\xa9\n"
        "0a:11:22:33:44:77\t2462\t-80\t[ESS]\tGuest\n"
        "0a:11:22:33:44:88\t2462\t-70\t[WPA2-EAP-CCMP][ESS]\tcorp\n"
        "0a:11:22:33:44:99\t2462\t-75\t[WEP][ESS]\told\n"
        "0a:11:22:33:44:aa\t2462\t-20\t[WPA2-PSK-CCMP][ESS]\t\n"  # hidden: no SSID
        "0a:11:22:33:44:bb\t2462\t-21\t[WPA-PSK-TKIP][ESS]\t\\x00\\x00\n"  # hidden too
        "garbage\n"
        "0a:11:22:33:44:cc\tnot-a-number\t-20\t[ESS]\tbroken\n"
    )
    found = parse_scan_results(text)
    assert [(n.name, n.security, n.band) for n in found] == [
        ("rescue-test", "WPA2", "2.4 GHz"), ("café", "WPA3", "2.4 GHz"),
        ("Office\\tFloor 2", "WPA2/WPA3", "5 GHz"), ("corp", "Enterprise", "2.4 GHz"),
        ("old", "WEP", "2.4 GHz"), ("Guest", "open", "2.4 GHz")]
    assert found[1].ssid == "café".encode()
    assert [n.supported for n in found] == [True, True, True, False, False, True]
    assert not found[-1].needs_passphrase
    assert Network(b"x", "", 2412, -1, "[WPA-PSK-TKIP][ESS]").security == "WPA"


def test_status() -> None:
    status = parse_status("wlan0", "bssid=02:00:00:00:01:00\nfreq=2412\nssid=tab\\there\n"
                          "id=0\nmode=station\nkey_mgmt=WPA2-PSK\nwpa_state=COMPLETED\n"
                          "ip_address=10.0.0.2\naddress=02:00:00:00:00:00\n")
    assert status.connected and status.ssid == b"tab\there" and status.frequency == 2412
    assert status.sentence() == "wlan0: connected to tab\\there, address 10.0.0.2."
    idle = parse_status("wlan0", "wpa_state=SCANNING\nfreq=x\n")
    assert not idle.connected and idle.ssid is None and idle.frequency == 0
    assert idle.sentence() == "wlan0: not connected (SCANNING)."
    assert parse_status("wlan0", "").sentence() == "wlan0: Wi-Fi is not in use."


@pytest.mark.parametrize(("line", "kind"), [
    ("<3>CTRL-EVENT-CONNECTED - Connection to 02:00:00:00:01:00 completed [id=0 id_str=]",
     CONNECTED),
    ("<3>WPA: 4-Way Handshake failed - pre-shared key may be incorrect", WRONG_KEY),
    ('<3>CTRL-EVENT-SSID-TEMP-DISABLED id=0 ssid="x" auth_failures=1 duration=10 '
     "reason=WRONG_KEY", WRONG_KEY),
    ("IFNAME=wlan0 <3>CTRL-EVENT-NETWORK-NOT-FOUND", NOT_FOUND),
    ("<3>CTRL-EVENT-SCAN-RESULTS ", SCAN_DONE),
    ("<3>CTRL-EVENT-SCAN-STARTED ", OTHER),
    ('<3>CTRL-EVENT-SSID-TEMP-DISABLED id=0 ssid="reason=WRONG_KEY" auth_failures=1 '
     "duration=10 reason=CONN_FAILED", OTHER),
])
def test_events(line: str, kind: str) -> None:
    assert classify_event(line) == kind


@given(st.text())
def test_any_event_line_is_classified(line: str) -> None:
    classify_event(line)


@pytest.mark.parametrize("passphrase", ["1234567", "x" * 64, "pässwört12", "tab\there1"])
def test_a_passphrase_wpa_cannot_take_is_refused_without_repeating_it(passphrase: str) -> None:
    with pytest.raises(WifiError) as err:
        check_passphrase(passphrase)
    assert passphrase not in str(err.value) and "8 to 63" in str(err.value)


@given(st.text(alphabet=string.printable[:95], min_size=8, max_size=63))
def test_printable_passphrases_are_taken(passphrase: str) -> None:
    check_passphrase(passphrase)


# -- the steps, against a stand-in wpa_supplicant (see tests/wifi_fakes.py) ----------

PASS = 'se"cret #pass'  # a quote and a hash: the reasons for the control socket


def test_interfaces_are_the_wireless_ones() -> None:
    with fake_wifi([]) as (wifi, _supplicant, _runner):
        assert wifi.interfaces() == ["wlan0"]
        assert wifi.interface() == "wlan0"
        with pytest.raises(WifiError, match="eth0 is not a Wi-Fi interface"):
            wifi.interface("eth0")
        (wifi.sys_net / "wlan0" / "wireless").rmdir()
        with pytest.raises(WifiError, match="no Wi-Fi adapter"):
            wifi.interface()


def test_scan_lists_the_networks_strongest_first() -> None:
    aps = [AccessPoint(b"far", None, signal=-80), AccessPoint(b"\x1b[2Jnear", PASS, -30)]
    with fake_wifi(aps) as (wifi, supplicant, runner):
        found = wifi.scan("wlan0")
    assert [n.name for n in found] == ["\\x1b[2Jnear", "far"]
    assert [n.security for n in found] == ["WPA2", "open"]
    assert "SCAN" in supplicant.requests and not runner.log  # already running: not started


def test_join_then_dhcp_says_the_address() -> None:
    ssid = b"tab\there \xff"
    with fake_wifi([AccessPoint(ssid, PASS)]) as (wifi, supplicant, runner):
        result = wifi.join("wlan0", ssid, PASS)
        assert wifi.status("wlan0").connected
    assert result.address == "10.0.0.23"
    assert result.message == ("Connected to the Wi-Fi network tab\\there \\xff (wlan0); "
                              "network address 10.0.0.23.")
    assert f"SET_NETWORK 0 ssid {ssid.hex()}" in supplicant.requests
    assert f'SET_NETWORK 0 psk "{PASS}"' in supplicant.requests
    dhclient = next(argv for argv in runner.log if argv[0] == "dhclient")
    assert dhclient[:3] == ["dhclient", "-1", "-v"] and dhclient[-1] == "wlan0"


def test_no_address_is_a_sentence_not_a_failure() -> None:
    with fake_wifi([AccessPoint(b"rescue-test", PASS)], address="") as (wifi, _s, _r):
        result = wifi.join("wlan0", b"rescue-test", PASS)
    assert result.address == ""
    assert "Connected to the Wi-Fi network rescue-test (wlan0), but no network address was " \
           "obtained" in result.message


def test_an_open_network() -> None:
    with fake_wifi([AccessPoint(b"Guest", None)]) as (wifi, supplicant, _runner):
        wifi.join("wlan0", b"Guest", None)
    assert "SET_NETWORK 0 key_mgmt NONE" in supplicant.requests
    assert not any("psk" in r for r in supplicant.requests)


def test_a_wrong_passphrase_is_said_as_such() -> None:
    with fake_wifi([AccessPoint(b"rescue-test", PASS)]) as (wifi, supplicant, runner), \
            pytest.raises(WifiError) as err:
        wifi.join("wlan0", b"rescue-test", "not the passphrase")
    assert str(err.value).startswith("The passphrase was not accepted by the Wi-Fi network "
                                     "rescue-test.")
    assert "not the passphrase" not in str(err.value)
    assert not any(argv[0] == "dhclient" for argv in runner.log)
    assert "DISCONNECT" in supplicant.requests


def test_a_network_out_of_reach() -> None:
    with fake_wifi([], connect_timeout=1.5) as (wifi, _supplicant, _runner), \
            pytest.raises(WifiError, match="not in reach"):
        wifi.join("wlan0", b"elsewhere", PASS)


def test_wpa_supplicant_is_started_when_it_does_not_answer() -> None:
    with fake_wifi([]) as (wifi, supplicant, runner):
        supplicant.close()
        with pytest.raises(WifiError, match="wpa_supplicant did not start on wlan0"):
            wifi.clock = iter(range(0, 1000, 20)).__next__  # 10 s pass at once
            wifi.start("wlan0")
    programs = [argv[0] for argv in runner.log]
    assert programs == ["rfkill", "ip", "wpa_supplicant"]
    start = runner.log[2]
    conf = start[start.index("-c") + 1]
    assert start[start.index("-C") + 1] == str(wifi.ctrl_dir)
    assert "-B" in start and start[start.index("-i") + 1] == "wlan0"
    assert conf.endswith("/wpa-wlan0.conf")


def test_the_cli_scan_and_status(monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from rescue import cli, services

    aps = [AccessPoint(b"rescue-test", PASS, -30), AccessPoint(b"Guest", None, -70),
           AccessPoint(b"corp", None, -60, flags="[WPA2-EAP-CCMP][ESS]")]
    with fake_wifi(aps) as (wifi, _supplicant, _runner):
        monkeypatch.setattr(services, "wifi", lambda runner=None: wifi)
        assert cli.main(["wifi", "scan"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split() == ["SSID", "SIGNAL", "BAND", "SECURITY"]
        assert lines[1].split() == ["rescue-test", "-30", "dBm", "2.4", "GHz", "WPA2"]
        assert lines[3].split()[-1] == "open"
        assert cli.main(["wifi", "status"]) == 0
        assert capsys.readouterr().out == "wlan0: not connected (DISCONNECTED).\n"
        assert cli.main(["wifi", "join", "corp"]) == 2  # Enterprise: refused at once
        assert "cannot join" in capsys.readouterr().err
        assert cli.main(["wifi", "join", "Guest"]) == 0  # open: no passphrase asked
        assert "Connected to the Wi-Fi network Guest" in capsys.readouterr().out
        assert cli.main(["wifi", "status", "-i", "eth0"]) == 30
