"""A network location waits for an IPv4 route (a DHCP lease still on its way) before it is
opened; a computer that has one does not wait (rescue/repo/network.py)."""

from __future__ import annotations

from pathlib import Path

from rescue.repo import network

HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
LOOPBACK_ONLY = HEADER + "lo\t0000007F\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n"
LEASED = HEADER + ("enp0s2\t00000000\t0202000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
                   "enp0s2\t0002000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n")


def test_a_route_through_an_interface_counts_the_loopback_does_not(tmp_path: Path) -> None:
    routes = tmp_path / "route"
    routes.write_text(HEADER)
    assert not network.has_route(routes)
    routes.write_text(LOOPBACK_ONLY)
    assert not network.has_route(routes)
    routes.write_text(LEASED)
    assert network.has_route(routes)


def test_waits_until_the_lease_arrives(tmp_path: Path) -> None:
    routes = tmp_path / "route"
    routes.write_text(HEADER)
    naps: list[float] = []

    def sleep(seconds: float) -> None:  # the lease comes after the third look
        naps.append(seconds)
        if len(naps) == 3:
            routes.write_text(LEASED)

    assert network.wait_for_route(timeout=30, routes=routes, sleep=sleep)
    assert len(naps) == 3


def test_gives_up_after_the_timeout_and_does_not_wait_with_a_route(tmp_path: Path) -> None:
    routes = tmp_path / "route"
    routes.write_text(HEADER)
    assert not network.wait_for_route(timeout=0.2, routes=routes, sleep=lambda s: None)
    routes.write_text(LEASED)
    called: list[float] = []
    assert network.wait_for_route(timeout=30, routes=routes, sleep=called.append)
    assert called == []
