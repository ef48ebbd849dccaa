"""LVM physical volumes with linear logical volumes for the real-disk tests, made without
device-mapper (the test machines have none).

What works here (lvm2 2.03.16, Debian 12, no ``/dev/mapper/control``):

* ``pvcreate``, ``vgcreate``, ``pvs``, ``vgs``, ``lvs`` and ``pvresize`` work; they only
  touch on-disk metadata.
* ``lvcreate -an -Zn`` alone fails ("striped: Required device-mapper target(s) not
  detected"); with ``--config 'global{activation=0}'`` it writes the LV into the metadata
  without trying to activate or zero it.
* An LV can never be activated, so its data is reached through a loop device over the PV:
  ``offset = pe_start + first PE * extent size``, ``sizelimit = LV size`` (only for LVs of a
  single linear segment; that is what ``lvcreate -L`` on an empty PV makes).

Every command runs with ``LVM_SYSTEM_DIR`` set to a private temporary directory whose
lvm.conf turns off the devices file, the hints file, udev and metadata backups/archives, and
with ``--devices NODE`` so only the test's PV is ever scanned. The host's /etc/lvm and
/run/lvm/hints are untouched, and when the context ends the private directory is removed,
so nothing outside the test's disk remembers the VG.

Typical use::

    with lvm_pv(part2, vg="vgubuntu") as pv:
        pv.create_lv("root", 96 * MiB)
        with pv.lv_loop("root") as root:
            sh("mkfs.ext4", "-q", root)
            with mounted(root, tmp / "m") as m: ...
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from loopdev import sh

from rescue.fs.lvm import LVM_CONF as PRODUCT_LVM_CONF

# the product's private LVM configuration (no devices file, hints, udev, activation or
# metadata backups), so the tests make and read LVM the way the product reads it
LVM_CONF = PRODUCT_LVM_CONF


@dataclass(frozen=True)
class LvExtent:
    """Where a linear LV's data lives on its PV, in bytes."""

    name: str
    offset: int  # from the start of the PV's device
    size: int


class LvmPV:
    """One PV on *node* holding one VG; made by :func:`lvm_pv`."""

    def __init__(self, node: str, vg: str, system_dir: str) -> None:
        self.node = node
        self.vg = vg
        self.env = dict(os.environ, LVM_SYSTEM_DIR=system_dir, LVM_SUPPRESS_FD_WARNINGS="1")

    def lvm(self, command: str, *args: str) -> str:
        """Run an lvm command (``pvs``, ``lvcreate``, ``pvresize``...) limited to the PV."""
        return sh("lvm", command, "--devices", self.node, *args, env=self.env)

    def report(self, command: str, *args: str) -> list[dict[str, str]]:
        out = self.lvm(command, "--readonly", "--reportformat", "json", "--units", "b",
                       "--nosuffix", *args)
        report = json.loads(out)["report"][0]
        return list(next(iter(report.values())))

    def create_lv(self, name: str, size: int) -> LvExtent:
        """A linear LV of *size* bytes (rounded up to whole extents by lvm)."""
        self.lvm("lvcreate", "-an", "-Zn", "-y", "-L", f"{size}b", "-n", name, self.vg)
        return self.extent(name)

    def extents(self) -> dict[str, LvExtent]:
        pv = self.report("pvs", "-o", "pv_name,pe_start,vg_extent_size", self.node)[0]
        pe_start, extent_size = int(pv["pe_start"]), int(pv["vg_extent_size"])
        out: dict[str, LvExtent] = {}
        segs = self.report("lvs", "--segments", "-o",
                           "lv_name,lv_size,segtype,seg_pe_ranges", self.vg)
        for seg in segs:
            name = seg["lv_name"]
            if name in out or seg["segtype"] != "linear":
                raise ValueError(f"LV {name} is not a single linear segment")
            first_pe = int(seg["seg_pe_ranges"].rsplit(":", 1)[1].split("-")[0])
            out[name] = LvExtent(name, pe_start + first_pe * extent_size, int(seg["lv_size"]))
        return out

    def extent(self, name: str) -> LvExtent:
        return self.extents()[name]

    @contextlib.contextmanager
    def lv_loop(self, name: str, readonly: bool = False) -> Iterator[str]:
        """A loop device over the LV's data; always detached afterwards."""
        ext = self.extent(name)
        argv = ["losetup", "-f", "--show", "--offset", str(ext.offset),
                "--sizelimit", str(ext.size)]
        if readonly:
            argv.append("-r")
        dev = sh(*argv, self.node).strip()
        try:
            yield dev
        finally:
            subprocess.run(["losetup", "-d", dev], capture_output=True)


@contextlib.contextmanager
def lvm_pv(node: str, vg: str = "vgtest") -> Iterator[LvmPV]:
    """Make *node* (a partition node or a whole loop device) an LVM PV holding VG *vg*."""
    system_dir = tempfile.mkdtemp(prefix="lvm-test-")
    try:
        with open(os.path.join(system_dir, "lvm.conf"), "w") as f:
            f.write(LVM_CONF)
        pv = LvmPV(node, vg, system_dir)
        pv.lvm("pvcreate", "-y", "-ff", node)
        pv.lvm("vgcreate", "-y", vg, node)
        yield pv
    finally:
        shutil.rmtree(system_dir, ignore_errors=True)
