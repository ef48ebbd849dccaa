"""Growing a filesystem to fill its (grown) partition, per filesystem type."""

from __future__ import annotations

import tempfile
from collections.abc import Callable

from rescue.fs import ext
from rescue.i18n import _
from rescue.runner import CommandRunner


def _mounted(fstype: str, node: str, runner: CommandRunner,
             action: Callable[[str], list[str]]) -> None:
    with tempfile.TemporaryDirectory(prefix="rescue-grow-") as mnt:
        runner.run(["mount", "-t", fstype, node, mnt], what=_("Mounting {node} to grow it").format(
            node=node))
        try:
            runner.run(action(mnt), what=_("Growing the {fstype} filesystem on {node}").format(
                fstype=fstype, node=node))
        finally:
            runner.run(["umount", mnt], check=False)


LVM_PV = "LVM2_member"  # blkid's TYPE for an LVM physical volume
# LVM on the rescue system: the restored PV only (--devices: the source disk, still
# attached when a disk is cloned, holds a PV with the same UUID), no udev to wait for,
# nothing activated (pvresize only rewrites the PV's metadata; no device-mapper needed),
# and no copy of the restored VG's metadata left in the rescue system's /etc/lvm.
_LVM_CONFIG = ("global { activation = 0 } "
               "activation { udev_sync = 0 udev_rules = 0 monitoring = 0 } "
               "devices { obtain_device_list_from_udev = 0 hints = \"none\" } "
               "backup { backup = 0 archive = 0 }")


def grow_pv(node: str, runner: CommandRunner) -> None:
    """Let the LVM physical volume on *node* take its whole (grown) partition; the new
    extents are free in its volume group (the logical volumes are left as they are)."""
    runner.run(["lvm", "pvresize", "--devices", node, "--config", _LVM_CONFIG, node],
               what=_("Growing the LVM physical volume on {node}").format(node=node))


def grow(fstype: str, node: str, runner: CommandRunner) -> None:
    if fstype in ext.EXT_TYPES:
        ext.grow(node, runner)
    elif fstype == "xfs":
        _mounted("xfs", node, runner, lambda mnt: ["xfs_growfs", mnt])
    elif fstype == "btrfs":
        _mounted("btrfs", node, runner, lambda mnt: ["btrfs", "filesystem", "resize", "max", mnt])
    elif fstype == "ntfs":
        runner.run(["ntfsresize", "--force", "--no-progress-bar", node], input="y\n",
                   what=_("Growing the {fstype} filesystem on {node}").format(
                       fstype="NTFS", node=node))
    elif fstype == LVM_PV:
        grow_pv(node, runner)
    else:
        raise ValueError(f"cannot grow {fstype}")


GROWABLE = ext.EXT_TYPES | {"xfs", "btrfs", "ntfs", LVM_PV}
