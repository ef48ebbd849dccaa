"""Growing a filesystem to fill its (grown) partition, per filesystem type."""

from __future__ import annotations

import tempfile
from collections.abc import Callable

from rescue.fs import ext
from rescue.fs.lvm import LVM_PV, grow_pv
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
