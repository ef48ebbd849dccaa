"""Hot-plug: report added, removed and changed disks while the wizard runs.

Public API::

    DiskMonitor(callback, *, include_loop=False, quiet=0.3, max_delay=1.0, source=None)
        .start() / .stop() / with DiskMonitor(...) as mon: ...
    DeviceEvent(action, name, devtype, path, dev)   # frozen, JSON-able via to_dict()

The callback receives a non-empty ``list[DeviceEvent]`` (one entry per device, the last
action wins) from the monitor's own thread: a Textual app should hand it over with
``app.call_from_thread(...)`` and then re-probe the inventory. Events are debounced:
a batch is delivered once no new event came for ``quiet`` seconds, and never later than
``max_delay`` seconds after its first event, so a USB stick showing up (disk + several
partitions + change events) becomes one update within well under 2 seconds.

``source`` is ``"udev"`` (events after systemd-udevd processed them, properties
complete) or ``"kernel"`` (raw uevents; works without udevd). The default is ``"udev"``
when a udev daemon runs, else ``"kernel"``. Loop, zram and RAM devices are ignored unless
``include_loop`` (loop only).
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import pyudev

from rescue.devices.inventory import udevd_running
from rescue.errors import DeviceError
from rescue.i18n import _

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceEvent:
    action: str  # "add" | "remove" | "change" (also "bind", "online", ... as udev says)
    name: str  # kernel name, "sdb", "sdb1"
    devtype: str  # "disk" | "partition"
    path: str  # "/dev/sdb"
    dev: str  # "MAJ:MIN" ("" when unknown)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Callback = Callable[[list[DeviceEvent]], None]


def _ignored(name: str, include_loop: bool) -> bool:
    if name.startswith(("zram", "ram")):
        return True
    return name.startswith("loop") and not include_loop


class DiskMonitor:
    """A background thread that turns block uevents into debounced batches."""

    def __init__(
        self,
        callback: Callback,
        *,
        include_loop: bool = False,
        quiet: float = 0.3,
        max_delay: float = 1.0,
        source: str | None = None,
    ) -> None:
        self.callback = callback
        self.include_loop = include_loop
        self.quiet = quiet
        self.max_delay = max_delay
        self.source = source or ("udev" if udevd_running() else "kernel")
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1
        self._monitor: Any = None
        self.error: BaseException | None = None

    def start(self) -> DiskMonitor:
        if self._thread is not None:
            return self
        try:
            context = pyudev.Context()
            monitor = pyudev.Monitor.from_netlink(context, source=self.source)
            monitor.filter_by(subsystem="block")
            monitor.start()  # bind the socket now: events after start() are not lost
        except (OSError, ValueError) as exc:
            raise DeviceError(_(
                "Cannot watch for disks being plugged in ({error}); "
                "the list of disks will not update by itself; rescan to refresh it."
            ).format(error=exc)) from exc
        self._monitor = monitor
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="rescue-disk-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        self._thread = None
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self._wake_r = self._wake_w = -1
        self._monitor = None

    def __enter__(self) -> DiskMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the thread ------------------------------------------------------------------

    def _event(self, device: Any) -> DeviceEvent | None:
        name = device.sys_name
        if _ignored(name, self.include_loop):
            return None
        devtype = device.device_type or ""
        if devtype not in ("disk", "partition"):
            return None
        props = device.properties
        major, minor = props.get("MAJOR", ""), props.get("MINOR", "")
        return DeviceEvent(
            action=device.action or "change",
            name=name,
            devtype=devtype,
            path=device.device_node or f"/dev/{name}",
            dev=f"{major}:{minor}" if major else "",
        )

    def _run(self) -> None:
        monitor = self._monitor
        pending: dict[str, DeviceEvent] = {}
        first = last = 0.0
        try:
            while True:
                now = time.monotonic()
                if pending:
                    timeout = max(0.0, min(last + self.quiet, first + self.max_delay) - now)
                else:
                    timeout = None
                readable, _w, _x = select.select([monitor.fileno(), self._wake_r], [], [], timeout)
                if self._wake_r in readable:
                    return
                if monitor.fileno() in readable:
                    while True:
                        device = monitor.poll(timeout=0)
                        if device is None:
                            break
                        event = self._event(device)
                        if event is None:
                            continue
                        now = time.monotonic()
                        if not pending:
                            first = now
                        last = now
                        pending.pop(event.name, None)  # keep arrival order of the last action
                        pending[event.name] = event
                now = time.monotonic()
                if pending and (now >= last + self.quiet or now >= first + self.max_delay):
                    batch = list(pending.values())
                    pending.clear()
                    try:
                        self.callback(batch)
                    except Exception:  # a broken consumer must not stop the monitor
                        log.exception("disk monitor callback failed")
        except Exception as exc:  # reported, never raised into the app's thread
            self.error = exc
