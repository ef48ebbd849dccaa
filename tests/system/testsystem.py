"""Build (and cache) a small but real Debian 12 test system as raw disk images.

One root filesystem tree is built with debootstrap (minbase + linux-image-amd64 +
initramfs-tools + GRUB binaries) and turned into three raw disk images:

    bios-mbr   MBR table, one ext4 root partition, GRUB core image in the post-MBR gap
    bios-gpt   GPT, a 1 MiB bios_grub partition, ext4 root
    uefi-gpt   GPT, a 64 MiB ESP (FAT32, written with mtools), ext4 root; GRUB installed
               as \\EFI\\debian\\grubx64.efi only (no fallback loader, no NVRAM entry),
               the way an installed system looks to a restore

The initramfs is built with ``MODULES=list`` and only ``virtio_pci virtio_blk ext4`` (what
``MODULES=dep`` picks on a machine whose only disk is virtio; ``dep`` itself would look at
the *host's* disks from inside a chroot), so the system genuinely cannot find its root
on NVMe or AHCI until the initramfs fix-up adds the driver.

The kernel runs ``init=/usr/local/sbin/rescue-boot-marker``: it prints one marker line
(with a per-build token and the hostname) on the serial console and powers off, so a boot
check needs no login. GRUB's menu is hand-written (no update-grub) and boots at once.

Everything is cached under /var/cache/rescue-tests/<recipe hash>/ so reruns take seconds.
Run directly: ``python tests/system/testsystem.py [--layout L ...]``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

CACHE_ROOT = Path(os.environ.get("RESCUE_TEST_CACHE", "/var/cache/rescue-tests"))
MIRROR = os.environ.get("RESCUE_TEST_MIRROR", "http://deb.debian.org/debian")
MiB = 1024 * 1024

LAYOUTS = ("bios-mbr", "bios-gpt", "uefi-gpt")
MARKER = "RESCUE-BOOT-MARKER"

# Host packages the builder and the QEMU harness need (installed on demand).
HOST_PACKAGES = (
    "debootstrap",
    "qemu-system-x86",
    "qemu-utils",
    "ovmf",
    "grub-pc-bin",
    "grub-efi-amd64-bin",
    "mtools",
    "dosfstools",
    "e2fsprogs",
    "fdisk",
    "gdisk",
    "util-linux",
    "efibootmgr",
)

# The modules the initramfs gets: exactly what MODULES=dep picks for a virtio-only machine.
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "ext4")

# Kernel module directories removed to keep the image small (none is needed to boot a
# disk; storage drivers such as nvme and ahci stay so the fix-up can add them).
TRIM_MODULE_DIRS = (
    "drivers/gpu",
    "drivers/media",
    "drivers/net/wireless",
    "drivers/net/ethernet",
    "drivers/infiniband",
    "drivers/staging",
    "drivers/iio",
    "drivers/isdn",
    "drivers/bluetooth",
    "drivers/hid",
    "drivers/input",
    "drivers/usb",
    "drivers/video",
    "drivers/mtd",
    "drivers/hwmon",
    "drivers/scsi/qla2xxx",
    "drivers/scsi/lpfc",
    "drivers/scsi/mpt3sas",
    "drivers/scsi/bfa",
    "drivers/scsi/be2iscsi",
    "drivers/scsi/qedf",
    "drivers/scsi/qedi",
    "drivers/scsi/megaraid",
    "drivers/scsi/aacraid",
    "drivers/scsi/fnic",
    "drivers/scsi/bnx2fc",
    "drivers/scsi/csiostor",
    "drivers/scsi/smartpqi",
    "drivers/scsi/aic7xxx",
    "drivers/scsi/pm8001",
    "drivers/scsi/mpi3mr",
    "drivers/scsi/elx",
    "drivers/scsi/hisi_sas",
    "drivers/scsi/cxgbi",
    "drivers/target",
    "drivers/misc",
    "drivers/crypto",
    "drivers/thunderbolt",
    "drivers/platform",
    "drivers/edac",
    "drivers/watchdog",
    "drivers/char",
    "drivers/net/can",
    "drivers/net/usb",
    "drivers/net/phy",
    "drivers/net/wwan",
    "drivers/net/ieee802154",
    "drivers/net/hamradio",
    "drivers/leds",
    "drivers/power",
    "drivers/i2c",
    "drivers/spi",
    "drivers/gnss",
    "drivers/nfc",
    "drivers/mfd",
    "drivers/regulator",
    "drivers/pinctrl",
    "drivers/rtc",
    "drivers/w1",
    "drivers/firewire",
    "drivers/pcmcia",
    "drivers/parport",
    "drivers/atm",
    "drivers/uwb",
    "drivers/vfio",
    "drivers/vhost",
    "drivers/xen",
    "drivers/hv",
    "sound",
    "net/wireless",
    "net/mac80211",
    "net/bluetooth",
    "net/netfilter",
    "net/ipv4/netfilter",
    "net/ipv6/netfilter",
    "net/bridge",
    "net/sched",
    "net/sunrpc",
    "net/ceph",
    "net/rxrpc",
    "net/mpls",
    "net/openvswitch",
    "fs/nfs",
    "fs/nfsd",
    "fs/ocfs2",
    "fs/gfs2",
    "fs/ceph",
    "fs/smb",
    "fs/cifs",
    "fs/xfs",
    "fs/btrfs",
    "fs/f2fs",
    "fs/ntfs3",
    "fs/ubifs",
    "fs/afs",
    "lib/test_bpf.ko",
    "arch/x86/kvm",
)

INIT_SCRIPT = f"""#!/bin/sh
# rescue boot-matrix init: prove the restored root was mounted, print one marker line on
# the serial console, power off. Started by the kernel as init=.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
root=$(awk '$2 == "/" {{print $1}}' /proc/mounts | tail -n 1)
disk=$(ls /sys/block | grep -v -e '^loop' -e '^ram' | tr '\\n' ',')
rootkb=$(df -k / | awk 'NR == 2 {{print $2}}')
# A disk labelled RESCUEJOB carries a job (tests that need a program to run inside a
# booted machine, e.g. efibootmgr on UEFI firmware). The root stays read-only.
job=$(blkid -L RESCUEJOB 2>/dev/null)
if [ -n "$job" ] && mount "$job" /mnt 2>/dev/null; then
    if [ -d /sys/firmware/efi/efivars ]; then
        mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null
    fi
    sh /mnt/job.sh > /dev/ttyS0 2>&1
    umount /mnt
fi
echo "{MARKER} token=$(cat /etc/rescue-test-token) host=$(cat /etc/hostname) root=$root rootkb=$rootkb disks=$disk kernel=$(uname -r) END" > /dev/ttyS0
sync
echo o > /proc/sysrq-trigger
sleep 30
"""  # noqa: E501

RECIPE = {
    "version": 4,
    "suite": "bookworm",
    "mirror": MIRROR,
    "variant": "minbase",
    "packages": [
        "linux-image-amd64",
        "initramfs-tools",
        "grub-pc-bin",
        "grub-efi-amd64-bin",
        "grub2-common",
        "e2fsprogs",
        # for jobs run inside the booted test system (the real NVRAM test)
        "python3",
        "mtools",
        "efibootmgr",
    ],
    "initramfs": {"MODULES": "list", "modules": list(INITRAMFS_MODULES), "COMPRESS": "zstd"},
    "trim": list(TRIM_MODULE_DIRS),
    "init": INIT_SCRIPT,
}

LAYOUT_RECIPE = {
    "version": 4,
    "disk_mib": 1024,
    "esp_mib": 64,
    # initramfs-tools waits max(30, rootdelay) s for the root device; rootdelay= would add
    # a fixed sleep, so it is not set.
    "cmdline": "ro console=ttyS0,115200 init=/usr/local/sbin/rescue-boot-marker",
}


def _hash(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def rootfs_hash() -> str:
    return _hash(RECIPE)


def recipe_hash() -> str:
    """Key of the built disk images: the root tree's recipe plus the layout recipe."""
    return _hash({"rootfs": RECIPE, "layout": LAYOUT_RECIPE})


@dataclass
class TestSystem:
    """One cached, built disk image and what the tests need to know about it."""

    layout: str
    image: str  # path of the raw disk image (never written by tests: copy or -snapshot)
    size: int
    firmware: str  # "bios" | "uefi"
    table: str  # "dos" | "gpt"
    root_partition: int
    root_uuid: str
    esp_partition: int | None
    esp_uuid: str | None
    hostname: str
    token: str
    kernel: str
    build_seconds: float

    @property
    def marker(self) -> str:
        return f"{MARKER} token={self.token} host={self.hostname}"

    @classmethod
    def load(cls, path: Path) -> TestSystem:
        return cls(**json.loads(path.read_text()))


# --------------------------------------------------------------------------- helpers


def log(msg: str) -> None:
    print(f"[testsystem {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(
    *argv: str | os.PathLike[str], input: str | None = None, env: dict | None = None
) -> str:
    args = [str(a) for a in argv]
    proc = subprocess.run(args, input=input, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}"
            f"\n{proc.stderr[-2000:]}"
        )
    return proc.stdout


def ensure_host_packages(packages: tuple[str, ...] = HOST_PACKAGES) -> None:
    """apt-get install whatever of *packages* is missing (nothing survives between machines)."""
    missing = []
    for p in packages:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True
        )
        if "install ok installed" not in proc.stdout:
            missing.append(p)
    if not missing:
        return
    log(f"installing host packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run("apt-get", "update", "-qq", env=env)
    run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, env=env)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def chroot_binds(root: Path) -> Iterator[None]:
    """Bind /dev, /proc, /sys, /run into *root*; always unmount (lazily if busy)."""
    done: list[Path] = []
    try:
        for d in ("dev", "dev/pts", "proc", "sys", "run"):
            target = root / d
            target.mkdir(parents=True, exist_ok=True)
            run("mount", "--bind", f"/{d}", target)
            run("mount", "--make-rslave", target)
            done.append(target)
        yield
    finally:
        for target in reversed(done):
            if subprocess.run(["umount", target], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", target], capture_output=True)


def chroot(root: Path, *argv: str, env: dict | None = None) -> str:
    base = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LC_ALL": "C",
        "HOME": "/root",
    }
    base.update(env or {})
    return run("chroot", root, *argv, env=base)


@contextlib.contextmanager
def loop_device(image: Path, read_only: bool = False) -> Iterator[str]:
    args = ["losetup", "-f", "--show"] + (["-r"] if read_only else []) + [str(image)]
    dev = run(*args).strip()
    try:
        yield dev
    finally:
        subprocess.run(["partx", "-d", dev], capture_output=True)
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def refresh_partitions(dev: str, expect: int = 0) -> None:
    """Make the kernel see *dev*'s partitions (no loop partition parser here); wait until
    the first *expect* nodes exist."""
    subprocess.run(["partx", "-u", dev], capture_output=True)
    subprocess.run(["partx", "-a", dev], capture_output=True)
    subprocess.run(["udevadm", "settle", "--timeout=10"], capture_output=True)
    deadline = time.monotonic() + 15
    while not all(Path(f"{dev}p{n}").exists() for n in range(1, expect + 1)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"partition nodes of {dev} did not appear")
        subprocess.run(["partx", "-a", dev], capture_output=True)
        subprocess.run(["udevadm", "settle", "--timeout=10"], capture_output=True)
        time.sleep(0.2)


@contextlib.contextmanager
def mounted(dev: str, mountpoint: Path) -> Iterator[Path]:
    mountpoint.mkdir(parents=True, exist_ok=True)
    run("mount", dev, mountpoint)
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", mountpoint], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", mountpoint], capture_output=True)


# --------------------------------------------------------------------------- rootfs


def build_rootfs(dest: Path) -> None:
    """debootstrap + kernel + initramfs config into *dest* (a fresh directory)."""
    debs = CACHE_ROOT / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    log(f"debootstrap {RECIPE['suite']} ({RECIPE['variant']}) into {dest}")
    run(
        "debootstrap",
        f"--variant={RECIPE['variant']}",
        f"--cache-dir={debs}",
        RECIPE["suite"],
        dest,
        RECIPE["mirror"],
    )
    # initramfs config first, so the kernel's postinst already builds the small initramfs.
    conf = dest / "etc/initramfs-tools/conf.d"
    conf.mkdir(parents=True, exist_ok=True)
    init = RECIPE["initramfs"]
    (conf / "rescue-test").write_text(
        "# rescue test system: a virtio-only initramfs (see tests/system/testsystem.py)\n"
        f"MODULES={init['MODULES']}\nCOMPRESS={init['COMPRESS']}\n"
    )
    (dest / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
    (dest / "usr/sbin/policy-rc.d").chmod(0o755)
    (dest / "etc/apt/apt.conf.d/90rescue-test").write_text(
        'APT::Install-Recommends "false";\nAcquire::Retries "3";\n'
    )
    with chroot_binds(dest):
        log("apt-get install " + " ".join(RECIPE["packages"]))
        chroot(dest, "apt-get", "update", "-qq")
        chroot(
            dest,
            "apt-get",
            "install",
            "-y",
            "-qq",
            "-o",
            f"Dir::Cache::Archives={'/var/cache/apt/archives'}",
            *RECIPE["packages"],
        )
        kernels = sorted(p.name for p in (dest / "lib/modules").iterdir())
        log(f"trimming kernel modules of {kernels}")
        for kver in kernels:
            for rel in RECIPE["trim"]:
                p = dest / "lib/modules" / kver / "kernel" / rel
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
            chroot(dest, "depmod", "-a", kver)
        # /etc/initramfs-tools/modules is a conffile: append after installation.
        with open(dest / "etc/initramfs-tools/modules", "a") as f:
            f.write("# rescue test system: virtio only\n")
            for m in init["modules"]:
                f.write(m + "\n")
        log("update-initramfs (MODULES=list: " + " ".join(init["modules"]) + ")")
        chroot(dest, "update-initramfs", "-u", "-k", "all")
        chroot(dest, "apt-get", "clean")
    (dest / "usr/sbin/policy-rc.d").unlink()
    for rel in ("usr/share/doc", "usr/share/man", "usr/share/locale", "var/lib/apt/lists"):
        shutil.rmtree(dest / rel, ignore_errors=True)
    marker = dest / "usr/local/sbin/rescue-boot-marker"
    marker.write_text(RECIPE["init"])
    marker.chmod(0o755)


def rootfs_dir() -> Path:
    """The cached root tree (built on first use)."""
    key = rootfs_hash()
    final = CACHE_ROOT / f"rootfs-{key}"
    with file_lock(CACHE_ROOT / f".lock-rootfs-{key}"):
        if (final / ".complete").exists():
            return final
        ensure_host_packages()
        tmp = CACHE_ROOT / f"rootfs-{key}.tmp"
        if tmp.exists():
            run("rm", "-rf", "--one-file-system", tmp)
        tmp.mkdir(parents=True)
        started = time.monotonic()
        build_rootfs(tmp)
        (tmp / ".complete").write_text(f"{time.monotonic() - started:.1f}\n")
        if final.exists():
            run("rm", "-rf", "--one-file-system", final)
        tmp.rename(final)
        log(f"rootfs built in {time.monotonic() - started:.0f} s")
        return final


DRACUT_RECIPE = {
    "version": 1,
    "suite": "bookworm",
    "mirror": MIRROR,
    "variant": "minbase",
    "packages": ["linux-image-amd64", "dracut", "e2fsprogs"],
    # hostonly: only what the build machine's (virtio) disk needs, like MODULES=dep.
    "dracut_conf": 'hostonly="yes"\nhostonly_mode="strict"\ncompress="zstd"\n',
    "trim": list(TRIM_MODULE_DIRS),
}


def dracut_rootfs_dir() -> Path:
    """A second, cached root tree whose initramfs is made by dracut (no initramfs-tools),
    for the dracut path of the initramfs fix-up. Not bootable (no GRUB): a chroot only."""
    key = _hash(DRACUT_RECIPE)
    final = CACHE_ROOT / f"rootfs-dracut-{key}"
    with file_lock(CACHE_ROOT / f".lock-rootfs-dracut-{key}"):
        if (final / ".complete").exists():
            return final
        ensure_host_packages()
        tmp = CACHE_ROOT / f"rootfs-dracut-{key}.tmp"
        if tmp.exists():
            run("rm", "-rf", "--one-file-system", tmp)
        tmp.mkdir(parents=True)
        (CACHE_ROOT / "debs").mkdir(parents=True, exist_ok=True)  # may be the first build
        started = time.monotonic()
        log(f"debootstrap (dracut variant) into {tmp}")
        run("debootstrap", "--variant=minbase", f"--cache-dir={CACHE_ROOT / 'debs'}",
            DRACUT_RECIPE["suite"], tmp, DRACUT_RECIPE["mirror"])
        conf = tmp / "etc/dracut.conf.d"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "10-rescue-test.conf").write_text(DRACUT_RECIPE["dracut_conf"])
        (tmp / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
        (tmp / "usr/sbin/policy-rc.d").chmod(0o755)
        (tmp / "etc/apt/apt.conf.d/90rescue-test").write_text(
            'APT::Install-Recommends "false";\nAcquire::Retries "3";\n'
        )
        with chroot_binds(tmp):
            chroot(tmp, "apt-get", "update", "-qq")
            chroot(tmp, "apt-get", "install", "-y", "-qq", *DRACUT_RECIPE["packages"])
            for kver in sorted(p.name for p in (tmp / "lib/modules").iterdir()):
                for rel in DRACUT_RECIPE["trim"]:
                    p = tmp / "lib/modules" / kver / "kernel" / rel
                    if p.is_dir():
                        shutil.rmtree(p)
                    elif p.exists():
                        p.unlink()
                chroot(tmp, "depmod", "-a", kver)
                chroot(tmp, "dracut", "--force", f"/boot/initrd.img-{kver}", kver)
            chroot(tmp, "apt-get", "clean")
        (tmp / "usr/sbin/policy-rc.d").unlink()
        for rel in ("usr/share/doc", "usr/share/man", "usr/share/locale", "var/lib/apt/lists"):
            shutil.rmtree(tmp / rel, ignore_errors=True)
        (tmp / "etc/fstab").write_text("# filled in by the test\n")
        (tmp / ".complete").write_text(f"{time.monotonic() - started:.1f}\n")
        tmp.rename(final)
        log(f"dracut rootfs built in {time.monotonic() - started:.0f} s")
        return final


# --------------------------------------------------------------------------- disk images

BIOS_GRUB_TYPE = "21686148-6449-6E6F-744E-656564454649"
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX_TYPE = "0FC63DAF-8483-4772-8E7D-3D69E4C47D1E"


def sfdisk_script(layout: str) -> str:
    if layout == "bios-mbr":
        return "label: dos\nlabel-id: 0x5e5c0e01\nstart=2048, type=83, bootable\n"
    if layout == "bios-gpt":
        return (
            "label: gpt\n"
            f"start=2048, size=2048, type={BIOS_GRUB_TYPE}, name=bios_grub\n"
            f"start=4096, type={LINUX_TYPE}, name=root\n"
        )
    if layout == "uefi-gpt":
        esp = LAYOUT_RECIPE["esp_mib"] * 2048
        return (
            "label: gpt\n"
            f"start=2048, size={esp}, type={ESP_TYPE}, name=EFI\n"
            f"start={2048 + esp}, type={LINUX_TYPE}, name=root\n"
        )
    raise ValueError(f"unknown layout {layout!r}")


def grub_cfg(root_uuid: str, kernel: str, layout: str) -> str:
    part = "part_msdos" if layout == "bios-mbr" else "part_gpt"
    return f"""# rescue test system (hand-written; boots at once on the serial console)
set timeout=0
set default=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
insmod {part}
insmod ext2
search --no-floppy --fs-uuid --set=root {root_uuid}
menuentry "Debian GNU/Linux (rescue test {layout})" {{
    linux /boot/vmlinuz-{kernel} root=UUID={root_uuid} {LAYOUT_RECIPE["cmdline"]}
    initrd /boot/initrd.img-{kernel}
}}
"""


def mtools_env() -> dict[str, str]:
    return dict(os.environ, MTOOLS_SKIP_CHECK="1")


def build_layout(layout: str, rootfs: Path, out: Path) -> TestSystem:
    started = time.monotonic()
    size = LAYOUT_RECIPE["disk_mib"] * MiB
    tmp_image = out.with_suffix(".img.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp_image, "wb") as f:
        f.truncate(size)
    token = uuid.uuid4().hex[:12]
    hostname = f"rescue-test-{layout}"
    root_uuid = str(uuid.uuid4())
    esp_uuid: str | None = None
    firmware = "uefi" if layout.startswith("uefi") else "bios"
    kernel = sorted(p.name for p in (rootfs / "lib/modules").iterdir())[-1]
    root_part = 1 if layout == "bios-mbr" else 2
    with loop_device(tmp_image) as dev, tempfile.TemporaryDirectory(
        prefix="rescue-build-"
    ) as td:
        run("sfdisk", "--no-reread", "-q", dev, input=sfdisk_script(layout))
        refresh_partitions(dev, expect=root_part)
        root_dev = f"{dev}p{root_part}"
        run("mkfs.ext4", "-q", "-F", "-U", root_uuid, "-L", "root", root_dev)
        esp_dev = f"{dev}p1"
        if layout == "uefi-gpt":
            volid = uuid.uuid4().hex[:8].upper()
            run("mkfs.vfat", "-F", "32", "-n", "EFI", "-i", volid, esp_dev)
            esp_uuid = f"{volid[:4]}-{volid[4:]}"
        mnt = Path(td) / "root"
        with mounted(root_dev, mnt):
            log(f"{layout}: copying root tree")
            run("cp", "-a", f"{rootfs}/.", mnt)
            (mnt / ".complete").unlink(missing_ok=True)
            (mnt / "etc/hostname").write_text(hostname + "\n")
            (mnt / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {hostname}\n")
            (mnt / "etc/rescue-test-token").write_text(token + "\n")
            fstab = f"UUID={root_uuid} / ext4 errors=remount-ro 0 1\n"
            if esp_uuid:
                fstab += f"UUID={esp_uuid} /boot/efi vfat umask=0077 0 1\n"
                (mnt / "boot/efi").mkdir(parents=True, exist_ok=True)
            (mnt / "etc/fstab").write_text(fstab)
            (mnt / "boot/grub").mkdir(parents=True, exist_ok=True)
            with chroot_binds(mnt):
                if firmware == "bios":
                    log(f"{layout}: grub-install --target=i386-pc {dev}")
                    chroot(
                        mnt,
                        "grub-install",
                        "--target=i386-pc",
                        "--boot-directory=/boot",
                        "--modules=part_msdos part_gpt ext2",
                        dev,
                    )
                else:
                    # grub-install refuses a staging directory that is not a mounted FAT
                    # ESP (and this kernel cannot mount vfat), so do its two steps by hand:
                    # modules into /boot/grub, a core image that finds /boot by UUID.
                    staging = mnt / "tmp/esp-staging"
                    (staging / "EFI/debian").mkdir(parents=True)
                    log(f"{layout}: grub-mkimage -O x86_64-efi (EFI/debian/grubx64.efi)")
                    moddir = mnt / "boot/grub/x86_64-efi"
                    shutil.copytree(mnt / "usr/lib/grub/x86_64-efi", moddir)
                    (staging / "load.cfg").write_text(
                        f"search.fs_uuid {root_uuid} root\nset prefix=($root)'/boot/grub'\n"
                    )
                    chroot(
                        mnt,
                        "grub-mkimage",
                        "-O",
                        "x86_64-efi",
                        "-d",
                        "/usr/lib/grub/x86_64-efi",
                        "-c",
                        "/tmp/esp-staging/load.cfg",
                        "-p",
                        "/boot/grub",
                        "-o",
                        "/tmp/esp-staging/EFI/debian/grubx64.efi",
                        "part_gpt",
                        "part_msdos",
                        "ext2",
                        "fat",
                        "search_fs_uuid",
                    )
                    env = mtools_env()
                    src = staging / "EFI/debian"
                    run("mmd", "-i", esp_dev, "::/EFI", "::/EFI/debian", env=env)
                    for f in sorted(src.iterdir()):
                        run("mcopy", "-i", esp_dev, f, f"::/EFI/debian/{f.name}", env=env)
                    shutil.rmtree(staging)
            (mnt / "boot/grub/grub.cfg").write_text(grub_cfg(root_uuid, kernel, layout))
        run("e2fsck", "-fy", root_dev)
    tmp_image.rename(out)
    ts = TestSystem(
        layout=layout,
        image=str(out),
        size=size,
        firmware=firmware,
        table="dos" if layout == "bios-mbr" else "gpt",
        root_partition=root_part,
        root_uuid=root_uuid,
        esp_partition=1 if esp_uuid else None,
        esp_uuid=esp_uuid,
        hostname=hostname,
        token=token,
        kernel=kernel,
        build_seconds=round(time.monotonic() - started, 1),
    )
    out.with_suffix(".json").write_text(json.dumps(asdict(ts), indent=2) + "\n")
    log(f"{layout}: built in {ts.build_seconds:.0f} s")
    return ts


def test_system(layout: str) -> TestSystem:
    """The cached test system for *layout*, building what is missing (locked, idempotent)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
    key = recipe_hash()
    out = CACHE_ROOT / key / f"{layout}.img"
    meta = out.with_suffix(".json")
    if out.exists() and meta.exists():
        return TestSystem.load(meta)
    rootfs = rootfs_dir()
    with file_lock(CACHE_ROOT / f".lock-{key}-{layout}"):
        if out.exists() and meta.exists():
            return TestSystem.load(meta)
        ensure_host_packages()
        return build_layout(layout, rootfs, out)


def prune() -> list[Path]:
    """Remove cached trees and images of other recipes (not the current ones)."""
    keep = {
        f"rootfs-{rootfs_hash()}",
        f"rootfs-dracut-{_hash(DRACUT_RECIPE)}",
        recipe_hash(),
        "debs",
        "scratch",
        "boot-logs",
    }
    removed = []
    if CACHE_ROOT.is_dir():
        for p in sorted(CACHE_ROOT.iterdir()):
            if p.is_dir() and p.name not in keep:
                run("rm", "-rf", "--one-file-system", p)
                removed.append(p)
    return removed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layout", action="append", choices=LAYOUTS)
    ap.add_argument("--print-cache", action="store_true", help="print the cache directory")
    ap.add_argument("--prune", action="store_true", help="remove caches of older recipes")
    args = ap.parse_args(argv)
    if args.print_cache:
        print(CACHE_ROOT / recipe_hash())
        return 0
    if args.prune:
        for p in prune():
            print(f"removed {p}")
        return 0
    started = time.monotonic()
    for layout in args.layout or LAYOUTS:
        ts = test_system(layout)
        print(f"{layout}: {ts.image}")
    log(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
