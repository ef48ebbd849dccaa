"""Whether this computer is on a network yet: the one place that waits for an address
before a location on a web server or a share is opened.

The live system asks for addresses by DHCP as interfaces appear (udev starts
``dhclient -nw`` per wired interface, docs/ISO.md), and an unattended run or a quick
technician can reach a network location a few seconds before the lease arrives. Opening
then fails with a mount or connection error that says nothing about the real cause.
So a network location first waits, up to :data:`WAIT_SECONDS`, until the kernel has an
IPv4 route through any interface but the loopback (what a DHCP lease or a static address
gives); a computer that already has one does not wait at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

WAIT_SECONDS = 30.0
ROUTES = Path("/proc/net/route")


def has_route(routes: Path = ROUTES) -> bool:
    """True when an IPv4 route goes through an interface other than ``lo``."""
    try:
        lines = routes.read_text().splitlines()[1:]
    except OSError:
        return True  # no procfs here: nothing to wait for
    return any(line.split()[0] != "lo" for line in lines if line.split())


def wait_for_route(timeout: float = WAIT_SECONDS, routes: Path = ROUTES,
                   sleep: Callable[[float], None] = time.sleep) -> bool:
    """Wait until :func:`has_route` (at most *timeout* seconds); False when it never did
    (the caller goes on: its own error then names the location)."""
    deadline = time.monotonic() + timeout
    while not has_route(routes):
        if time.monotonic() >= deadline:
            return False
        sleep(0.5)
    return True
