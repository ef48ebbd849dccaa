"""LVM on the rescue system, one home: blkid's name for a physical volume, the private
configuration every lvm command runs under, where linear logical volumes lie on their PV,
and growing a PV.

Every command runs with ``LVM_SYSTEM_DIR`` pointing at a private, temporary lvm.conf and
with ``--devices NODE``: no devices file, no hints, no udev, nothing activated (no
device-mapper is needed to read metadata or to ``pvresize``), no metadata backups or
archives left in the rescue system's /etc/lvm, and only the named PV is looked at (a
cloned disk's source, still attached, holds a PV with the same UUID)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from rescue.fs import registry
from rescue.i18n import _
from rescue.runner import CommandRunner

LVM_PV = registry.LVM_PV  # blkid's TYPE of an LVM physical volume

LVM_CONF = """\
devices {
    use_devicesfile = 0
    obtain_device_list_from_udev = 0
    hints = "none"
    scan_lvs = 0
    filter = [ "a|.*|" ]
    global_filter = [ "a|.*|" ]
}
global {
    activation = 0
    event_activation = 0
}
activation {
    udev_sync = 0
    udev_rules = 0
    monitoring = 0
}
backup {
    backup = 0
    archive = 0
}
"""


@contextlib.contextmanager
def private_config() -> Iterator[dict[str, str]]:
    """The environment for an lvm command under the private configuration above."""
    conf_dir = tempfile.mkdtemp(prefix="rescue-lvm-")
    try:
        with open(os.path.join(conf_dir, "lvm.conf"), "w") as f:
            f.write(LVM_CONF)
        yield dict(os.environ, LVM_SYSTEM_DIR=conf_dir, LVM_SUPPRESS_FD_WARNINGS="1")
    finally:
        shutil.rmtree(conf_dir, ignore_errors=True)


@dataclass(frozen=True)
class LinearLV:
    """Where a logical volume's data lies on its PV, in bytes from the PV's start."""

    vg: str
    name: str
    offset: int
    size: int


def _lvm_report(text: str) -> list[dict[str, str]]:
    try:
        reports = json.loads(text)["report"]
    except (ValueError, KeyError, TypeError):
        return []
    rows: list[dict[str, str]] = []
    for report in reports:
        for value in report.values():
            rows += value
    return rows


def linear_lvs(node: str, pvs_json: str, segs_json: str) -> list[LinearLV]:
    """The LVs whose extents all lie, contiguous and linear, on the PV *node*, from
    ``pvs -o pv_name,pe_start,vg_extent_size`` and ``lvs --segments -o
    vg_name,lv_name,lv_size,segtype,seg_start_pe,seg_pe_ranges`` (json, units b, no
    suffix). Biggest first."""
    pvs = _lvm_report(pvs_json)
    if not pvs:
        return []
    try:
        pe_start, extent = int(pvs[0]["pe_start"]), int(pvs[0]["vg_extent_size"])
    except (KeyError, ValueError):
        return []
    if extent <= 0:
        return []
    segments: dict[tuple[str, str], list[dict[str, str]]] = {}
    for seg in _lvm_report(segs_json):
        segments.setdefault((seg.get("vg_name", ""), seg.get("lv_name", "")), []).append(seg)
    here = os.path.realpath(node)
    out = []
    for (vg, name), segs in segments.items():
        first: int | None = None
        nxt: int | None = None
        ok = True
        for seg in sorted(segs, key=lambda s: int(s.get("seg_start_pe") or 0)):
            ranges = seg.get("seg_pe_ranges", "").split()
            if seg.get("segtype") != "linear" or len(ranges) != 1:
                ok = False
                break
            dev, _colon, span = ranges[0].rpartition(":")
            lo, _dash, hi = span.partition("-")
            if os.path.realpath(dev) != here or not lo.isdigit() or not hi.isdigit():
                ok = False
                break
            if nxt is not None and int(lo) != nxt:
                ok = False
                break
            first = int(lo) if first is None else first
            nxt = int(hi) + 1
        if not ok or first is None or nxt is None:
            continue
        size = int(segs[0].get("lv_size") or 0)
        if size <= 0 or size != (nxt - first) * extent:
            continue
        out.append(LinearLV(vg, name, pe_start + first * extent, size))
    return sorted(out, key=lambda lv: (-lv.size, lv.vg, lv.name))


def describe_pv(node: str, runner: CommandRunner) -> str:
    """What the PV *node* belongs to, for a listing: "volume group vg0: root, swap"; ""
    when lvm2 is not installed or the metadata cannot be read. Reads only."""
    if shutil.which("lvm") is None:
        return ""
    with private_config() as env:
        common = ["--devices", node, "--readonly", "--reportformat", "json"]
        pvs = _lvm_report(runner.run(["lvm", "pvs", *common, "-o", "vg_name", node],
                                     check=False, env=env).stdout)
        vg = pvs[0].get("vg_name", "") if pvs else ""
        if not vg:
            return ""
        lvs = _lvm_report(runner.run(["lvm", "lvs", *common, "-o", "lv_name", vg],
                                     check=False, env=env).stdout)
    names = ", ".join(sorted(r.get("lv_name", "") for r in lvs if r.get("lv_name")))
    return _("volume group {vg}: {lvs}").format(vg=vg, lvs=names or "-")


def read_linear_lvs(node: str, runner: CommandRunner) -> list[LinearLV]:
    """Read the LVM metadata on the PV *node* without writing anything anywhere (nothing
    when lvm2 is not installed)."""
    if shutil.which("lvm") is None:
        return []
    with private_config() as env:
        common = ["--devices", node, "--readonly", "--reportformat", "json",
                  "--units", "b", "--nosuffix"]
        pvs = runner.run(["lvm", "pvs", *common, "-o", "pv_name,vg_name,pe_start,"
                          "vg_extent_size", node], check=False, env=env)
        rows = _lvm_report(pvs.stdout)
        vg = rows[0].get("vg_name", "") if rows else ""
        if not vg:
            return []
        segs = runner.run(["lvm", "lvs", *common, "--segments", "-o", "vg_name,lv_name,"
                           "lv_size,segtype,seg_start_pe,seg_pe_ranges", vg],
                          check=False, env=env)
        return linear_lvs(node, pvs.stdout, segs.stdout)


@contextlib.contextmanager
def lv_loop(node: str, lv: LinearLV, runner: CommandRunner,
            read_only: bool = True) -> Iterator[str | None]:
    """A loop device over the data of *lv* on the PV *node* (read-only unless asked):
    how an LV is reached without device-mapper. None when losetup fails; always
    detached afterwards."""
    result = runner.run(["losetup", "-f", "--show", *(["-r"] if read_only else []),
                         "--offset", str(lv.offset), "--sizelimit", str(lv.size), node],
                        check=False)
    dev = result.stdout.strip() if result.returncode == 0 else ""
    if not dev:
        yield None
        return
    try:
        yield dev
    finally:
        runner.run(["losetup", "-d", dev], check=False)


def grow_pv(node: str, runner: CommandRunner) -> None:
    """Let the LVM physical volume on *node* take its whole (grown) partition; the new
    extents are free in its volume group (the logical volumes are left as they are)."""
    with private_config() as env:
        runner.run(["lvm", "pvresize", "--devices", node, node], env=env,
                   what=_("Growing the LVM physical volume on {node}").format(node=node))
