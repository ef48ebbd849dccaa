"""What rescue knows about each filesystem type, in one record per blkid TYPE (the model is
curtin's ``block/mkfs.py`` tables). Adding a filesystem type starts here; the modules that
act on a type ask this registry, and hold no table of their own.

Copying, growing and the boot fix-ups:

============  ================  ===========  ======  ===========  ========  ================
TYPE          used blocks       whole/made   grow    Linux root   start at  outside the map
============  ================  ===========  ======  ===========  ========  ================
ext2/3/4      dumpe2fs          -            ext     holds        -         -
vfat (fat,    the FAT           -            -       -            0x1C      -
msdos)
xfs           partclone.xfs     -            xfs     holds        -         AG headers
btrfs         btrfs-progs       -            btrfs   holds        -         sb mirrors
ntfs          partclone.ntfs    -            ntfs    -            0x1C      backup boot sect.
exfat         partclone.exfat   -            -       -            0x40      boot regions
f2fs          partclone.f2fs    -            -       -            -         -
hfsplus       partclone.hfsp    -            -       -            -         alternate header
iso9660, udf  -                 whole        -       -            -         -
swap          -                 recreated    -       -            -         -
LVM2_member   -                 whole        lvm_pv  in an LV     -         -
============  ================  ===========  ======  ===========  ========  ================

Mounting and checking (every mount private; the check changes nothing):

============  ==============================  =============  =========================
TYPE          read-only, no log replay        read-write     check (node appended)
============  ==============================  =============  =========================
ext2          ro                              noatime        e2fsck -fn
ext3, ext4    ro,noload                       noatime        e2fsck -fn
vfat          ro                              noatime        fsck.fat -n
xfs           ro,norecovery (+nouuid)         noatime        xfs_repair -n
btrfs         ro,rescue=nologreplay           noatime        btrfs check --readonly
ntfs          ntfs-3g -o ro (fuseblk)         ntfs-3g -o rw  ntfsfix -n
exfat         ro                              noatime        fsck.exfat -n
f2fs          (not mounted)                   -              fsck.f2fs --dry-run
hfsplus       (not mounted)                   -              fsck.hfsplus -n
iso9660, udf  ro                              -              -
============  ==============================  =============  =========================

The columns, as fields of :class:`FsTraits`:

* ``used_blocks`` where a backup learns the used blocks: ``dumpe2fs`` (rescue.fs.ext),
  ``fat`` (rescue.fs.fat reads the FAT itself), ``btrfs-progs`` (rescue.fs.btrfs: the
  extent and chunk trees; partclone.btrfs misses blocks snapshots share),
  ``partclone`` (``partclone`` names the
  program, rescue.fs.partclone; used when the program is installed), or ``None``: the
  whole partition is copied. ``recreate``: not copied at all, made anew (swap).
* ``ro_options`` the options of a private read-only mount that never replays a journal
  or log (a plain ``-o ro`` of an xfs writes its superblock); ``None``: rescue does not
  mount it to look inside. ``twin_options`` are added where a twin with the same UUID
  may be mounted (the source of a clone: xfs refuses a second mount without ``nouuid``).
  ``helper``: a FUSE program used instead of ``mount -t TYPE`` (ntfs-3g), and
  ``kernel_fs``: the name /proc/filesystems lists when the mount works (``fuseblk``);
  ``module``: what ``modprobe`` loads to make it work, when not the ``fs-<kernel_fs>``
  alias every filesystem module carries (``fuse`` for a FUSE helper).
* ``rw_options`` the options of a read-write mount (saving the logs on a stick);
  ``None``: logs are not written there.
* ``check`` a read-only check command, the device node appended; changes nothing.
* ``grow`` the name of the function in rescue.engine.grow that grows it to fill its
  partition (``None``: not grown); ``shrink`` likewise (none today).
* ``rebuild`` the name of the function in rescue.engine.rebuild that makes it anew with
  the source's identity (UUID, label, features) on a smaller partition, before its files
  are copied one by one from the image (a restore onto a smaller disk); ``None``: it is
  not shrunk that way. ``min_bytes``: the smallest filesystem its mkfs makes.
* ``linux_root`` it can hold a Linux root (the fix-ups and the identity reader look
  there); ``root_container`` a Linux root may be in it (those, and an LVM PV).
* ``start_field`` its boot sector records the partition's start (rescue.fs.bootsector).
* ``outside_map`` the name of the function in rescue.fs.regions that lists the regions
  it keeps outside its allocation map.
* ``encrypted`` an encrypted volume (LUKS, BitLocker): copied whole (its used blocks
  cannot be read without the key); the summaries say so, and a BitLocker restore warns
  that Windows may ask for the recovery key on other hardware.

Pure and cheap: no imports beyond the standard library, nothing run at import time (the
planner imports it)."""

from __future__ import annotations

from dataclasses import dataclass

DUMPE2FS = "dumpe2fs"
FAT = "fat"
PARTCLONE = "partclone"
BTRFS_PROGS = "btrfs-progs"  # rescue.fs.btrfs, from btrfs inspect-internal dump-tree

NO_LOG_REPLAY = ("noload", "norecovery", "rescue=nologreplay")  # options that skip a replay


@dataclass(frozen=True)
class FsTraits:
    type: str  # blkid's TYPE
    aliases: tuple[str, ...] = ()
    used_blocks: str | None = None  # DUMPE2FS, FAT, PARTCLONE or None (the whole partition)
    partclone: str | None = None  # partclone.<x>, with used_blocks == PARTCLONE
    recreate: bool = False  # made anew on restore instead of copied (swap)
    ro_options: tuple[str, ...] | None = None  # read-only, no log replay; None: not mounted
    twin_options: tuple[str, ...] = ()  # besides, where a same-UUID twin may be mounted
    helper: str | None = None  # a mount program instead of mount -t TYPE (FUSE)
    kernel_fs: str | None = None  # /proc/filesystems name, when it is not TYPE
    module: str | None = None  # the module modprobe loads, when it is not fs-<kernel_fs>
    rw_options: tuple[str, ...] | None = None  # read-write mount; None: not written to
    check: tuple[str, ...] | None = None  # read-only check argv, the node appended
    grow: str | None = None  # function name in rescue.engine.grow
    shrink: str | None = None  # function name (none can shrink today)
    rebuild: str | None = None  # function name in rescue.engine.rebuild
    min_bytes: int = 0  # the smallest filesystem of this type mkfs makes
    encrypted: str | None = None  # an encrypted volume: its kind, as a technician names it
    linux_root: bool = False
    root_container: bool = False
    start_field: bool = False  # boot sector records the partition start
    outside_map: str | None = None  # function name in rescue.fs.regions

    @property
    def names(self) -> tuple[str, ...]:
        return (self.type, *self.aliases)


MIB = 1 << 20


def _ext(name: str, ro: tuple[str, ...]) -> FsTraits:
    return FsTraits(name, used_blocks=DUMPE2FS, ro_options=ro, rw_options=("noatime",),
                    check=("e2fsck", "-fn"), grow="grow_ext", linux_root=True,
                    root_container=True, rebuild="rebuild_ext", min_bytes=16 * MIB)


LVM_PV = "LVM2_member"  # blkid's TYPE of an LVM physical volume

RECORDS: tuple[FsTraits, ...] = (
    _ext("ext4", ("ro", "noload")),
    _ext("ext3", ("ro", "noload")),
    _ext("ext2", ("ro",)),
    FsTraits("xfs", used_blocks=PARTCLONE, partclone="partclone.xfs",
             ro_options=("ro", "norecovery"), twin_options=("nouuid",),
             rw_options=("noatime",), check=("xfs_repair", "-n"), grow="grow_xfs",
             linux_root=True, root_container=True, outside_map="outside_xfs",
             rebuild="rebuild_xfs", min_bytes=300 * MIB),
    FsTraits("btrfs", used_blocks=BTRFS_PROGS,
             ro_options=("ro", "rescue=nologreplay"), rw_options=("noatime",),
             check=("btrfs", "check", "--readonly"), grow="grow_btrfs", linux_root=True,
             root_container=True, outside_map="outside_btrfs", rebuild="rebuild_btrfs",
             min_bytes=256 * MIB),
    FsTraits("vfat", aliases=("fat", "msdos"), used_blocks=FAT, ro_options=("ro",),
             rw_options=("noatime",), check=("fsck.fat", "-n"), start_field=True,
             rebuild="rebuild_vfat", min_bytes=64 * MIB),
    FsTraits("ntfs", used_blocks=PARTCLONE, partclone="partclone.ntfs", ro_options=("ro",),
             helper="ntfs-3g", kernel_fs="fuseblk", module="fuse", rw_options=("rw",),
             check=("ntfsfix", "-n"), grow="grow_ntfs", start_field=True,
             outside_map="outside_ntfs"),
    FsTraits("exfat", used_blocks=PARTCLONE, partclone="partclone.exfat", ro_options=("ro",),
             rw_options=("noatime",), check=("fsck.exfat", "-n"), start_field=True,
             outside_map="outside_exfat"),
    FsTraits("f2fs", used_blocks=PARTCLONE, partclone="partclone.f2fs",
             check=("fsck.f2fs", "--dry-run")),
    FsTraits("hfsplus", used_blocks=PARTCLONE, partclone="partclone.hfsp",
             check=("fsck.hfsplus", "-n"), outside_map="outside_hfsplus"),
    FsTraits("iso9660", ro_options=("ro",)),
    FsTraits("udf", ro_options=("ro",)),
    FsTraits("swap", recreate=True),
    # encrypted volumes: their used blocks cannot be read without the key, so they are
    # copied whole, every byte, and restored as they were (the key unchanged)
    FsTraits("crypto_LUKS", encrypted="LUKS"),
    FsTraits("BitLocker", encrypted="BitLocker"),
    # not a filesystem: an LVM physical volume, whose linear LVs may hold the root
    FsTraits(LVM_PV, grow="grow_lvm_pv", root_container=True),
)

_BY_NAME: dict[str, FsTraits] = {name: t for t in RECORDS for name in t.names}


def traits(fstype: str | None) -> FsTraits | None:
    """The record of *fstype* (a blkid TYPE or an alias), None for a type rescue has no
    facts about."""
    return _BY_NAME.get(fstype or "")


def names_where(**wanted: object) -> frozenset[str]:
    """Every TYPE and alias whose record has the given field values, e.g.
    ``names_where(used_blocks=DUMPE2FS)``."""
    return frozenset(name for t in RECORDS
                     if all(getattr(t, k) == v for k, v in wanted.items())
                     for name in t.names)


EXT_TYPES = names_where(used_blocks=DUMPE2FS)
FAT_TYPES = names_where(used_blocks=FAT)


def growable() -> frozenset[str]:
    return frozenset(name for t in RECORDS if t.grow for name in t.names)


def encryption(fstype: str | None) -> str | None:
    """"LUKS", "BitLocker" for an encrypted volume's blkid TYPE; None otherwise."""
    t = traits(fstype)
    return t.encrypted if t is not None else None


def rebuildable() -> frozenset[str]:
    """The types a restore onto a smaller disk can make anew and fill file by file."""
    return frozenset(name for t in RECORDS if t.rebuild for name in t.names)


def start_field_types() -> frozenset[str]:
    return names_where(start_field=True)


def linux_root_types() -> tuple[str, ...]:
    return tuple(name for t in RECORDS if t.linux_root for name in t.names)


def root_container_types() -> tuple[str, ...]:
    return tuple(name for t in RECORDS if t.root_container for name in t.names)


def partclone_programs() -> dict[str, str]:
    """blkid TYPE -> the partclone program that lists its used blocks."""
    return {name: t.partclone for t in RECORDS if t.partclone for name in t.names}


def mountable() -> frozenset[str]:
    """The types rescue mounts read-only to look inside."""
    return frozenset(name for t in RECORDS if t.ro_options is not None for name in t.names)


def writable() -> frozenset[str]:
    """The types rescue mounts read-write (to save the logs)."""
    return frozenset(name for t in RECORDS if t.rw_options is not None for name in t.names)


def ro_mount_options(fstype: str | None, twin: bool = False) -> str:
    """``-o`` of a read-only mount of *fstype* that replays no journal or log; *twin*:
    also the options a mount next to a same-UUID twin needs. Plain ``ro`` for a type
    without a record."""
    t = traits(fstype)
    if t is None or t.ro_options is None:
        return "ro"
    return ",".join((*t.ro_options, *(t.twin_options if twin else ())))


def twin_options(fstype: str | None) -> tuple[str, ...]:
    t = traits(fstype)
    return t.twin_options if t is not None else ()


def _mount_argv(t: FsTraits, options: tuple[str, ...], *lead: str) -> list[str]:
    if t.helper:
        return [t.helper, "-o", ",".join(options)]
    return ["mount", *lead, "-t", t.type, "-o", ",".join(options)]


def ro_mount_argv(fstype: str | None) -> list[str] | None:
    """The read-only mount command before device and mount point (``mount -t TYPE -o
    ro,...`` or the type's FUSE helper); None when rescue does not mount *fstype*."""
    t = traits(fstype)
    if t is None or t.ro_options is None:
        return None
    return _mount_argv(t, t.ro_options)


def rw_mount_argv(fstype: str | None) -> list[str] | None:
    """The read-write mount command before device and mount point; ``mount -w`` never
    falls back to read-only on a write-protected stick. None: not written to."""
    t = traits(fstype)
    if t is None or t.rw_options is None:
        return None
    return _mount_argv(t, t.rw_options, "-w")


def kernel_filesystem(fstype: str) -> str:
    """The name /proc/filesystems lists once *fstype* can be mounted."""
    t = traits(fstype)
    return (t.kernel_fs or t.type) if t is not None else fstype


def kernel_module(fstype: str) -> str:
    """What ``modprobe`` loads for *fstype*: the ``fs-<name>`` alias of its kernel
    filesystem (a module's MODULE_ALIAS_FS), or the record's own (``fuse``)."""
    t = traits(fstype)
    if t is not None and t.module:
        return t.module
    return f"fs-{kernel_filesystem(fstype)}"


def check_command(fstype: str | None) -> list[str] | None:
    """A read-only check of *fstype* (the device node to be appended); None: none known."""
    t = traits(fstype)
    return list(t.check) if t is not None and t.check else None
