"""Unattended ``image=latest`` with ``rescue.repo=`` naming the location (issue 12,
finding 8): images the search found on attached disks (an old stick, a hostile one,
the target's own leftovers) are not candidates; images of one computer from several
places are refused unless the answers say which."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "wizard"))

from wizard_fakes import IMAGES, FixtureServices  # noqa: E402

from rescue.errors import ImageNotFoundError, TargetRefusedError, UsageError  # noqa: E402
from rescue.unattended import parse_job  # noqa: E402
from rescue.wizard import headless  # noqa: E402

NAMED = "/srv/named/rescue"
# web01's newest image is on an attached USB stick nobody named; an older one of the
# same computer is in the repository the answers name
ON_STICK = dataclasses.replace(IMAGES[0], id="bad00001", location="/run/catalog/sdd1/rescue",
                               medium="USB stick Unknown (sdd1)")
IN_NAMED = dataclasses.replace(IMAGES[1], id="good0001", location=NAMED, medium="")


def _run(svc: FixtureServices, job: str) -> None:
    with open("/dev/null", "w") as out:
        headless.run(parse_job(job), svc, out=out)


def _restored(svc: FixtureServices) -> list[str]:
    return [c[1] for c in svc.calls if c[0] == "prepare_restore"]


def test_latest_comes_only_from_the_named_repository():
    svc = FixtureServices(images=[ON_STICK, IN_NAMED])
    _run(svc, f'action = "restore"\nrepo = "{NAMED}"\nimage = "latest"\n'
              'target = "/dev/sda"\nconfirm = true\n')
    assert _restored(svc) == ["good0001"]


def test_an_id_found_only_outside_the_named_repository_is_not_restored():
    svc = FixtureServices(images=[ON_STICK, IN_NAMED])
    with pytest.raises(ImageNotFoundError, match="no image 'bad00001'"):
        _run(svc, f'action = "restore"\nrepo = "{NAMED}"\nimage = "bad00001"\n'
                  'target = "/dev/sda"\nconfirm = true\n')
    assert _restored(svc) == []


def test_named_repository_without_images_does_not_fall_back_to_attached_disks():
    svc = FixtureServices(images=[ON_STICK])
    with pytest.raises(ImageNotFoundError, match="images on attached disks are not used"):
        _run(svc, f'action = "restore"\nrepo = "{NAMED}"\ntarget = "/dev/sda"\n'
                  'confirm = true\n')
    assert _restored(svc) == []


def test_one_computer_in_several_places_needs_the_answers_to_say_which():
    other = dataclasses.replace(IMAGES[1], id="other001", location="http://10.0.0.5/r/",
                                medium="")
    svc = FixtureServices(images=[IN_NAMED, other])
    job = (f'action = "restore"\nrepo = ["{NAMED}", "http://10.0.0.5/r/"]\n'
           'target = "/dev/sda"\nconfirm = true\n')
    with pytest.raises(UsageError, match=r"images of web01 were found in 2 places"):
        _run(svc, job + 'image = "latest"\n')
    assert _restored(svc) == []
    _run(svc, job + 'image = "other001"\n')  # the id says which
    assert _restored(svc) == ["other001"]
    # no location named: the same holds for images found on attached disks
    svc = FixtureServices(images=[ON_STICK, dataclasses.replace(IN_NAMED, medium="sde1")])
    with pytest.raises(UsageError, match="2 places"):
        _run(svc, 'action = "restore"\ntarget = "/dev/sda"\nconfirm = true\n')


def test_a_partition_is_no_unattended_target():
    svc = FixtureServices(images=[IN_NAMED])
    with pytest.raises(TargetRefusedError, match="/dev/sda2 is a partition of /dev/sda"):
        _run(svc, f'action = "restore"\nrepo = "{NAMED}"\ntarget = "/dev/sda2"\n'
                  'confirm = true\n')
    assert _restored(svc) == []
