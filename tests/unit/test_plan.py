from __future__ import annotations

import json

import pytest
from test_manifest import sample_manifest

from rescue.errors import TargetRefusedError, TargetTooSmallError, UsageError
from rescue.image.manifest import Partition
from rescue.plan.restore import RestoreOptions, TargetInfo, plan_restore

MiB = 1024 * 1024


def three_partition_manifest():  # type: ignore[no-untyped-def]
    m = sample_manifest()
    disk = m.disks[0]
    disk.size_bytes = 512 * MiB
    disk.last_lba = disk.sectors - 34
    disk.partitions = [
        Partition(1, 2048, 131072, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", filesystem="vfat"),
        Partition(2, 133120, 655360, "0FC63DAF-8483-4772-8E79-3D69D8477DE4", filesystem="ext4"),
        Partition(3, 788480, 65536, "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", filesystem="swap",
                  method="recreate"),
    ]
    return m


def target(size: int, **kw) -> TargetInfo:  # type: ignore[no-untyped-def]
    return TargetInfo(path="/dev/sdz", size_bytes=size, logical_sector_size=512, **kw)


def test_equal_disk_keeps_layout_exactly() -> None:
    plan = plan_restore(three_partition_manifest(), target(512 * MiB), RestoreOptions())
    assert [(p.start, p.size) for p in plan.partitions] == [
        (2048, 131072), (133120, 655360), (788480, 65536)]
    assert "grow-filesystems" not in plan.steps
    json.dumps(plan.to_dict())  # the plan is data


def test_larger_disk_grows_largest_ext_and_moves_later_partitions() -> None:
    plan = plan_restore(three_partition_manifest(), target(1024 * MiB), RestoreOptions())
    esp, root, swap = plan.partitions
    usable_end = 1024 * MiB // 512 - 33  # one past the last usable LBA (sectors - 34)
    extra = (usable_end - (788480 + 65536)) // 2048 * 2048  # fill the disk, 1 MiB aligned
    assert (esp.start, esp.size) == (2048, 131072)
    assert root.start == 133120 and root.size == 655360 + extra and root.grow_filesystem
    assert swap.start == 788480 + extra and swap.size == 65536
    assert "grow-filesystems" in plan.steps


def test_no_grow_option_keeps_sizes() -> None:
    plan = plan_restore(three_partition_manifest(), target(1024 * MiB), RestoreOptions(grow=False))
    assert plan.partition(2).size == 655360


def test_too_small_target_is_refused_with_numbers() -> None:
    with pytest.raises(TargetTooSmallError) as err:
        plan_restore(three_partition_manifest(), target(300 * MiB), RestoreOptions(shrink=False))
    message = str(err.value)
    assert "300.0 MiB" in message and str(300 * MiB) in message and "need" in message


def test_target_larger_than_partitions_but_smaller_than_source_disk_is_fine() -> None:
    m = three_partition_manifest()
    m.disks[0].size_bytes = 2048 * MiB
    plan = plan_restore(m, target(512 * MiB), RestoreOptions())
    assert plan.partition(3).start == 788480


@pytest.mark.parametrize("kw,words", [
    ({"read_only": True}, "read-only"),
    ({"busy": "/dev/sdz1 is mounted on /mnt"}, "in use"),
    ({"holds_repository": True}, "repository"),
    ({"is_boot_medium": True}, "started from"),
])
def test_target_refusals(kw: dict, words: str) -> None:
    with pytest.raises(TargetRefusedError, match=words):
        plan_restore(three_partition_manifest(), target(512 * MiB, **kw), RestoreOptions())


def test_sector_size_mismatch_is_refused() -> None:
    t = TargetInfo(path="/dev/sdz", size_bytes=1024 * MiB, logical_sector_size=4096)
    with pytest.raises(TargetRefusedError, match="4096-byte sectors"):
        plan_restore(three_partition_manifest(), t, RestoreOptions())


def test_gaps_in_gpt_numbering_are_planned_as_on_the_source() -> None:
    m = three_partition_manifest()
    m.disks[0].partitions[2].number = 4
    plan = plan_restore(m, target(512 * MiB), RestoreOptions())
    assert [p.number for p in plan.partitions] == [1, 2, 4]


def test_impossible_gpt_numbers_are_refused_clearly() -> None:
    m = three_partition_manifest()
    m.disks[0].partitions[2].number = 2  # twice
    with pytest.raises(UsageError, match="numbered"):
        plan_restore(m, target(512 * MiB), RestoreOptions())
    m.disks[0].partitions[2].number = 129
    with pytest.raises(UsageError, match="1 to 128"):
        plan_restore(m, target(512 * MiB), RestoreOptions())


def test_impossible_mbr_numbers_are_refused_clearly() -> None:
    m = three_partition_manifest()
    m.disks[0].table = "dos"
    m.disks[0].partitions[2].kind = "logical"
    m.disks[0].partitions[2].number = 6  # logical partitions start at 5, without gaps
    with pytest.raises(UsageError, match="logical ones 5, 6"):
        plan_restore(m, target(512 * MiB), RestoreOptions())


def test_summary_mentions_erasure_when_target_holds_data() -> None:
    plan = plan_restore(three_partition_manifest(), target(512 * MiB, existing_table="gpt"),
                        RestoreOptions())
    assert any("will be erased" in line for line in plan.summary_lines())


def mbr_manifest(root_sectors: int, home_sectors: int):  # type: ignore[no-untyped-def]
    """A legacy MBR disk: primary root, extended (2) with /var (5) and /home (6) at the end."""
    m = sample_manifest()
    disk = m.disks[0]
    disk.table = "dos"
    var = 2048 + root_sectors + 2048
    home = var + 65536 + 2048
    disk.size_bytes = (home + home_sectors) * 512
    disk.partitions = [
        Partition(1, 2048, root_sectors, "83", filesystem="ext4"),
        Partition(2, 2048 + root_sectors, disk.sectors - 2048 - root_sectors, "5",
                  kind="extended", method="none"),
        Partition(5, var, 65536, "83", kind="logical", filesystem="ext4"),
        Partition(6, home, home_sectors, "83", kind="logical", filesystem="ext4"),
    ]
    return m


def test_mbr_largest_logical_grows_inside_its_extended_partition() -> None:
    m = mbr_manifest(200000, 400000)
    plan = plan_restore(m, target(m.disks[0].size_bytes + 10 * MiB), RestoreOptions())
    root, ext, var, home = (plan.partition(n) for n in (1, 2, 5, 6))
    extra = 10 * MiB // 512
    assert home.size == 400000 + extra and home.grow_filesystem and not home.moved
    assert ext.size == m.disks[0].partition(2).size + extra and not ext.moved
    assert ext.start + ext.size == home.start + home.size  # the container still holds it
    assert (root.start, root.size, var.start, var.size) == (2048, 200000, 204096, 65536)


def test_mbr_largest_primary_before_the_extended_partition_moves_the_container() -> None:
    m = mbr_manifest(400000, 100000)
    src = {p.number: p for p in m.disks[0].partitions}
    plan = plan_restore(m, target(m.disks[0].size_bytes + 10 * MiB), RestoreOptions())
    extra = 10 * MiB // 512
    assert plan.partition(1).size == 400000 + extra
    for n in (2, 5, 6):
        assert plan.partition(n).start == src[n].start + extra
        assert plan.partition(n).size == src[n].size
