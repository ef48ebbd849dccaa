"""The catalog's table for people (pure)."""

from __future__ import annotations

from rescue.devices.catalog import FoundImage, format_images


def test_format_marks_the_recommended_image_and_shows_local_time() -> None:
    images = [
        FoundImage(id="20260305T173000Z-abcdef", created_utc="2026-03-05T17:30:00Z",
                   created_local="2026-03-05T18:30:00+01:00", computer="laptop",
                   os_name="Debian GNU/Linux 12 (bookworm)", data_bytes=3 << 30,
                   location="sdb1 'BACKUPS' (ext4, usb): /rescue", recommended=True),
        FoundImage(id="20260110T080000Z-123456", created_utc="2026-01-10T08:00:00Z",
                   computer="", location="/srv/repo"),
    ]
    lines = format_images(images)
    assert lines[0].startswith("* 20260305T173000Z-abcdef  2026-03-05 18:30  laptop  Debian")
    assert lines[0].endswith("3.0 GiB")
    assert lines[1].strip() == "sdb1 'BACKUPS' (ext4, usb): /rescue"
    assert lines[2].startswith("  20260110T080000Z-123456  2026-01-10 08:00  ?")
    assert lines[-1] == "* recommended (newest)"
    assert FoundImage.from_dict(images[0].to_dict()) == images[0]


def test_format_with_no_images() -> None:
    assert format_images([]) == ["No images found."]
