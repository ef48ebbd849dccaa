"""Growing a filesystem to fill its (grown) partition, per filesystem type: one function
per method, named by the type's record in rescue.fs.registry (``grow``)."""

from __future__ import annotations

from collections.abc import Callable

from rescue import sysmount
from rescue.fs import ext, registry
from rescue.fs.lvm import grow_pv
from rescue.i18n import _
from rescue.runner import CommandRunner


def _mounted(fstype: str, node: str, runner: CommandRunner,
             action: Callable[[str], list[str]]) -> None:
    # read-write; twin: the source (same UUID) may be mounted on this machine (xfs nouuid)
    with sysmount.mounted(node, fstype, mode=sysmount.RW, twin=True, runner=runner,
                          purpose="grow") as mnt:
        runner.run(action(str(mnt)), what=_("Growing the {fstype} filesystem on {node}").format(
            fstype=fstype, node=node))


def grow_ext(fstype: str, node: str, runner: CommandRunner) -> None:
    ext.grow(node, runner)


def grow_xfs(fstype: str, node: str, runner: CommandRunner) -> None:
    _mounted("xfs", node, runner, lambda mnt: ["xfs_growfs", mnt])


def grow_btrfs(fstype: str, node: str, runner: CommandRunner) -> None:
    _mounted("btrfs", node, runner, lambda mnt: ["btrfs", "filesystem", "resize", "max", mnt])


def grow_ntfs(fstype: str, node: str, runner: CommandRunner) -> None:
    runner.run(["ntfsresize", "--force", "--no-progress-bar", node], input="y\n",
               what=_("Growing the {fstype} filesystem on {node}").format(
                   fstype="NTFS", node=node))


def grow_lvm_pv(fstype: str, node: str, runner: CommandRunner) -> None:
    grow_pv(node, runner)


Grower = Callable[[str, str, CommandRunner], None]
METHODS: dict[str, Grower] = {f.__name__: f for f in (
    grow_ext, grow_xfs, grow_btrfs, grow_ntfs, grow_lvm_pv)}


def grow(fstype: str, node: str, runner: CommandRunner) -> None:
    t = registry.traits(fstype)
    if t is None or t.grow is None:
        raise ValueError(f"cannot grow {fstype}")
    METHODS[t.grow](fstype, node, runner)


GROWABLE = registry.growable()  # kept for callers; the registry is the source
