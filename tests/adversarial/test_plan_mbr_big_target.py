"""An MBR image restored onto a disk larger than the MBR can address (2^32 sectors, 2 TiB at
512-byte sectors): the README promises the largest growable partition grows to fill the
disk; it should grow as far as an MBR entry can reach, not silently stay as it was."""

from __future__ import annotations

from rescue.image.manifest import METHOD_USED_BLOCKS, ChunkedData, Disk, Manifest, Partition
from rescue.plan.restore import RestoreOptions, TargetInfo, plan_restore

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB
MBR_LIMIT = 2**32 - 1


def _manifest(parts: list[Partition], sectors: int) -> Manifest:
    disk = Disk(size_bytes=sectors * 512, logical_sector_size=512, physical_sector_size=4096,
                table="dos", id="0x1234abcd", partitions=parts)
    return Manifest(id="20260101T000000Z-mbrbig", name="g", created_utc="", created_local="",
                    timezone="", computer="pc", os_name="", os_id="", os_version="",
                    firmware="bios", hardware={}, chunk_size=MiB, compression="zstd",
                    disks=[disk])


def _ext4(number: int, start: int, size: int) -> Partition:
    return Partition(number, start, size, "83", filesystem="ext4", method=METHOD_USED_BLOCKS,
                     data=ChunkedData(length=size * 512, chunk_size=MiB))


def test_mbr_onto_a_3_tib_disk_grows_up_to_the_mbr_limit() -> None:
    size = 200 * GiB // 512
    manifest = _manifest([_ext4(1, 2048, size)], 2048 + size)
    target = TargetInfo(path="/dev/sdz", size_bytes=3 * TiB, logical_sector_size=512,
                        physical_sector_size=4096)
    plan = plan_restore(manifest, target, RestoreOptions(grow=True), firmware="bios")
    (p,) = plan.partitions
    assert p.grow_filesystem, "a 200 GiB MBR partition on a 3 TiB disk was not grown at all"
    assert p.start + p.size <= MBR_LIMIT
    assert p.start + p.size > MBR_LIMIT - 2048  # fills what the MBR can address


def test_mbr_onto_a_disk_just_under_the_limit_still_grows() -> None:
    size = 100 * GiB // 512
    manifest = _manifest([_ext4(1, 2048, size)], 2048 + size)
    target = TargetInfo(path="/dev/sdz", size_bytes=(MBR_LIMIT - 4096) * 512,
                        logical_sector_size=512, physical_sector_size=4096)
    plan = plan_restore(manifest, target, RestoreOptions(grow=True), firmware="bios")
    (p,) = plan.partitions
    assert p.grow_filesystem and p.start + p.size <= MBR_LIMIT
