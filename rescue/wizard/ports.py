"""What the wizard's screens may ask of the machine: the :class:`Services` protocol (and
:class:`WifiServices` for the Wi-Fi radio), and the sentence shown for an error.

A light module on purpose: the screens and the application import it, not
:mod:`rescue.wizard.backend` (whose :class:`~rescue.wizard.backend.EngineServices` loads
the whole engine), so the first screen can be drawn before the engine is loaded
(``rescue wizard`` builds the engine's services in the background, see
:class:`~rescue.wizard.deferred.DeferredServices`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol, cast, runtime_checkable

from rescue.errors import RescueError
from rescue.events import Sink
from rescue.net import wifi as _wifi
from rescue.wizard.model import (
    CopyResult,
    DiskEntry,
    FileEntry,
    ImageEntry,
    LogMedium,
    OpenedImage,
    Outcome,
    Prepared,
    RestoreChoices,
    VerdictView,
)

WifiNetwork = _wifi.Network
WifiStatus = _wifi.Status
WifiJoin = _wifi.JoinResult

__all__ = ["Services", "WifiJoin", "WifiNetwork", "WifiServices", "WifiStatus",
           "describe_error", "wifi_services"]


class Services(Protocol):
    def find_images(self, locations: list[str], media: bool = True) -> list[ImageEntry]: ...
    def search_problems(self) -> list[str]: ...
    def list_disks(self, image: ImageEntry | None, purpose: str) -> list[DiskEntry]: ...
    def compatibility(self, image: ImageEntry, disk: DiskEntry | None = None) -> VerdictView: ...
    def shrink_note(self, image: ImageEntry, disk: DiskEntry, disk_index: int = 0) -> str: ...
    def prepare_restore(
        self, image: ImageEntry, disk: DiskEntry, options: RestoreChoices,
        others: Sequence[DiskEntry] = (),
    ) -> Prepared: ...
    def run_restore(self, prepared: Prepared, sink: Sink, cancel: threading.Event) -> Outcome: ...
    def backup_destinations(self) -> list[tuple[str, str]]: ...
    def prepare_backup(self, disks: list[DiskEntry], destination: str, name: str,
                       break_lock: bool = False) -> Prepared: ...
    def run_backup(self, prepared: Prepared, sink: Sink, cancel: threading.Event) -> Outcome: ...
    def watch_media(self, on_change: Callable[[], None]) -> Callable[[], None]: ...
    def apply_keymap(self, keymap: str) -> str: ...
    def power(self, action: str) -> None: ...
    def shell(self) -> None: ...
    def check_disk(self, disk: DiskEntry) -> list[str]: ...
    def log_media(self, exclude: list[str]) -> list[LogMedium]: ...
    def save_logs(self, destination: LogMedium | str) -> str: ...
    # "Browse files in a system image": the image mounted read-only while the tool is open
    def open_image(self, image: ImageEntry) -> OpenedImage: ...
    def list_folder(self, opened: OpenedImage, part: str, path: str) -> list[FileEntry]: ...
    def copy_media(self, exclude: list[str]) -> list[LogMedium]: ...
    def copy_files(self, opened: OpenedImage, marked: Sequence[FileEntry],
                   destination: LogMedium | str, progress: Callable[[int, int], None],
                   cancel: threading.Event) -> CopyResult: ...
    def close_image(self, opened: OpenedImage) -> None: ...


@runtime_checkable
class WifiServices(Protocol):
    """Services that can reach a Wi-Fi radio ("Join a Wi-Fi network" under "Add a
    location"). Separate from :class:`Services`: the wizard offers Wi-Fi only when its
    services have it and the machine has a wireless interface."""

    def wifi_interfaces(self) -> list[str]: ...
    def wifi_status(self, interface: str) -> WifiStatus: ...
    def wifi_scan(self, interface: str) -> list[WifiNetwork]: ...
    def wifi_join(self, interface: str, ssid: bytes, passphrase: str | None) -> WifiJoin: ...


# the protocols' methods, read off the classes (one list: the protocol itself)
SERVICE_METHODS = tuple(name for name in vars(Services) if not name.startswith("_"))
_WIFI_METHODS = tuple(name for name in vars(WifiServices) if not name.startswith("_"))


def describe_error(exc: BaseException) -> str:
    """The sentence to show for *exc* (RescueError's own; others get a short line)."""
    if isinstance(exc, RescueError):
        return str(exc)
    return f"Unexpected error: {type(exc).__name__}: {exc}"


def wifi_services(services: object) -> WifiServices | None:
    """*services* as :class:`WifiServices` when it can reach a Wi-Fi radio, else None.
    Asked by attribute, not ``isinstance``: services built on first use
    (rescue.wizard.deferred) answer through ``__getattr__``, which a runtime protocol
    check does not consult from Python 3.12 on."""
    if all(callable(getattr(services, name, None)) for name in _WIFI_METHODS):
        return cast(WifiServices, services)
    return None
