"""Device discovery against real udev and real loop devices (root).

A systemd-udevd is started for this module (unless one already runs, which is then
used and left alone) and stopped by its PID afterwards.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopdev import MiB, loop_device, mounted, partition, settle, sh

from rescue.devices.eligibility import ROLE_REPOSITORY, assess
from rescue.devices.inventory import Disk, probe_inventory, repo_devices, udevd_running
from rescue.devices.monitor import DeviceEvent, DiskMonitor
from rescue.hardware.profile import collect_profile

pytestmark = pytest.mark.root

UDEVD = "/lib/systemd/systemd-udevd"


def _ping() -> bool:
    return subprocess.run(
        ["udevadm", "control", "--ping", "--timeout=2"], capture_output=True
    ).returncode == 0


@pytest.fixture(scope="module")
def udevd() -> Iterator[subprocess.Popen[bytes] | None]:
    """A running udev daemon: ours (stopped by PID at the end) or one already there."""
    if _ping():
        yield None
        return
    if not os.path.exists(UDEVD):
        pytest.fail(f"{UDEVD} is missing: install the udev package (make setup)")
    proc = subprocess.Popen([UDEVD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not _ping():
            if proc.poll() is not None:
                pytest.fail(f"systemd-udevd exited with {proc.returncode} at start")
            if time.monotonic() > deadline:
                pytest.fail("systemd-udevd did not answer within 15 s")
            time.sleep(0.1)
        # No global "udevadm trigger": other people's devices on this machine are left
        # alone; the tests trigger exactly the devices they create.
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _refresh(*devs: str) -> None:
    """Make udev re-read devices whose content changed (mkfs), then wait for it."""
    for dev in devs:
        subprocess.run(["udevadm", "trigger", "--action=change", dev], capture_output=True)
    settle()


def _blkid(dev: str, tag: str) -> str:
    return sh("blkid", "-p", "-s", tag, "-o", "value", dev).strip()


def _drop_partitions(dev: str) -> None:
    """Remove the kernel's partitions of *dev*, retrying while something (udev's probe)
    still has one open. Stale partitions would confuse the next user of the loop device."""
    name = Path(dev).name
    for _ in range(50):
        if not list(Path(f"/sys/block/{name}").glob(f"{name}p*")):
            return
        subprocess.run(["partx", "-d", dev], capture_output=True)
        time.sleep(0.1)


def _detach(dev: str) -> None:
    _drop_partitions(dev)
    subprocess.run(["losetup", "-d", dev], capture_output=True)


GPT_TWO = "label: gpt\nsize=24MiB, name=alpha\nsize=16MiB, name=beta\n"


@contextlib.contextmanager
def two_filesystems(tmp_path: Path, tag: str) -> Iterator[tuple[str, list[str], Path]]:
    backing = tmp_path / f"{tag}.img"
    with loop_device(backing, 48 * MiB) as dev:
        _drop_partitions(dev)  # a previous user of this loop device may have left some
        parts = partition(dev, GPT_TWO)
        assert len(parts) == 2, parts
        sh("mkfs.ext4", "-q", "-F", "-L", f"rx-{tag}", parts[0])
        sh("mkfs.vfat", "-n", "RXVFAT", parts[1])
        yield dev, parts, backing


def _find(disks: list[Disk], dev: str) -> Disk:
    for d in disks:
        if d.path == dev:
            return d
    raise AssertionError(f"{dev} not in the inventory: {[d.path for d in disks]}")


def test_udev_sees_loop_filesystems_and_labels(udevd: object, tmp_path: Path) -> None:
    assert udevd_running()
    with two_filesystems(tmp_path, "enum") as (dev, parts, backing):
        _refresh(dev, *parts)
        # udev itself knows the label (so the probe below reads udev, not blkid).
        import pyudev

        udev_dev = pyudev.Devices.from_device_file(pyudev.Context(), parts[0])
        assert udev_dev.properties.get("ID_FS_LABEL") == "rx-enum"
        inv = probe_inventory(include_loop=True)
        disk = _find(inv.disks, dev)
        assert disk.kind == "loop" and disk.transport == "loop"
        assert disk.backing_file == str(backing)
        assert disk.size == 48 * MiB and disk.logical_sector_size == 512
        assert disk.table_type == "gpt"
        assert disk.table_uuid.lower() == _blkid(dev, "PTUUID").lower()
        p1, p2 = disk.partitions
        assert (p1.name, p1.number, p1.fstype, p1.label) == (Path(parts[0]).name, 1, "ext4",
                                                              "rx-enum")
        assert p1.uuid == _blkid(parts[0], "UUID")
        assert p1.partuuid.lower() == _blkid(parts[0], "PART_ENTRY_UUID").lower()
        assert p1.partlabel == "alpha" and p1.start == 1 * MiB and p1.size == 24 * MiB
        assert (p2.fstype, p2.label, p2.partlabel) == ("vfat", "RXVFAT", "beta")
        assert disk.eligible, disk.ineligible_reasons
        # Loop devices stay hidden unless asked for.
        assert dev not in [d.path for d in probe_inventory().disks]
        # A partition named as the boot disk means its whole disk.
        boot = collect_profile(boot_disk=parts[0]).boot_disk
        assert boot is not None and (boot.name, boot.bus) == (Path(dev).name, "loop")


def test_blkid_fallback_gives_the_same_fields(udevd: object, tmp_path: Path) -> None:
    with two_filesystems(tmp_path, "blk") as (dev, parts, _):
        _refresh(dev, *parts)
        via_udev = _find(probe_inventory(include_loop=True).disks, dev)
        via_blkid = _find(probe_inventory(include_loop=True, use_udev=False).disks, dev)
        keys = ("fstype", "uuid", "label", "partuuid", "partlabel", "number", "size")
        for a, b in zip(via_udev.partitions, via_blkid.partitions, strict=True):
            assert [getattr(a, k) for k in keys] == [getattr(b, k) for k in keys]
        assert via_udev.table_type == via_blkid.table_type == "gpt"


def test_mounted_repository_disk_and_its_backing_disk_are_protected(
    udevd: object, tmp_path: Path
) -> None:
    with two_filesystems(tmp_path, "mnt") as (dev, parts, backing):
        with mounted(parts[0], tmp_path / "mnt") as mp:
            repo = mp / "repo"
            repo.mkdir()
            inv = probe_inventory(include_loop=True)
            disk = _find(inv.disks, dev)
            assert disk.partitions[0].mountpoints == [str(mp)]
            assert not disk.eligible
            assert f"{parts[0]} is mounted on {mp}" in disk.ineligible_reasons
            devs = repo_devices([str(repo)])
            assert disk.dev in devs
            # The loop's backing file lives on another disk: that disk is protected too.
            backing_disk = repo_devices([str(backing)])
            assert backing_disk and set(backing_disk) <= set(devs)
            marked = _find(assess(inv, repo_devices=devs).disks, dev)
            assert ROLE_REPOSITORY in marked.roles
        # Unmounted again: eligible again.
        again = _find(probe_inventory(include_loop=True).disks, dev)
        assert again.eligible and again.partitions[0].mountpoints == []


class Collector:
    def __init__(self) -> None:
        self.batches: list[tuple[float, list[DeviceEvent]]] = []
        self.cond = threading.Condition()

    def __call__(self, batch: list[DeviceEvent]) -> None:
        with self.cond:
            self.batches.append((time.monotonic(), batch))
            self.cond.notify_all()

    def wait_for(self, pred, since: float, timeout: float = 5.0) -> float:  # type: ignore[no-untyped-def]
        """Seconds from *since* until a batch with an event matching *pred* arrived."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, batch in self.batches:
                    if t >= since and any(pred(e) for e in batch):
                        return t - since
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(round(t - since, 2), b) for t, b in self.batches]
                    raise AssertionError(f"no matching event within {timeout} s; saw {seen}")
                self.cond.wait(left)


@pytest.mark.parametrize("source", ["udev", "kernel"])
def test_monitor_reports_attach_and_detach_within_two_seconds(
    udevd: object, tmp_path: Path, source: str
) -> None:
    image = tmp_path / "hot.img"
    with open(image, "wb") as f:
        f.truncate(16 * MiB)
    sh("sfdisk", "-q", str(image), input="label: gpt\nsize=8MiB\n")
    got = Collector()
    with DiskMonitor(got, include_loop=True, source=source) as mon:
        assert mon.source == source
        t0 = time.monotonic()
        dev = sh("losetup", "-f", "--show", str(image)).strip()
        name = Path(dev).name
        try:
            _drop_partitions(dev)
            lat_attach = got.wait_for(lambda e: e.name == name and e.devtype == "disk", t0)
            t1 = time.monotonic()
            subprocess.run(["partx", "-u", dev], capture_output=True, check=True)
            lat_add = got.wait_for(
                lambda e: e.name == f"{name}p1" and e.action == "add"
                and e.devtype == "partition", t1)
        finally:
            settle()  # udev may still hold the new partition open: partx -d would fail
            t2 = time.monotonic()
            _detach(dev)
        lat_remove = got.wait_for(lambda e: e.name == f"{name}p1" and e.action == "remove", t2)
        lat_detach = got.wait_for(
            lambda e: e.name == name and e.action == "change", t2)
        assert mon.error is None
    for latency in (lat_attach, lat_add, lat_remove, lat_detach):
        assert latency < 2.0
    # Debounced: one batch carries the last action per device, no duplicates.
    for _, batch in got.batches:
        names = [e.name for e in batch]
        assert len(names) == len(set(names))
    # The monitor thread is gone after stop().
    assert all(t.name != "rescue-disk-monitor" for t in threading.enumerate())


def test_monitor_ignores_loop_devices_unless_asked(udevd: object, tmp_path: Path) -> None:
    got = Collector()
    with DiskMonitor(got, include_loop=False), loop_device(tmp_path / "q.img", 8 * MiB):
        time.sleep(1.5)
    assert all(not e.name.startswith("loop") for _, b in got.batches for e in b)


def test_monitor_survives_a_failing_callback(tmp_path: Path) -> None:
    calls: list[list[DeviceEvent]] = []

    def flaky(batch: list[DeviceEvent]) -> None:
        calls.append(batch)
        if len(calls) == 1:
            raise RuntimeError("consumer bug")

    image = tmp_path / "f.img"
    with open(image, "wb") as f:
        f.truncate(8 * MiB)
    with DiskMonitor(flaky, include_loop=True, source="kernel", quiet=0.1) as mon:
        for _ in range(2):
            dev = sh("losetup", "-f", "--show", str(image)).strip()
            time.sleep(0.6)
            _detach(dev)
            time.sleep(0.6)
        assert mon.error is None
    assert len(calls) >= 2


def test_devices_watch_prints_plugged_disks(tmp_path: Path) -> None:
    import queue
    import sys

    image = tmp_path / "w.img"
    with open(image, "wb") as f:
        f.truncate(8 * MiB)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rescue", "devices", "--watch", "--include-loop"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        assert lines.get(timeout=10).startswith("Watching for disks")
        dev = sh("losetup", "-f", "--show", str(image)).strip()
        try:
            seen: list[str] = []
            deadline = time.monotonic() + 10
            while not (seen and seen[-1].startswith("eligible targets now:") and dev in seen[-1]):
                left = deadline - time.monotonic()
                assert left > 0, f"{dev} never reported: {seen}"
                try:
                    seen.append(lines.get(timeout=left))
                except queue.Empty:
                    raise AssertionError(f"{dev} never reported: {seen}") from None
            assert any(dev in line and "disk" in line for line in seen)
        finally:
            _detach(dev)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
