"""The boot fix-ups find the restored root wherever the installer put it: Fedora's root in
the btrfs subvolume ``root`` (the top level is the default subvolume and has no
/etc/fstab), Ubuntu server's root in the LVM logical volume ``ubuntu-vg/ubuntu-lv``
(reached through a loop device at the LV's offset in the PV: no device-mapper here).

Each disk is backed up and restored with the CLI onto a blank disk of its size; the
report must show the fstab check done on that root, every entry found (LV names, LV
filesystem UUIDs and btrfs subvolumes included), nothing rewritten that was right, the
initramfs step reaching the root and its separate /boot, and nothing left mounted or
attached. Then a line naming a filesystem that is not on the disk is added to the
restored fstab and the check must report it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from loopdev import MiB, loop_device, mounted, partition, sh
from lvmdisk import lvm_pv
from realdisk import blkid, rescue_cli

from rescue.engine.bootfix import FixupContext, LogicalVolume, run_fixups, spec_matches
from rescue.fs import lvm
from rescue.image.manifest import Disk, Manifest, Partition
from rescue.image.repository import Repository
from rescue.plan.fixups import COMPANIONS, plan_fixups
from rescue.runner import CommandRunner, RecordingRunner

SIZE = 288 * MiB
ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
LVM = "E6D6D379-F507-44C2-A23C-238F2A3DF928"
MTOOLS = dict(os.environ, MTOOLS_SKIP_CHECK="1")
KERNEL = "6.8.0-31-generic"
TABLE = (f"label: gpt\nsize=40MiB, type={ESP}, name=\"EFI System Partition\"\n"
         f"size=48MiB, type={LINUX}\ntype=@LAST@\n")
GONE = "0b5e0000-0000-4000-8000-00000000d1e5"


@dataclass
class Case:
    fstab: str  # the source's /etc/fstab
    entries: int  # how many entries the check must find
    grub: str  # path of the GRUB config on /boot
    grub_root: bool  # it names the kernel's root=
    root_fstab: Callable[[str, Path], contextlib.AbstractContextManager[Path]]


def _system(root: Path, tool: str) -> None:
    """What the fix-ups look for in a root: /etc/fstab, an init, a kernel's modules (every
    storage driver built in, so the initramfs step has nothing to rebuild) and an initramfs tool."""
    for d in ("etc", "boot", "usr/sbin", "usr/lib/systemd", f"usr/lib/modules/{KERNEL}"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "usr/sbin/init").write_text("#!/bin/sh\n")
    # every storage driver the fix-up may ask for (this machine's too) is built in
    drivers = {*COMPANIONS, *(c for cs in COMPANIONS.values() for c in cs)}
    (root / f"usr/lib/modules/{KERNEL}/modules.builtin").write_text(
        "".join(f"kernel/drivers/{d}.ko\n" for d in sorted(drivers)))
    (root / "etc/hostname").write_text("restored-box\n")
    if tool == "dracut":
        (root / "usr/bin").mkdir(parents=True, exist_ok=True)
        (root / "usr/bin/dracut").write_text("#!/bin/sh\nexit 1\n")
    else:
        (root / "etc/initramfs-tools").mkdir()
        (root / "usr/sbin/update-initramfs").write_text("#!/bin/sh\nexit 1\n")


def _esp_and_boot(nodes: list[str], tmp: Path, grub: str, grub_cfg: str) -> tuple[str, str]:
    sh("mkfs.fat", "-F", "32", "-n", "EFI", nodes[0])
    sh("mmd", "-i", nodes[0], "::/EFI", "::/EFI/BOOT", env=MTOOLS)
    loader = tmp / "BOOTX64.EFI"
    loader.write_bytes(os.urandom(4096))
    sh("mcopy", "-i", nodes[0], loader, "::/EFI/BOOT/BOOTX64.EFI", env=MTOOLS)
    sh("mkfs.ext4", "-q", "-F", nodes[1])
    with mounted(nodes[1], tmp / "boot") as m:
        (m / f"vmlinuz-{KERNEL}").write_bytes(b"kernel" * 1000)
        (m / grub).parent.mkdir(parents=True)
        (m / grub).write_text(grub_cfg)
    return blkid(nodes[0])["UUID"], blkid(nodes[1])["UUID"]


# -- Fedora: btrfs with the root in subvolume "root", /home in "home" ---------------------

@contextlib.contextmanager
def _fedora_root(target: str, where: Path) -> Iterator[Path]:
    with mounted(f"{target}p3", where, "subvol=root") as m:
        yield m


def fedora(dev: str, tmp: Path) -> Case:
    nodes = partition(dev, TABLE.replace("@LAST@", LINUX))
    grub = "grub2/grub.cfg"
    esp, boot = _esp_and_boot(nodes, tmp, grub, "blscfg\n")
    fs = str(uuid.uuid4())
    sh("mkfs.btrfs", "-q", "-f", "-U", fs, "-L", "fedora", nodes[2])
    fstab = (f"UUID={fs} / btrfs subvol=root,compress=zstd:1 0 0\n"
             f"UUID={boot} /boot ext4 defaults 1 2\n"
             f"UUID={esp} /boot/efi vfat umask=0077,shortname=winnt 0 2\n"
             f"UUID={fs} /home btrfs subvol=home,compress=zstd:1 0 0\n")
    with mounted(nodes[2], tmp / "top") as top:
        sh("btrfs", "-q", "subvolume", "create", top / "root")
        sh("btrfs", "-q", "subvolume", "create", top / "home")
        _system(top / "root", "dracut")
        (top / "root/etc/fstab").write_text(fstab)
        (top / "home/user").mkdir()
    return Case(fstab, 4, grub, False, _fedora_root)


# -- Ubuntu server: ext4 /boot, the root in LV ubuntu-vg/ubuntu-lv --------------------------

@contextlib.contextmanager
def _lv_mounted(node: str, name: str, where: Path) -> Iterator[Path]:
    """The restored LV *name* of the PV *node*, mounted through a loop device."""
    [lv] = [lv for lv in lvm.read_linear_lvs(node, CommandRunner()) if lv.name == name]
    dev = sh("losetup", "-f", "--show", "--offset", str(lv.offset), "--sizelimit",
             str(lv.size), node).strip()
    try:
        with mounted(dev, where) as m:
            yield m
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def _ubuntu_root(target: str, where: Path) -> contextlib.AbstractContextManager[Path]:
    return _lv_mounted(f"{target}p3", "ubuntu-lv", where)


def ubuntu(dev: str, tmp: Path) -> Case:
    nodes = partition(dev, TABLE.replace("@LAST@", LVM))
    grub = "grub/grub.cfg"
    cfg = ("menuentry 'Ubuntu' {\n"
           f"\tlinux /vmlinuz-{KERNEL} root=/dev/mapper/ubuntu--vg-ubuntu--lv ro\n}}\n")
    esp, boot = _esp_and_boot(nodes, tmp, grub, cfg)
    with lvm_pv(nodes[2], vg="ubuntu-vg") as pv:
        pv.create_lv("swap", 16 * MiB)  # the root LV does not start at the PV's first PE
        pv.create_lv("ubuntu-lv", 120 * MiB)
        pv.create_lv("srv", 32 * MiB)
        srv = str(uuid.uuid4())
        fstab = ("/dev/mapper/ubuntu--vg-ubuntu--lv / ext4 defaults 0 1\n"
                 f"/dev/disk/by-uuid/{boot} /boot ext4 defaults 0 1\n"
                 f"UUID={esp} /boot/efi vfat umask=0077 0 1\n"
                 "/dev/ubuntu-vg/swap none swap sw 0 0\n"
                 f"UUID={srv} /srv ext4 defaults 0 2\n")
        with pv.lv_loop("swap") as swap:
            sh("mkswap", swap)
        with pv.lv_loop("srv") as lv:
            sh("mkfs.ext4", "-q", "-F", "-U", srv, lv)
        with pv.lv_loop("ubuntu-lv") as lv:
            sh("mkfs.ext4", "-q", "-F", lv)
            with mounted(lv, tmp / "lv") as m:
                _system(m, "initramfs-tools")
                (m / "etc/fstab").write_text(fstab)
    return Case(fstab, 5, grub, True, _ubuntu_root)


BUILDERS = {"fedora-btrfs-subvolume": fedora, "ubuntu-lvm": ubuntu}


def _loops_over(target: str) -> list[str]:
    out = subprocess.run(["losetup", "-J", "-l"], capture_output=True, text=True).stdout
    devices = json.loads(out or '{"loopdevices": []}')["loopdevices"]
    return [d["name"] for d in devices if (d.get("back-file") or "").startswith(target + "p")]


@pytest.mark.root
@pytest.mark.parametrize("name", list(BUILDERS))
def test_fstab_check_runs_on_the_real_root(name: str, blank_disk, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    with loop_device(tmp_path / "src.img", SIZE) as dev:
        case = BUILDERS[name](dev, tmp_path)
        sh("sync")
        rescue_cli("backup", "--disk", dev, "--repo", str(repo), check=True)
    # (the source is detached: a btrfs of the same fsid stays out of the kernel's way)
    target = blank_disk(SIZE)
    report = tmp_path / "report.json"
    rescue_cli("restore", "--repo", str(repo), "--disk", target, "--yes", "--firmware", "uefi",
               "--skip-fixup", "uefi-nvram-entry", "--add-driver", "nvme",
               "--report", str(report), check=True)
    steps = {s["name"]: s for s in json.loads(report.read_text())["steps"]}
    fstab = steps["fstab-check"]
    assert fstab["status"] == "done", fstab["detail"]
    n = case.entries
    assert f"{n} of {n} entries resolve on the restored disk" in fstab["detail"]
    assert "rewrote" not in fstab["detail"] and "note:" not in fstab["detail"], fstab["detail"]
    if case.grub_root:
        assert f"/boot/{case.grub}: root= resolves on the restored disk" in fstab["detail"]
    # The initramfs step reached the same root, and /boot (another partition) below it.
    initramfs = steps["initramfs-drivers"]
    assert initramfs["status"] == "done", initramfs["detail"]
    assert f"{KERNEL}: " in initramfs["detail"], initramfs["detail"]
    assert "nvme" in initramfs["detail"] and "built into the kernel" in initramfs["detail"]
    assert _loops_over(target) == [], "a loop device over a restored LV was left attached"
    assert target not in Path("/proc/mounts").read_text()

    with case.root_fstab(target, tmp_path / "root") as root:
        assert (root / "etc/fstab").read_text() == case.fstab  # nothing right was rewritten
        assert not (root / "etc/fstab.rescue-backup").exists()
        with open(root / "etc/fstab", "a") as f:
            f.write(f"UUID={GONE} /data ext4 defaults 0 2\n")
    manifest = Repository.open(repo).load_manifest("latest")
    steps_ = [s for s in plan_fixups(manifest, "uefi", [], set()) if s.name == "fstab-check"]
    nodes = {p.number: f"{target}p{p.number}" for p in manifest.disks[0].partitions}
    ctx = FixupContext(disk=target, partitions=nodes, manifest=manifest, firmware="uefi",
                       runner=RecordingRunner(), workdir=str(tmp_path / "work"))
    [result] = run_fixups(ctx, steps_)
    assert result.status == "failed", result.detail
    assert f"UUID={GONE} (/data)" in result.detail
    assert f"{n} of {n + 1} entries resolve" in result.detail
    assert _loops_over(target) == []
    assert str(tmp_path / "work") not in Path("/proc/mounts").read_text()


def _manifest(parts: list[Partition]) -> Manifest:
    disk = Disk(SIZE, 512, 512, "gpt", "x", source_path="/dev/sda", partitions=parts)
    return Manifest(id="m", name="", created_utc="", created_local="", timezone="",
                    computer="pc", os_name="Ubuntu", os_id="ubuntu", os_version="24.04",
                    firmware="uefi", hardware={}, chunk_size=4 << 20, compression="zstd",
                    disks=[disk])


def test_an_lvm_pv_is_a_root_candidate() -> None:
    parts = [Partition(1, 2048, 81920, ESP, filesystem="vfat"),
             Partition(2, 83968, 98304, LINUX, filesystem="ext4"),
             Partition(3, 182272, 405504, LVM, filesystem="LVM2_member"),
             Partition(4, 587776, 4096, LINUX, filesystem="swap")]
    steps = {s.name: s for s in plan_fixups(_manifest(parts), "uefi", ["nvme"], set())}
    assert steps["fstab-check"].params["root_candidates"] == [3, 2]
    assert steps["initramfs-drivers"].params["root_candidates"] == [3, 2]


def test_lv_names_match_as_the_system_spells_them() -> None:
    lv = LogicalVolume("ubuntu-vg", "ubuntu-lv", "/dev/loop9")
    facts = {"DEVNAME": lv.dev, "ALIASES": " ".join(lv.aliases), "UUID": "abcd"}
    assert spec_matches("/dev/mapper/ubuntu--vg-ubuntu--lv", facts)
    assert spec_matches("/dev/ubuntu-vg/ubuntu-lv", facts)
    assert spec_matches("/dev/disk/by-id/dm-name-ubuntu--vg-ubuntu--lv", facts)
    assert spec_matches("UUID=ABCD", facts)
    assert not spec_matches("/dev/mapper/ubuntu-vg-ubuntu-lv", facts)
    assert not spec_matches("/dev/ubuntu-vg/other", facts)
