"""rescue wifi scan | join | status: Wi-Fi on the live system (docs/WIFI.md)."""

from __future__ import annotations

import argparse
import getpass
import sys

from rescue import services
from rescue.errors import UsageError

EPILOG = """\
examples:
  rescue wifi scan
  rescue wifi join office-net                      (asks for the passphrase)
  rescue wifi join office-net --passphrase-file /root/wifi.txt
  rescue wifi join guest --open
  rescue wifi status

The passphrase is read from the terminal (not shown) or from a file (its first line);
it is never accepted on the command line, where other users could read it (ps), and
never written to a log. After joining, an address is asked for with DHCP; without one
the link is up but locations on the network cannot be reached yet."""


class RefusePassphrase(argparse.Action):
    """``--passphrase WORDS``: refused, without repeating the words."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        parser.error("a passphrase is not taken on the command line, where other users can "
                     "read it (ps); use --passphrase-file FILE, or leave it out to be asked")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "wifi", help="scan for Wi-Fi networks, join one, show the connection",
        description="Join a Wi-Fi network from the live system (wpa_supplicant), so images\n"
        "on a network share or web server can be reached without a cable.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="wifi_command", metavar="ACTION")
    actions.required = True

    def interface_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-i", "--interface", metavar="IF",
                            help="the wireless interface (default: the first one, e.g. wlan0)")

    s = actions.add_parser("scan", help="list the networks in reach, strongest first",
                           description="Scan and list the Wi-Fi networks in reach: name "
                           "(SSID), signal (dBm, closer to 0 is stronger), band and security "
                           "(open, WPA2, WPA3, ...). Starts wpa_supplicant when needed.")
    interface_option(s)
    s.set_defaults(func=cmd_scan)
    j = actions.add_parser("join", help="join a network and get an address (DHCP)",
                           description="Join the Wi-Fi network SSID, wait until it is "
                           "joined, then ask for an\naddress with DHCP. A wrong passphrase "
                           "is said as such; no address is a\nwarning, not a failure.",
                           epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                           allow_abbrev=False)
    j.add_argument("ssid", metavar="SSID", help="the network's name, as 'rescue wifi scan' "
                   "shows it (upper and lower case count)")
    how = j.add_mutually_exclusive_group()
    how.add_argument("--passphrase-file", metavar="FILE",
                     help="read the passphrase from the first line of FILE")
    how.add_argument("--open", action="store_true",
                     help="an open network: no passphrase")
    j.add_argument("--passphrase", action=RefusePassphrase, help=argparse.SUPPRESS)
    j.add_argument("--no-dhcp", action="store_true",
                   help="only join; do not ask for an address")
    interface_option(j)
    j.set_defaults(func=cmd_join)
    t = actions.add_parser("status", help="show whether and where Wi-Fi is connected",
                           description="Show each wireless interface: the network it is "
                           "joined to and its address.")
    interface_option(t)
    t.set_defaults(func=cmd_status)


def cmd_scan(args: argparse.Namespace) -> int:
    wifi = services.wifi()
    interface = wifi.interface(args.interface)
    networks = wifi.scan(interface)
    if not networks:
        print(f"{interface}: no Wi-Fi network in reach.")
        return 0
    width = max(len(n.name) for n in networks)
    print(f"{'SSID':<{width}}  SIGNAL    BAND     SECURITY")
    for n in networks:
        print(f"{n.name:<{width}}  {n.signal:>4} dBm  {n.band:<7}  {n.security}")
    return 0


def read_passphrase(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            line = f.readline()
    except OSError as exc:
        raise UsageError(f"The passphrase file {path} cannot be read: "
                         f"{exc.strerror or exc}.") from None
    except UnicodeDecodeError:
        raise UsageError(f"The passphrase file {path} is not text (UTF-8).") from None
    return line.rstrip("\r\n")


def cmd_join(args: argparse.Namespace) -> int:
    wifi = services.wifi()
    interface = wifi.interface(args.interface)
    ssid = args.ssid.encode("utf-8", "surrogateescape")
    if args.passphrase_file:
        passphrase: str | None = read_passphrase(args.passphrase_file)
    elif args.open:
        passphrase = None
    else:
        known = {n.ssid: n for n in wifi.scan(interface)}
        if ssid in known and not known[ssid].supported:
            raise UsageError(f"{args.ssid} uses {known[ssid].security} security, which the "
                             "live system cannot join (a passphrase joins open, WPA, WPA2 "
                             "and WPA3 networks). Use a network cable.")
        if ssid in known and not known[ssid].needs_passphrase:
            passphrase = None
        elif not sys.stdin.isatty():
            raise UsageError("No passphrase: give --passphrase-file FILE (or --open for an "
                             "open network); it is asked for only on a terminal.")
        else:
            passphrase = getpass.getpass(f"Passphrase for {services.show_ssid(ssid)}: ")
    result = wifi.join(interface, ssid, passphrase, dhcp=not args.no_dhcp)
    print(result.message)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    wifi = services.wifi()
    names = [wifi.interface(args.interface)] if args.interface else wifi.interfaces()
    if not names:
        wifi.interface()  # raises: no Wi-Fi adapter, with the sentence
    for name in names:
        print(wifi.status(name).sentence())
    return 0
