"""md arrays in the inventory: one row per array, IMSM/DDF containers hidden, members
protected (assembled or not) with a sentence naming the array.

The sysfs trees here are test doubles, written to a temporary directory: this machine's
kernel has no md driver, so no array can be assembled on it. They copy the layout the
kernel documents (Documentation/admin-guide/md.rst) and mdadm produces: ``md/level``,
``md/metadata_version`` ("1.2", "external:imsm", "external:/md127/0"), ``md/raid_disks``
and ``slaves/``. Real member superblocks (blkid, udev) are checked by
tests/integration/test_raid_members.py; real arrays by tests/iso/test_storage.py.
"""

from __future__ import annotations

from pathlib import Path

from rescue.commands.devices import format_inventory
from rescue.devices.catalog import _sources
from rescue.devices.disks import KIND_MD, Disk, Inventory, Partition
from rescue.devices.eligibility import assess
from rescue.devices.md import MdArray, apply_md, md_title, parse_metadata, read_md_arrays
from rescue.wizard.model import DiskEntry
from rescue.wizard.screens.target import reason_text

GiB = 1024**3
MiB = 1024**2


def md_dir(root: Path, name: str, level: str, metadata: str, slaves: list[str],
           raid_disks: int = 2) -> None:
    d = root / name
    (d / "md").mkdir(parents=True)
    (d / "md/level").write_text(level + "\n")
    (d / "md/metadata_version").write_text(metadata + "\n")
    (d / "md/raid_disks").write_text(f"{raid_disks}\n")
    (d / "slaves").mkdir()
    for s in slaves:  # the kernel makes symlinks to the members' sysfs directories
        (d / "slaves" / s).symlink_to(root / s)


def sys_tree(tmp_path: Path) -> Path:
    """A machine with a native RAID1 on two partitions (md0), an Intel RST RAID1 volume
    (md126 in container md127) on two NVMe disks, and a DDF container (md125) with a
    RAID0 volume (md124), and a plain disk."""
    root = tmp_path / "sys/block"
    for name in ("vda", "vdb", "nvme0n1", "nvme1n1", "sdc", "sdd", "sde", "sda"):
        (root / name).mkdir(parents=True)
    for part in ("vda1", "vdb1"):
        (root / part).mkdir()
    md_dir(root, "md0", "raid1", "1.2", ["vda1", "vdb1"])
    md_dir(root, "md127", "", "external:imsm", ["nvme0n1", "nvme1n1"], raid_disks=0)
    md_dir(root, "md126", "raid1", "external:/md127/0", ["nvme0n1", "nvme1n1"])
    md_dir(root, "md125", "container", "external:ddf", ["sdc", "sdd"], raid_disks=0)
    md_dir(root, "md124", "raid0", "external:-md125/1", ["sdc", "sdd"])
    return root


def disk(name: str, kind: str = "disk", size: int = 20 * GiB, **kw: object) -> Disk:
    return Disk(name, f"/dev/{name}", f"{8 if kind == 'disk' else 9}:{len(name)}", kind=kind,
                size=size, transport="virtio" if kind == "disk" else "", **kw)  # type: ignore[arg-type]


def machine(assembled: bool = True) -> list[Disk]:
    """The disks of sys_tree's machine; not *assembled*: the arrays stopped (no md
    devices, no holders), the members' superblocks still there."""
    disks = [
        disk("vda", partitions=[Partition("vda1", "/dev/vda1", "252:1", 1,
                                          fstype="linux_raid_member", label="host:0",
                                          uuid="0fbc", holders=["md0"])]),
        disk("vdb", partitions=[Partition("vdb1", "/dev/vdb1", "252:17", 1,
                                          fstype="linux_raid_member", label="host:0",
                                          uuid="0fbc", holders=["md0"])]),
        disk("nvme0n1", fstype="isw_raid_member", holders=["md126", "md127"],
             partitions=[Partition("nvme0n1p1", "/dev/nvme0n1p1", "259:1", 1, fstype="ntfs")]),
        disk("nvme1n1", fstype="isw_raid_member", holders=["md126", "md127"]),
        disk("sdc", fstype="ddf_raid_member", holders=["md124", "md125"]),
        disk("sdd", fstype="ddf_raid_member", holders=["md124", "md125"]),
        disk("sde"),
        disk("md0", KIND_MD, fstype="ext4"),
        disk("md126", KIND_MD, partitions=[Partition("md126p1", "/dev/md126p1", "259:9", 1,
                                                     fstype="ntfs")]),
        disk("md127", KIND_MD, size=0),
        disk("md124", KIND_MD),
        disk("md125", KIND_MD, size=0),
    ]
    if assembled:
        return disks
    for d in disks:
        d.holders = []
        for p in d.partitions:
            p.holders = []
    return [d for d in disks if d.kind != KIND_MD]


def test_parse_metadata_native_container_and_volume() -> None:
    assert parse_metadata("1.2") == ("1.2", "")
    assert parse_metadata("0.90") == ("0.90", "")
    assert parse_metadata("none") == ("", "")
    assert parse_metadata("external:imsm") == ("imsm", "")
    assert parse_metadata("external:/md127/0") == ("", "md127")
    assert parse_metadata("external:-md125/1") == ("", "md125")


def test_read_md_arrays_from_a_sysfs_tree(tmp_path: Path) -> None:
    arrays = read_md_arrays(sys_tree(tmp_path))
    assert set(arrays) == {"md0", "md124", "md125", "md126", "md127"}
    assert arrays["md0"] == MdArray("md0", "raid1", "1.2", "", ("vda1", "vdb1"), 2)
    assert arrays["md127"].is_container and arrays["md127"].metadata == "imsm"
    assert arrays["md125"].is_container
    assert not arrays["md126"].is_container and arrays["md126"].container == "md127"
    assert arrays["md124"].container == "md125"


def test_no_md_driver_means_no_arrays(tmp_path: Path) -> None:
    assert read_md_arrays(tmp_path / "nothing") == {}
    (tmp_path / "sys").mkdir()
    (tmp_path / "sys/md0").mkdir()  # an md node without md/: not an array
    assert read_md_arrays(tmp_path / "sys") == {}


def test_arrays_are_one_row_each_and_containers_are_not_listed(tmp_path: Path) -> None:
    disks = apply_md(machine(), read_md_arrays(sys_tree(tmp_path)))
    by_name = {d.name: d for d in disks}
    assert "md127" not in by_name and "md125" not in by_name
    assert by_name["md0"].model == "RAID1 (2 members: vda1, vdb1)"
    assert by_name["md0"].raid_metadata == "1.2"
    assert by_name["md126"].model == "RAID1 Intel RST (IMSM) (2 members: nvme0n1, nvme1n1)"
    assert by_name["md126"].raid_metadata == "imsm"
    assert by_name["md126"].raid_container == "md127"
    assert by_name["md124"].model == "RAID0 DDF (2 members: sdc, sdd)"
    assert by_name["vda"].partitions[0].member_of == "md0"
    assert by_name["vda"].member_of == ""
    # a volume, not its container, is what a member belongs to
    assert by_name["nvme0n1"].member_of == "md126"
    assert by_name["sdc"].member_of == "md124"
    assert by_name["sde"].member_of == ""


def test_titles() -> None:
    assert md_title(MdArray("md0", "raid10", "1.2", members=("a", "b", "c", "d"))) == \
        "RAID10 (4 members: a, b, c, d)"
    assert md_title(MdArray("md9", "", "", members=("sdb1",))) == \
        "RAID (inactive, 1 member: sdb1)"
    assert md_title(MdArray("md1", "linear", "1.2", members=("x",))) == "linear (1 member: x)"


def test_members_are_refused_naming_the_array(tmp_path: Path) -> None:
    inv = assess(Inventory(disks=apply_md(machine(), read_md_arrays(sys_tree(tmp_path)))))
    by_name = {d.name: d for d in inv.disks}
    assert [d.name for d in inv.eligible_disks()] == ["sde"]
    assert by_name["vda"].ineligible_reasons == [
        "/dev/vda1 is a RAID member of md0: restoring onto it would destroy the array"]
    reasons = by_name["nvme0n1"].ineligible_reasons
    assert reasons == ["/dev/nvme0n1 is a RAID member of md126: restoring onto it would "
                       "destroy the array"], reasons  # the container is not repeated
    assert any("software RAID volume" in r for r in by_name["md0"].ineligible_reasons)


def test_members_of_arrays_not_assembled_are_refused_too() -> None:
    """No md driver, or arrays left stopped: only the superblock says what the disk is."""
    inv = assess(Inventory(disks=apply_md(machine(assembled=False), {})))
    by_name = {d.name: d for d in inv.disks}
    (reason,) = by_name["vdb"].ineligible_reasons
    assert reason == (
        "/dev/vdb1 is a RAID member (Linux md) of the array 'host:0' UUID 0fbc, not "
        "assembled now: restoring onto it destroys that array. If the array is no longer "
        "needed, erase the member's RAID signature first: mdadm --zero-superblock /dev/vdb1")
    nvme = by_name["nvme0n1"].ineligible_reasons
    assert nvme[0].startswith("/dev/nvme0n1 is a RAID member (Intel RST (IMSM)) of an "
                              "array that is not assembled now"), nvme
    assert "RAID member (DDF)" in by_name["sdd"].ineligible_reasons[0]
    assert by_name["sde"].eligible


def test_rescue_devices_text(tmp_path: Path) -> None:
    inv = assess(Inventory(disks=apply_md(machine(), read_md_arrays(sys_tree(tmp_path)))))
    text = "\n".join(format_inventory(inv))
    assert "/dev/md0  RAID1 (2 members: vda1, vdb1)  20.0 GiB" in text, text
    assert "md array raid1, metadata 1.2, members: vda1, vdb1" in text
    assert "md array raid1, metadata imsm in container md127, members: nvme0n1, nvme1n1" \
        in text
    assert "linux_raid_member" in text and "(member of md0)" in text
    assert "(whole disk) isw_raid_member" in text and "md127" not in text.split(
        "/dev/md126")[0].split("/dev/nvme0n1")[0]
    stopped_inv = assess(Inventory(disks=apply_md(machine(assembled=False), {})))
    stopped = "\n".join(format_inventory(stopped_inv))
    assert "(RAID member: Linux md, not assembled)" in stopped


def test_whole_disk_luks_and_lvm_are_named() -> None:
    inv = assess(Inventory(disks=[disk("vdc", fstype="crypto_LUKS"),
                                  disk("vdd", fstype="LVM2_member")]))
    text = "\n".join(format_inventory(inv, lambda node: "volume group vgtest: data"))
    assert "(whole disk) crypto_LUKS" in text and "(encrypted: LUKS)" in text
    assert "(LVM volume group vgtest: data)" in text


def test_image_search_skips_member_partitions(tmp_path: Path) -> None:
    inv = Inventory(disks=apply_md(machine(), read_md_arrays(sys_tree(tmp_path))))
    sources = {s.device: s for s in _sources(inv)}
    # the IMSM member shows the volume's NTFS partition: searched on md126p1 only
    assert sources["/dev/nvme0n1p1"].member_of == "md126"
    assert sources["/dev/md126p1"].member_of == ""
    assert sources["/dev/md0"].member_of == ""


def entry(*fstypes: str, eligible: bool = True, member_of: str = "") -> DiskEntry:
    """The wizard's entry for a disk whose partitions have these blkid TYPEs."""
    from rescue.wizard.backend import _disk_entry

    disk = Disk(name="vdc", path="/dev/vdc", dev="252:32", kind="disk", size=GiB,
                eligible=eligible, ineligible_reasons=[] if eligible else ["it is busy"],
                partitions=[Partition(name=f"vdc{i}", path=f"/dev/vdc{i}", dev=f"252:{32 + i}",
                                      number=i, start=i * MiB, size=64 * MiB, fstype=t,
                                      member_of=member_of)
                            for i, t in enumerate(fstypes, 1)])
    return _disk_entry(disk)


def test_wizard_rows_name_encryption_lvm_and_raid() -> None:
    assert entry("crypto_LUKS", "BitLocker", "crypto_LUKS").notes == \
        (("encrypted", "LUKS"), ("encrypted", "BitLocker"))
    assert reason_text(entry("crypto_LUKS", "BitLocker")) == \
        "Available (encrypted: LUKS; encrypted: BitLocker)"
    assert reason_text(entry("LVM2_member")) == "Available (LVM physical volume)"
    assert reason_text(entry("linux_raid_member")) == "Available (RAID member)"
    assert reason_text(entry("isw_raid_member", member_of="md126")) == \
        "Available (RAID member)"
    assert reason_text(entry("ext4")) == "Available"
    assert reason_text(entry("ext4", eligible=False)) == "Protected: it is busy"


def test_device_mapper_volumes_say_what_they_are() -> None:
    from rescue.devices.inventory import dm_title

    assert dm_title("vgtest-data", "LVM-abcdef", {"DM_VG_NAME": "vgtest",
                                                 "DM_LV_NAME": "data"}) == \
        "LVM logical volume vgtest/data"
    assert dm_title("vgtest-data", "LVM-abcdef", {}) == "LVM logical volume vgtest-data"
    assert dm_title("cr_home", "CRYPT-LUKS2-0123-cr_home", {}) == \
        "unlocked LUKS volume cr_home"
    assert dm_title("bl", "CRYPT-BITLK-0123-bl", {}) == "unlocked BitLocker volume bl"
    assert dm_title("mpatha", "mpath-3600", {}) == "device-mapper volume mpatha"


def test_one_note_worded_for_the_cli_and_the_wizard() -> None:
    """rescue.devices.notes decides what a device holds; ``rescue devices`` and the
    wizard's rows and target list say the same thing (the wizard translated)."""
    from rescue.commands.devices import _note
    from rescue.devices.notes import ENCRYPTED, LVM, MEMBER, RAID, StorageNote, storage_note
    from rescue.wizard.backend import _disk_entry

    assert storage_note("/dev/a", "ext4") is None
    assert storage_note("/dev/a", "linux_raid_member", "md126") == StorageNote(MEMBER, "md126")
    assert storage_note("/dev/a", "isw_raid_member") == StorageNote(RAID, "Intel RST (IMSM)")
    assert storage_note("/dev/a", "BitLocker") == StorageNote(ENCRYPTED, "BitLocker")
    asked: list[str] = []
    assert storage_note("/dev/a", "LVM2_member", describe_pv=lambda n: asked.append(n) or
                        "volume group vg0: root") == StorageNote(LVM, "volume group vg0: root")
    assert asked == ["/dev/a"]
    assert storage_note("/dev/b", "xfs", describe_pv=lambda n: asked.append(n) or "x") is None
    assert asked == ["/dev/a"], "only a physical volume is read"
    assert _note("/dev/a", "crypto_LUKS", "", None) == " (encrypted: LUKS)"
    assert _note("/dev/a", "linux_raid_member", "", None) == \
        " (RAID member: Linux md, not assembled)"
    assert _note("/dev/a", "LVM2_member", "", None) == " (LVM physical volume)"

    disk = Disk(name="vdc", path="/dev/vdc", dev="252:32", kind="disk", size=GiB,
                partitions=[Partition(name="vdc1", path="/dev/vdc1", dev="252:33", number=1,
                                      start=MiB, size=64 * MiB, fstype="crypto_LUKS"),
                            Partition(name="vdc2", path="/dev/vdc2", dev="252:34", number=2,
                                      start=65 * MiB, size=64 * MiB, fstype="LVM2_member"),
                            Partition(name="vdc3", path="/dev/vdc3", dev="252:35", number=3,
                                      start=129 * MiB, size=64 * MiB, fstype="crypto_LUKS")])
    entry_ = _disk_entry(disk, lambda node: "volume group vg0: root")
    assert entry_.partitions[0] == "vdc1 crypto_LUKS 64.0 MiB (encrypted: LUKS)"
    assert entry_.partitions[1].endswith("(LVM volume group vg0: root)")
    assert entry_.notes == (("encrypted", "LUKS"), ("lvm", "volume group vg0: root"))
    assert reason_text(entry_) == "Available (encrypted: LUKS; LVM volume group vg0: root)"


def test_target_notes_are_worded_in_the_language_shown_now() -> None:
    """The notes are kept as data and worded when drawn: after F2 (another language) the
    cached disk list says them in the new language, not half in the old one."""
    from rescue import i18n

    disk = entry("crypto_LUKS")
    try:
        i18n.set_language("de")
        german = reason_text(disk)
    finally:
        i18n.set_language("en")
    assert german == "Verfügbar (verschlüsselt: LUKS)"
    assert reason_text(disk) == "Available (encrypted: LUKS)"
