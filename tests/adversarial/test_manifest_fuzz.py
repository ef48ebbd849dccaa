"""A forger rewrites a real image's manifest (and its checksum, which anyone can compute)
and hands it to every command that reads it: list, inspect, verify, restore --dry-run
and the restore's write plan. Whatever the manifest says, each ends with rescue's own
error or with writes that stay inside the disk, its planned partitions and boot areas,
never with another exception or a hang. One bad image never hides the others."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import random
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rescue.engine.restore import check_chunks_present, part_fetcher, verify_image, write_jobs
from rescue.errors import RescueError
from rescue.image import chunks as codec
from rescue.image.index import IndexWriter
from rescue.image.manifest import HASH_FIELD, BootArea, ChunkedData, Disk, Manifest, Partition
from rescue.image.manifest import _body_hash as body_hash
from rescue.image.repository import Repository, summarize
from rescue.plan.restore import RestoreOptions, TargetInfo, plan_restore

MiB = 1024 * 1024
CHUNK = 64 * 1024
ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX = "0FC63DAF-8483-4772-8E79-3D69D8E47DE4"


def _data(repo: Repository, length: int, rng: random.Random) -> ChunkedData:
    def store(raw: bytes) -> str:
        digest = codec.chunk_hash(raw)
        repo.put_chunk(digest, codec.compress(raw))
        return digest

    index = IndexWriter(length, CHUNK, store)
    chunks = -(-length // CHUNK)
    for i in sorted(rng.sample(range(chunks), min(12, chunks))):
        if rng.random() < 0.3:
            index.add(i, None)
            continue
        block = rng.randbytes(min(CHUNK, length - i * CHUNK))
        index.add(i, store(block))
    return ChunkedData(length, CHUNK, parts=index.finish())


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    rng = random.Random(7)
    root = tmp_path_factory.mktemp("fuzz") / "repo"
    repo = Repository.create(root)
    ss = 512
    esp = Partition(1, 2048, 2048, ESP, uuid="A", name="EFI System", filesystem="vfat",
                    method="used-blocks", used_bytes=MiB, data=_data(repo, 2048 * ss, rng))
    rootfs = Partition(2, 4096, 16384, LINUX, uuid="B", filesystem="ext4",
                       method="used-blocks", used_bytes=4 * MiB,
                       data=_data(repo, 16384 * ss, rng))
    disk = Disk(size_bytes=32 * MiB, logical_sector_size=ss, physical_sector_size=ss,
                table="gpt", id="G", first_lba=34, last_lba=65502,
                boot_areas=[BootArea("mbr-boot-code", 0, _data(repo, 440, rng)),
                            BootArea("post-mbr-gap", 34 * ss, _data(repo, (2048 - 34) * ss,
                                                                      rng))],
                partitions=[esp, rootfs])
    m = Manifest(id="20260101T000000Z-aaaaaa", name="base", created_utc="2026-01-01T00:00:00Z",
                 created_local="2026-01-01T01:00:00+01:00", timezone="Europe/Berlin",
                 computer="pc", os_name="Debian", os_id="debian", os_version="12",
                 firmware="uefi", hardware={}, chunk_size=CHUNK, compression="zstd",
                 disks=[disk])
    body = json.loads(m.to_json())
    del body[HASH_FIELD]
    yield root, body


def _paths(node: Any, here: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield here
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*here, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*here, i))


VALUES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 1, 2**32, 2**63, 10**13, 65536, 511, 4096, 34, 2048]),
    st.text(max_size=70), st.sampled_from(["gpt", "dos", "logical", "extended", "ef",
                                           "a" * 64, "../../x", ""]),
    st.none(), st.booleans(), st.floats(allow_nan=True),
    st.lists(st.integers(-5, 2**40), max_size=3), st.dictionaries(st.text(max_size=5),
                                                                  st.integers(), max_size=2),
)


class Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise Hang("no answer within 20 s")


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_a_forged_manifest_gets_rescues_own_error_or_stays_in_bounds(
        base: tuple[Path, dict[str, Any]], data: st.DataObject) -> None:
    root, original = base
    body = copy.deepcopy(original)
    paths = [p for p in _paths(body) if p]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        parent: Any = body
        try:
            for key in path[:-1]:
                parent = parent[key]
            if data.draw(st.booleans()) or not isinstance(parent, dict):
                parent[path[-1]] = data.draw(VALUES)
            else:
                del parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue
    body[HASH_FIELD] = body_hash(body)  # the forger signs his own work
    image_id = "20260101T000000Z-aaaaaa"
    folder = root / "images" / image_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(body))
    good = "20260101T000001Z-bbbbbb"
    (root / "images" / good).mkdir(exist_ok=True)
    (root / "images" / good / "manifest.json").write_text(
        json.dumps({**original, "id": good, HASH_FIELD: body_hash({**original, "id": good})}))

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(20)
    try:
        repo = Repository.open(root)
        problems: list[str] = []
        listed = [s.id for s in repo.list_images(problems)]
        assert good in listed  # one bad image never hides another
        assert image_id in listed or any(image_id in p for p in problems)
        try:
            m = repo.load_manifest(image_id)
        except RescueError:
            return
        summarize(m)
        json.dumps(m.to_dict())  # inspect --json
        for run in (lambda: check_chunks_present(repo, m), lambda: verify_image(repo, m)):
            with contextlib.suppress(RescueError):
                run()
        disk = m.disks[0]
        target = TargetInfo(path="/dev/sdz", size_bytes=disk.size_bytes + 64 * MiB,
                            logical_sector_size=disk.logical_sector_size)
        try:
            plan = plan_restore(m, target, RestoreOptions(), firmware="uefi")
        except RescueError:
            return
        ss = plan.sector_size
        allowed = [(pp.start * ss, (pp.start + pp.size) * ss) for pp in plan.partitions]
        allowed += [(a.offset, a.offset + a.data.length) for a in disk.boot_areas]
        try:
            for job in write_jobs(m, plan, part_fetcher(repo, m)):
                assert job.length > 0
                end = job.offset + job.length
                assert job.offset >= 0 and end <= target.size_bytes
                assert any(lo <= job.offset and end <= hi for lo, hi in allowed), job
        except RescueError:
            pass
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        os.sync()
