"""End to end: the live ISO restores a system image unattended, then powers off.

The test makes a small sample system (GPT: ESP + ext4 root + swap, with just enough of
an installed Debian for the boot fix-ups) on a loop device, backs it up with
``rescue backup`` into a repository, and puts the repository on an ext4 disk image. QEMU
boots the ISO on UEFI (the sample has an ESP and no BIOS boot code) with that
repository disk and a blank, larger target disk, and a default boot entry carrying the
``rescue.*`` answers of the wizard's unattended mode:

    rescue.action=restore rescue.target=/dev/disk/by-id/virtio-RESCUE-TARGET
    rescue.confirm=yes rescue.force=yes rescue.after=poweroff

The wizard finds the image on the attached disk, restores, verifies, runs the boot
fix-ups and powers the machine off; the test then inspects the target from the host:
partition table, filesystem checks, every file of the root filesystem and the ESP's files.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from httpserve import serve
from isoqemu import Disk, Machine
from loopdev import loop_device, mounted
from nfsserve import nfs_export
from sambaserve import samba

from rescue.engine.usbstick import UsbJob, UsbWriter
from rescue.runner import CommandRunner

pytestmark = [pytest.mark.qemu, pytest.mark.root]

MiB = 1024 * 1024
TARGET_SERIAL = "RESCUE-TARGET"
# rescue.force: QEMU's TCG CPU (x86-64-v3) and firmware differ from the host the sample
# was backed up on, and the hardware verdict would (rightly) stop an unattended restore.
ANSWERS = (f"rescue.action=restore rescue.target=/dev/disk/by-id/virtio-{TARGET_SERIAL} "
           "rescue.confirm=yes rescue.force=yes rescue.after=poweroff console=ttyS0,115200n8")
RUN_BUDGET = 1500  # seconds: boot (~2 min) + image search + restore + verify under TCG


def needs() -> list[str]:
    """What this tree lacks for the unattended run (empty when everything is merged)."""
    missing = []
    if importlib.util.find_spec("rescue.engine.restore") is None:
        missing.append("the restore engine (rescue.engine, main)")
    if importlib.util.find_spec("rescue.commands.wizard") is None:
        missing.append("the wizard's unattended mode (rescue wizard, branch wizard)")
    return missing


def sh(*argv: str, input: str | None = None) -> str:
    proc = subprocess.run(list(argv), input=input, capture_output=True, text=True)
    assert proc.returncode == 0, f"{argv} failed: {proc.stderr}"
    return proc.stdout


KVER = "6.1.0-rescue-test"
# Storage drivers the fake kernel has built in, so the engine's initramfs fix-up finds
# nothing to add on the QEMU machine (it would need a real kernel and chroot otherwise).
BUILTIN = ["virtio_blk", "virtio_scsi", "virtio_pci", "ahci", "libahci", "ata_piix", "nvme",
           "nvme_core", "sd_mod", "sr_mod", "usb_storage", "uas", "xhci_pci", "ehci_pci",
           "mptspi", "vmw_pvscsi", "megaraid_sas", "hpsa", "mpt3sas", "scsi_mod", "libata"]


def debian_like(root: Path, nodes: dict[str, str]) -> None:
    """Just enough of an installed Debian for the engine's boot fix-ups: /etc/fstab by
    UUID, an init, initramfs-tools and a kernel whose storage drivers are built in."""
    def uuid(node: str) -> str:
        return sh("blkid", "-o", "value", "-s", "UUID", node).strip()

    (root / "etc/fstab").write_text(
        f"UUID={uuid(nodes['root'])} / ext4 errors=remount-ro 0 1\n"
        f"UUID={uuid(nodes['esp'])} /boot/efi vfat umask=0077 0 1\n"
        f"UUID={uuid(nodes['swap'])} none swap sw 0 0\n")
    for rel in ("sbin/init", "usr/sbin/update-initramfs", f"boot/vmlinuz-{KVER}"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("#!/bin/sh\n")
    (root / "etc/initramfs-tools").mkdir(parents=True, exist_ok=True)
    for d in ("dev", "proc", "sys", "run"):  # mount points the fix-ups bind into
        (root / d).mkdir(exist_ok=True)
    moddir = root / "lib/modules" / KVER
    moddir.mkdir(parents=True, exist_ok=True)
    (moddir / "modules.builtin").write_text(
        "".join(f"kernel/drivers/{name}.ko\n" for name in BUILTIN))


@pytest.mark.parametrize("source", ["disk", "http", "smb", "nfs"])
def test_unattended_restore(source: str, iso_path: Path, tmp_path: Path) -> None:
    """*disk*: the repository on an attached disk, found by the image search; *http*: on a
    web server on the host (QEMU's user network reaches the host's 127.0.0.1 as
    10.0.2.2), given as rescue.repo=http://10.0.2.2:PORT/; *smb*: in a Samba share on the
    host, rescue.repo=smb://10.0.2.2/backups/repo, which the live system mounts (cifs);
    *nfs*: in an NFSv4 export of nfs-ganesha on the host, rescue.repo=nfs://10.0.2.2/
    export/repo.
    The live system's DHCP brings the network up."""
    missing = needs()
    if missing:
        pytest.skip("waits for " + " and ".join(missing))
    from rescue.demo.sample_system import build_gpt_system, tree_digest

    # 1. A sample system, backed up into a repository, and the repository on a disk.
    repo = tmp_path / "repo"
    with loop_device(tmp_path / "source.img", 192 * MiB) as dev:
        system = build_gpt_system(dev, hostname="sample-pc", files=150,
                                  data_bytes=3 * MiB, root_size="96M")
        with mounted(system.nodes["root"], tmp_path / "src-rw") as m:
            debian_like(m, system.nodes)
        with mounted(system.nodes["root"], tmp_path / "src-mnt", "ro,noload") as m:
            digest = tree_digest(m)
        source_table = json.loads(sh("sfdisk", "-J", dev))["partitiontable"]
        esp_files = system.esp_files
        proc = subprocess.run([sys.executable, "-m", "rescue", "backup", "--disk", dev,
                               "--repo", str(repo), "--name", "iso-e2e"],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    repo_disk = tmp_path / "repo-disk.img"
    with repo_disk.open("wb") as f:
        f.truncate(128 * MiB)
    sh("mkfs.ext4", "-q", "-F", "-L", "IMAGES", "-d", str(repo), str(repo_disk))
    target = tmp_path / "target.img"
    with target.open("wb") as f:
        f.truncate(256 * MiB)  # larger than the source: the root partition grows

    # 2. The ISO with the unattended answers as its default entry.
    with contextlib.ExitStack() as stack:
        answers, disks = ANSWERS, [Disk(repo_disk, "RESCUE-REPO"), Disk(target, TARGET_SERIAL)]
        requests: list[str] = []
        if source == "http":
            url, requests = stack.enter_context(serve(repo))
            port = url.rsplit(":", 1)[1].strip("/")
            answers += f" rescue.repo=http://10.0.2.2:{port}/"
            disks = [Disk(target, TARGET_SERIAL)]
        if source == "smb":
            # a Windows/NAS share: smbd on the host, mounted by the live system (cifs)
            stack.enter_context(samba(tmp_path, tmp_path / "smbd"))
            answers += " rescue.repo=smb://10.0.2.2/backups/repo"
            disks = [Disk(target, TARGET_SERIAL)]
        if source == "nfs":
            # an NFS export: nfs-ganesha on the host, mounted by the live system (NFSv4)
            stack.enter_context(nfs_export(tmp_path, tmp_path / "ganesha"))
            answers += " rescue.repo=nfs://10.0.2.2/export/repo"
            disks = [Disk(target, TARGET_SERIAL)]
        log = boot_and_restore(iso_path, tmp_path, answers, disks)
    if source == "http":
        assert any(r.startswith("GET /chunks/") for r in requests), requests[:20]
    if source in ("http", "smb", "nfs"):
        assert "Image: sample-pc" in log

    # 4. The target, from the host: same table (root grown), sound filesystems, same files.
    check_target(target, source_table, esp_files, digest, tmp_path)


def boot_and_restore(iso_path: Path, tmp_path: Path, answers: str, disks: list[Disk]) -> str:
    """Boot the ISO with *answers* as its default entry on UEFI (the sample's ESP makes it
    a UEFI system); the machine powers itself off when the restore is done."""
    iso = tmp_path / "unattended.iso"
    UsbWriter(CommandRunner(), say=lambda _m: None).write(
        UsbJob(iso=str(iso_path), target=iso, append=answers, title="Rescue (unattended)",
               iso_only=True))
    vm = Machine(iso=iso, workdir=tmp_path / "vm", firmware="uefi", disks=disks)
    try:
        vm.start()
        vm.wait_for(r"unattended restore", 600)
        vm.wait_for(r"unattended run stopped|Shutting down", RUN_BUDGET)
        if "unattended run stopped" in vm.text():
            # The console launcher left a root shell on serial: collect the evidence.
            vm.send("lsblk -f; grep -E 'failed|error' /var/log/rescue/*.log | tail -n 30; "
                    "echo DIAG-END\n")
            with contextlib.suppress(TimeoutError):
                vm.wait_for(r"DIAG-END\s*\n.*#", 60)
            pytest.fail(f"the unattended restore failed in the live system:\n{vm.text()[-5000:]}")
        rc = vm.wait_exit(300)
        log = vm.text()
    finally:
        vm.stop()
    assert rc == 0, log[-3000:]
    assert "Done." in log, f"the unattended run did not finish:\n{log[-3000:]}"
    return log


def check_target(target: Path, source_table: dict, esp_files: dict[str, bytes],
                 digest: object, tmp_path: Path) -> None:
    from rescue.demo.sample_system import esp_get, tree_digest

    table = json.loads(sh("sfdisk", "-J", str(target)))["partitiontable"]
    assert table["label"] == "gpt"
    assert [p["type"] for p in table["partitions"]] == \
        [p["type"] for p in source_table["partitions"]]
    assert table["partitions"][0]["size"] == source_table["partitions"][0]["size"]
    with loop_device(target) as dev:
        nodes = [f"{dev}p{i}" for i in (1, 2, 3)]
        subprocess.run(["partx", "-u", dev], capture_output=True)
        subprocess.run(["udevadm", "settle"], capture_output=True)
        sh("fsck.vfat", "-n", nodes[0])
        sh("e2fsck", "-fn", nodes[1])
        assert "swap0" in sh("blkid", "-o", "value", "-s", "LABEL", nodes[2])
        for name, data in esp_files.items():
            assert esp_get(nodes[0], name) == data, f"ESP file {name} differs"
        with mounted(nodes[1], tmp_path / "dst-mnt", "ro") as m:
            assert tree_digest(m) == digest
