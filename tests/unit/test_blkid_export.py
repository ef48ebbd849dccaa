"""blkid's export format escapes values for a shell; a label with a space or a quote is
recorded as the filesystem holds it (real blkid on a real ext4 image file)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from rescue.devices.blockdev import blkid_probe, parse_blkid_export
from rescue.runner import CommandRunner


def test_escapes_are_undone() -> None:
    text = 'LABEL=System\\ Reserved\nUUID=1234\nPARTLABEL=a\\"b\\$c\\\\d\nnoise\n'
    assert parse_blkid_export(text) == {
        "LABEL": "System Reserved", "UUID": "1234", "PARTLABEL": 'a"b$c\\d'}


def test_a_real_label_with_space_and_quote(tmp_path: Path) -> None:
    img = tmp_path / "fs.img"
    with open(img, "wb") as f:
        f.truncate(8 * 1024 * 1024)
    label = 'My "data" $1'
    subprocess.run(["mkfs.ext4", "-q", "-L", label, str(img)], check=True)
    assert blkid_probe(str(img), CommandRunner())["LABEL"] == label
