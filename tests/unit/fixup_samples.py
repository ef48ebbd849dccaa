"""Small manifests for the boot fix-up tests (the three test-system layouts)."""

from __future__ import annotations

from rescue.image.manifest import Disk, Manifest, Partition

ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX = "0FC63DAF-8483-4772-8E7D-3D69E4C47D1E"
BIOS_GRUB = "21686148-6449-6E6F-744E-656564454649"


def manifest(layout: str) -> Manifest:
    if layout == "uefi-gpt":
        parts = [
            Partition(1, 2048, 131072, ESP, uuid="2C2C05B5-93C7-5F45-AAEA-E3C9F53CF83E",
                      filesystem="vfat", fs_uuid="D8F9-2CB9"),
            Partition(2, 133120, 1961984, LINUX, filesystem="ext4", fs_uuid="u-root"),
        ]
        table, fw = "gpt", "uefi"
    elif layout == "bios-gpt":
        parts = [
            Partition(1, 2048, 2048, BIOS_GRUB),
            Partition(2, 4096, 2091008, LINUX, filesystem="ext4", fs_uuid="u-root"),
        ]
        table, fw = "gpt", "bios"
    else:
        parts = [
            Partition(1, 2048, 1000000, "83", filesystem="ext4", fs_uuid="u-small"),
            Partition(2, 1002048, 1000000, "82", filesystem="swap"),
            Partition(3, 2002048, 3000000, "83", filesystem="ext4", fs_uuid="u-big"),
        ]
        table, fw = "dos", "bios"
    disk = Disk(2**30, 512, 512, table, "0x1234", source_path="/dev/sda", partitions=parts)
    return Manifest(
        id="img", name="", created_utc="", created_local="", timezone="", computer="pc1",
        os_name="Debian GNU/Linux 12 (bookworm)", os_id="debian", os_version="12",
        firmware=fw, hardware={}, chunk_size=4 << 20, compression="zstd", disks=[disk],
    )
