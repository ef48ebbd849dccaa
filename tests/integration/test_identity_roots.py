"""The computer name, OS and time zone come from the real root wherever the installer put
it: a btrfs subvolume (Fedora's ``root``, Ubuntu's ``@``, a default subvolume set
elsewhere), an ext4 or xfs root in an LVM logical volume (read through a read-only loop
device with an offset, no device-mapper), or a plain partition. The backup writes nothing
to the source and leaves no loop device behind."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from loopdev import MiB, loop_device, mounted, partition, sh
from lvmdisk import lvm_pv
from realdisk import rescue_cli

from rescue.devices import sysinfo
from rescue.fs import lvm

pytestmark = pytest.mark.root

SIZE = 256 * MiB
LVM_TYPE = "E6D6D379-F507-44C2-A23C-238F2A3DF928"
# mkfs.xfs refuses filesystems under 300 MB unless it believes it runs under fstests
SMALL_XFS_ENV = dict(os.environ, TEST_DIR="/tmp", TEST_DEV="none", QA_CHECK_FS="xfs")


def _system(root: Path, hostname: str, os_release: str, *, absolute_link: bool = False,
            timezone: str = "Europe/Berlin") -> None:
    """A root tree: /etc/os-release a symlink to /usr/lib/os-release as on real systems,
    /etc/localtime a symlink into zoneinfo."""
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "usr/lib").mkdir(parents=True, exist_ok=True)
    (root / "usr/sbin").mkdir(parents=True, exist_ok=True)
    (root / "usr/lib/os-release").write_text(os_release)
    target = "/usr/lib/os-release" if absolute_link else "../usr/lib/os-release"
    (root / "etc/os-release").symlink_to(target)
    (root / "etc/hostname").write_text(hostname + "\n")
    (root / "etc/localtime").symlink_to(f"../usr/share/zoneinfo/{timezone}")
    (root / "etc/fstab").write_text("# fstab\n")


FEDORA = 'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=40\nPRETTY_NAME="Fedora Linux 40"\n'
UBUNTU = 'NAME="Ubuntu"\nID=ubuntu\nVERSION_ID="24.04"\nPRETTY_NAME="Ubuntu 24.04 LTS"\n'
SUSE = ('NAME="openSUSE Tumbleweed"\nID="opensuse-tumbleweed"\nVERSION_ID="20240101"\n'
        'PRETTY_NAME="openSUSE Tumbleweed"\n')
RHEL = ('NAME="Red Hat Enterprise Linux"\nID="rhel"\nVERSION_ID="9.4"\n'
        'PRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"\n')


def _boot(node: str, tmp: Path, fstype: str = "ext4") -> None:
    """A /boot that is no root (no os-release): the probe must look further."""
    if fstype == "xfs":
        sh("mkfs.xfs", "-q", "-f", node, env=SMALL_XFS_ENV)
    else:
        sh("mkfs.ext4", "-q", "-F", node)
    with mounted(node, tmp / "boot") as m:
        (m / "grub2").mkdir()
        (m / "vmlinuz-6.8").write_bytes(b"kernel" * 1000)


def _btrfs(node: str, tmp: Path, build: Callable[[Path], None]) -> None:
    sh("mkfs.btrfs", "-q", "-f", node)
    with mounted(node, tmp / "top") as top:
        build(top)


def fedora(dev: str, tmp: Path) -> None:
    parts = partition(dev, "label: gpt\nsize=48MiB\ntype=L\n")
    _boot(parts[0], tmp)

    def build(top: Path) -> None:
        sh("btrfs", "-q", "subvolume", "create", top / "root")
        sh("btrfs", "-q", "subvolume", "create", top / "home")
        _system(top / "root", "fedora-box", FEDORA)
        (top / "home/user").mkdir()

    _btrfs(parts[1], tmp, build)


def ubuntu_btrfs(dev: str, tmp: Path) -> None:
    parts = partition(dev, "label: gpt\nsize=48MiB\ntype=L\n")
    _boot(parts[0], tmp)

    def build(top: Path) -> None:
        sh("btrfs", "-q", "subvolume", "create", top / "@")
        sh("btrfs", "-q", "subvolume", "create", top / "@home")
        _system(top / "@", "ubuntu-btrfs", UBUNTU, absolute_link=True,
                timezone="Europe/Paris")
        (top / "@/etc/timezone").write_text("Europe/Paris\n")

    _btrfs(parts[1], tmp, build)


def suse_default_subvolume(dev: str, tmp: Path) -> None:
    """openSUSE-like: the root is the default subvolume @/.snapshots/1/snapshot; an old
    root in another subvolume, listed first, must not be taken instead."""
    parts = partition(dev, "label: gpt\ntype=L\n")

    def build(top: Path) -> None:
        sh("btrfs", "-q", "subvolume", "create", top / "@")
        sh("btrfs", "-q", "subvolume", "create", top / "@/.snapshots")
        (top / "@/.snapshots/1").mkdir()
        snap = top / "@/.snapshots/1/snapshot"
        sh("btrfs", "-q", "subvolume", "create", snap)
        sh("btrfs", "-q", "subvolume", "create", top / "old")
        _system(snap, "suse-box", SUSE)
        _system(top / "old", "old-box", FEDORA)
        subvolid = sh("btrfs", "inspect-internal", "rootid", snap).strip()
        sh("btrfs", "subvolume", "set-default", subvolid, top)

    _btrfs(parts[0], tmp, build)


def ubuntu_lvm(dev: str, tmp: Path) -> None:
    parts = partition(dev, f"label: gpt\nsize=48MiB\ntype={LVM_TYPE}\n")
    _boot(parts[0], tmp)
    with lvm_pv(parts[1], vg="ubuntu-vg") as pv:
        pv.create_lv("swap", 16 * MiB)  # the root LV does not start at PE 0
        pv.create_lv("ubuntu-lv", 128 * MiB)
        with pv.lv_loop("swap") as swap:
            sh("mkswap", swap)
        with pv.lv_loop("ubuntu-lv") as lv:
            sh("mkfs.ext4", "-q", "-F", lv)
            with mounted(lv, tmp / "lv") as m:
                _system(m, "ubuntu-server", UBUNTU, timezone="America/New_York")


def rhel_lvm(dev: str, tmp: Path) -> None:
    parts = partition(dev, f"label: gpt\nsize=48MiB\ntype={LVM_TYPE}\n")
    _boot(parts[0], tmp, "xfs")
    with lvm_pv(parts[1], vg="rhel") as pv:
        pv.create_lv("root", 96 * MiB)
        pv.create_lv("home", 96 * MiB)  # as big as root and sorted first: looked at, no root
        for name in ("home", "root"):
            with pv.lv_loop(name) as lv:
                sh("mkfs.xfs", "-q", "-f", lv, env=SMALL_XFS_ENV)
                with mounted(lv, tmp / name) as m:
                    if name == "root":
                        _system(m, "rhel-box", RHEL)
                    else:
                        (m / "user").mkdir()


def plain_ext4(dev: str, tmp: Path) -> None:
    parts = partition(dev, "label: gpt\nsize=48MiB\ntype=L\n")
    _boot(parts[0], tmp)
    sh("mkfs.ext4", "-q", "-F", parts[1])
    with mounted(parts[1], tmp / "root") as m:
        _system(m, "plain-box", UBUNTU, timezone="Asia/Tokyo")


CASES = {
    "fedora-btrfs-root": (fedora, "fedora-box", "Fedora Linux 40", "fedora", "Europe/Berlin"),
    "ubuntu-btrfs-at": (ubuntu_btrfs, "ubuntu-btrfs", "Ubuntu 24.04 LTS", "ubuntu",
                        "Europe/Paris"),
    "btrfs-default-subvolume": (suse_default_subvolume, "suse-box", "openSUSE Tumbleweed",
                                "opensuse-tumbleweed", "Europe/Berlin"),
    "ubuntu-lvm-ext4": (ubuntu_lvm, "ubuntu-server", "Ubuntu 24.04 LTS", "ubuntu",
                        "America/New_York"),
    "rhel-lvm-xfs": (rhel_lvm, "rhel-box", "Red Hat Enterprise Linux 9.4 (Plow)", "rhel",
                     "Europe/Berlin"),
    "plain-ext4": (plain_ext4, "plain-box", "Ubuntu 24.04 LTS", "ubuntu", "Asia/Tokyo"),
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def _loops_over(nodes: list[str]) -> list[str]:
    """Loop devices whose backing file is one of *nodes* (or the files they are)."""
    out = subprocess.run(["losetup", "-J", "-l"], capture_output=True, text=True).stdout
    devices = json.loads(out or '{"loopdevices": []}')["loopdevices"]
    wanted = {os.path.realpath(n) for n in nodes}
    return [d["name"] for d in devices if os.path.realpath(d.get("back-file") or "") in wanted]


@pytest.mark.parametrize("case", list(CASES))
def test_identity_is_read_from_the_real_root(case: str, tmp_path: Path) -> None:
    build, computer, os_name, os_id, timezone = CASES[case]
    backing = tmp_path / "src.img"
    repo = tmp_path / "repo"
    with loop_device(backing, SIZE) as dev:
        build(dev, tmp_path)
        sh("sync")
        nodes = [dev, *(f"/dev/{p.name}" for p in Path(f"/sys/class/block/{Path(dev).name}")
                        .glob(f"{Path(dev).name}p*"))]
        before = _sha256(backing)
        proc = rescue_cli("backup", "--disk", dev, "--repo", str(repo), check=True)
        assert computer in proc.stdout
        assert _loops_over(nodes) == [], "a loop device over the source was left attached"
        after = _sha256(backing)
    assert after == before, "the backup changed the source disk"

    m = json.loads(rescue_cli("inspect", "--repo", str(repo), "--json", check=True).stdout)
    assert (m["computer"], m["os_name"], m["os_id"]) == (computer, os_name, os_id)
    assert m["timezone"] == timezone
    listed = json.loads(rescue_cli("list", "--repo", str(repo), "--json", check=True).stdout)
    assert [(i["computer"], i["os"]) for i in listed] == [(computer, os_name)]


def _json(kind: str, rows: list[dict[str, str]]) -> str:
    return json.dumps({"report": [{kind: rows}]})


def test_only_contiguous_linear_lvs_on_this_pv_are_opened() -> None:
    pvs = _json("pv", [{"pv_name": "/dev/sda3", "pe_start": "1048576",
                        "vg_extent_size": "4194304"}])

    def seg(lv: str, size: int, start: int, ranges: str, segtype: str = "linear") -> dict:
        return {"vg_name": "vg", "lv_name": lv, "lv_size": str(size * 4194304),
                "segtype": segtype, "seg_start_pe": str(start), "seg_pe_ranges": ranges}

    segs = _json("seg", [
        seg("root", 10, 0, "/dev/sda3:20-29"),
        seg("grown", 6, 0, "/dev/sda3:0-3"), seg("grown", 6, 4, "/dev/sda3:4-5"),
        seg("split", 6, 0, "/dev/sda3:6-9"), seg("split", 6, 4, "/dev/sda3:40-41"),
        seg("other-pv", 2, 0, "/dev/sdb1:0-1"),
        seg("striped", 4, 0, "/dev/sda3:50-51 /dev/sda3:60-61", "striped"),
    ])
    got = lvm.linear_lvs("/dev/sda3", pvs, segs)
    assert got == [lvm.LinearLV("vg", "root", 1048576 + 20 * 4194304, 10 * 4194304),
                   lvm.LinearLV("vg", "grown", 1048576, 6 * 4194304)]
    assert lvm.linear_lvs("/dev/sda3", "", segs) == []


def test_btrfs_root_candidates_order() -> None:
    listing = ("ID 256 gen 9 top level 5 path @\nID 257 gen 9 top level 256 path @/.snapshots\n"
               "ID 258 gen 9 top level 257 path @/.snapshots/1/snapshot\n"
               "ID 259 gen 9 top level 5 path old\nID 260 gen 9 top level 5 path root\n")
    default = "ID 258 gen 9 top level 257 path @/.snapshots/1/snapshot\n"
    assert sysinfo.btrfs_root_candidates(default, listing) == [
        "@/.snapshots/1/snapshot", "root", "@", "", "old", "@/.snapshots"]
    assert sysinfo.btrfs_root_candidates("ID 5 (FS_TREE)\n", listing)[:3] == ["root", "@", ""]
