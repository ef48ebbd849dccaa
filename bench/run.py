#!/usr/bin/env python3
"""Benchmarks: rescue vs Clonezilla's engine (partclone + zstd) and vs dd, in one run on
the same data, on loop devices. Writes bench/out/results.json and the results section of
docs/PERFORMANCE.md. Run as root: `make bench`."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rescue.demo.sample_system import populate_tree, write_identity  # noqa: E402

MiB = 1024 * 1024
GiB = 1024 * MiB
PY = sys.executable


def sh(cmd: str, **kw) -> str:  # type: ignore[no-untyped-def]
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True,
                          **kw).stdout


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


@contextmanager
def loop(path: Path, size: int | None = None):  # type: ignore[no-untyped-def]
    if size is not None:
        path.unlink(missing_ok=True)
        with open(path, "wb") as f:
            f.truncate(size)
    dev = sh(f"losetup -f --show {path}").strip()
    subprocess.run(["partx", "-d", dev], capture_output=True)
    try:
        yield dev
    finally:
        subprocess.run(["partx", "-d", dev], capture_output=True)
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def partitions(dev: str) -> None:
    subprocess.run(["partx", "-u", dev], capture_output=True)
    subprocess.run(["partx", "-a", dev], capture_output=True)


def timed(argv: list[str] | str, shell: bool = False) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of the largest process in the command."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, shell=shell, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv} failed: {err[-2000:]}")
    children = __import__("resource").getrusage(__import__("resource").RUSAGE_CHILDREN)
    peak = max(usage.ru_maxrss, children.ru_maxrss) * 1024
    return elapsed, peak


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@contextmanager
def web_server(folder: Path):  # type: ignore[no-untyped-def]
    """`python3 -m http.server` sharing *folder* on 127.0.0.1 (directory listings on);
    yields its URL; stopped by its PID (also used by bench/scale.py)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([PY, "-m", "http.server", "--bind", "127.0.0.1", str(port),
                             "--directory", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()  # by its PID
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def build_source(work: Path, fs_size: int, data: int) -> Path:
    img = work / f"source-{fs_size // MiB}M-{data // MiB}M.img"
    if img.exists():
        return img
    tmp = img.with_suffix(".tmp")
    with loop(tmp, fs_size + 64 * MiB) as dev:
        sh(f"sfdisk -q --no-reread --no-tell-kernel {dev}",
           input=f"label: gpt\nsize={fs_size // MiB}M, type=L, name=root\n")
        partitions(dev)
        sh(f"mkfs.ext4 -q -L benchroot {dev}p1")
        with tempfile.TemporaryDirectory() as mnt:
            sh(f"mount {dev}p1 {mnt}")
            try:
                write_identity(Path(mnt), "bench-pc")
                populate_tree(Path(mnt), files=12000, data_bytes=data, seed=42)
            finally:
                sh(f"umount {mnt}")
    tmp.rename(img)
    return img


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", default="/var/tmp/rescue-bench",
                    help="scratch directory (needs ~8 GB)")
    ap.add_argument("--fs-size", type=int, default=2048, help="ext4 size in MiB")
    ap.add_argument("--data", type=int, default=1024, help="MiB of files to put in it")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    ap.add_argument("--out", default=str(ROOT / "bench/out/results.json"))
    ap.add_argument("--doc", default=str(ROOT / "docs/PERFORMANCE.md"))
    ap.add_argument("--scale-sizes", default="100k,1M,3.5M,14M",
                    help="chunk entries of the scale benchmark's images (bench/scale.py); "
                    "'' skips it")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("make bench needs root (loop devices).", file=sys.stderr)
        return 2
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    src_img = build_source(work, args.fs_size * MiB, args.data * MiB)
    results: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, kernel {platform.release()}",
        "fs_size_mib": args.fs_size,
        "data_mib": args.data,
    }
    rescue = [PY, "-m", "rescue"]
    runs: dict[str, list[float]] = {k: [] for k in (
        "backup", "pc_backup", "restore", "pc_restore", "dd", "http_restore")}
    rss: dict[str, int] = {"backup": 0, "restore": 0}
    repo = work / "repo"
    pc_img = work / "partclone.img.zst"
    tgt_img = work / "target.img"
    size = src_img.stat().st_size
    with loop(src_img) as src:
        partitions(src)
        used = sh(f"dumpe2fs -h {src}p1 2>/dev/null")
        fields = dict(line.split(":", 1) for line in used.splitlines() if ":" in line)
        bs = int(fields["Block size"])
        used_bytes = (int(fields["Block count"]) - int(fields["Free blocks"])) * bs
        results["ext4_used_bytes"] = used_bytes
        table = sh(f"sfdisk -d {src}")
        for rep in range(args.repeat):
            print(f"round {rep + 1} of {args.repeat}", file=sys.stderr)
            # --- backup: rescue vs partclone | zstd ---------------------------------
            shutil.rmtree(repo, ignore_errors=True)
            drop_caches()
            t, peak = timed([*rescue, "backup", "--disk", src, "--repo", str(repo)])
            runs["backup"].append(t)
            rss["backup"] = max(rss["backup"], peak)
            drop_caches()
            t, _ = timed(f"partclone.ext4 -q -c -s {src}p1 -o - 2>/dev/null"
                         f" | zstd -q -T0 -3 -f -o {pc_img}", shell=True)
            runs["pc_backup"].append(t)
            # --- restore: rescue vs zstd | partclone vs dd, each on a fresh target -----
            with loop(tgt_img, size) as tgt:
                drop_caches()
                report = work / "report.json"
                t, peak = timed([*rescue, "restore", "--repo", str(repo), "--disk", tgt,
                                 "--yes", "--no-grow", "--report", str(report)])
                runs["restore"].append(t)
                rss["restore"] = max(rss["restore"], peak)
                written = json.loads(report.read_text())["bytes_written"]
                fsck = subprocess.run(["e2fsck", "-fn", f"{tgt}p1"], capture_output=True)
            # --- the same restore, the repository read from a web server (loopback) ---
            with loop(tgt_img, size) as tgt, web_server(repo) as url:
                drop_caches()
                t, _ = timed([*rescue, "restore", "--repo", url, "--disk", tgt,
                              "--yes", "--no-grow"])
                runs["http_restore"].append(t)
            with loop(tgt_img, size) as tgt:
                sh(f"sfdisk -q --no-reread --no-tell-kernel {tgt}", input=table)
                partitions(tgt)
                drop_caches()
                t, _ = timed(f"zstd -q -dc {pc_img} | partclone.ext4 -q -r -s - -o {tgt}p1"
                             " 2>/dev/null && sync", shell=True)
                runs["pc_restore"].append(t)
            with loop(tgt_img, size) as tgt:
                sh(f"sfdisk -q --no-reread --no-tell-kernel {tgt}", input=table)
                partitions(tgt)
                # the same number of bytes, from page cache: the device's write limit
                sh(f"dd if={src}p1 of=/dev/null bs=4M count={written // (4 * MiB) + 1}"
                   " 2>/dev/null")
                t, _ = timed(["dd", f"if={src}p1", f"of={tgt}p1", "bs=4M",
                              f"count={written}", "iflag=count_bytes", "conv=fsync"])
                runs["dd"].append(t)
        image_bytes = tree_size(repo / "chunks") + tree_size(repo / "images")
        pc_bytes = pc_img.stat().st_size
        med = {k: statistics.median(v) for k, v in runs.items()}
        results["runs"] = {k: [round(x, 2) for x in v] for k, v in runs.items()}
        results["backup"] = {
            "rescue_s": round(med["backup"], 2), "partclone_zstd_s": round(med["pc_backup"], 2),
            "speedup": round(med["pc_backup"] / med["backup"], 2),
            "rescue_image_bytes": image_bytes, "partclone_zstd_bytes": pc_bytes,
            "size_ratio": round(image_bytes / pc_bytes, 4),
            "rescue_peak_rss_mib": round(rss["backup"] / MiB, 1),
            "rescue_MiBps": round(used_bytes / MiB / med["backup"], 1),
        }
        results["restore"] = {
            "rescue_s": round(med["restore"], 2),
            "partclone_zstd_s": round(med["pc_restore"], 2),
            "dd_same_bytes_s": round(med["dd"], 2),
            "speedup_vs_partclone": round(med["pc_restore"] / med["restore"], 2),
            "fraction_of_dd": round(med["dd"] / med["restore"], 3),
            "bytes_written": written,
            "rescue_MiBps": round(written / MiB / med["restore"], 1),
            "dd_MiBps": round(written / MiB / med["dd"], 1),
            "rescue_peak_rss_mib": round(rss["restore"] / MiB, 1),
            "restored_fsck_clean": fsck.returncode == 0,
            "http_s": round(med["http_restore"], 2),
            "http_MiBps": round(written / MiB / med["http_restore"], 1),
            "http_vs_local": round(med["restore"] / med["http_restore"], 3),
        }

        # --- incremental -------------------------------------------------------------
        with tempfile.TemporaryDirectory() as mnt:
            sh(f"mount {src}p1 {mnt}")
            try:
                docs = Path(mnt) / "home/user/docs"
                for i in range(50):
                    (docs / f"changed{i}.txt").write_text(f"edit {i} {time.time()}\n" * 200)
            finally:
                sh(f"umount {mnt}")
        before = tree_size(repo / "chunks")
        t_incr, _ = timed([*rescue, "backup", "--disk", src, "--repo", str(repo)])
        results["incremental"] = {
            "seconds": round(t_incr, 2),
            "new_stored_bytes": tree_size(repo / "chunks") - before,
            "first_image_bytes": image_bytes,
        }
        # the source image is modified by the incremental step: rebuild it next time
    src_img.unlink()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    write_doc(Path(args.doc), results)
    print(json.dumps(results, indent=1))
    if args.scale_sizes:
        # the scale benchmark (issue 11) writes its own section of the same document
        scale = subprocess.run([PY, str(ROOT / "bench/scale.py"), "--sizes", args.scale_sizes,
                                "--doc", args.doc])
        if scale.returncode != 0:
            print(f"bench/scale.py failed ({scale.returncode})", file=sys.stderr)
            return scale.returncode
    return 0


def write_doc(doc: Path, r: dict) -> None:
    b, s, i = r["backup"], r["restore"], r["incremental"]  # type: ignore[index]
    table = f"""<!-- bench:start (generated by `make bench`; do not edit by hand) -->
Last run: {r['date']} on {r['machine']}. Source: a {r['fs_size_mib']} MiB ext4 holding
{r['data_mib']} MiB of generated files (text, binaries, already-compressed media, symlinks,
hard links, sparse files), {r['ext4_used_bytes'] / MiB:.0f} MiB of used blocks, on a loop
device; page cache dropped before each timed run.

| measure | rescue | partclone + zstd -T0 -3 | dd (same bytes) | ratio | bar |
|---|---|---|---|---|---|
| backup time | {b['rescue_s']} s ({b['rescue_MiBps']} MiB/s) | {b['partclone_zstd_s']} s | | {b['speedup']}x faster | >= 1.5x |
| image size | {b['rescue_image_bytes'] / MiB:.1f} MiB | {b['partclone_zstd_bytes'] / MiB:.1f} MiB | | {b['size_ratio']} | <= 1.0 |
| restore time | {s['rescue_s']} s ({s['rescue_MiBps']} MiB/s) | {s['partclone_zstd_s']} s | {s['dd_same_bytes_s']} s ({s['dd_MiBps']} MiB/s) | {s['speedup_vs_partclone']}x vs partclone, {s['fraction_of_dd'] * 100:.0f}% of dd | >= 2x, >= 85% |
| restore from a web server (`--repo http://127.0.0.1:PORT/`, `python3 -m http.server`) | {s['http_s']} s ({s['http_MiBps']} MiB/s) | | | {s['http_vs_local'] * 100:.0f}% of the speed from a folder | |
| peak RSS | backup {b['rescue_peak_rss_mib']} MiB, restore {s['rescue_peak_rss_mib']} MiB | | | | < 300 MB |
| incremental backup (50 files changed) | {i['seconds']} s, {i['new_stored_bytes'] / MiB:.2f} MiB new | | | {i['new_stored_bytes'] / max(i['first_image_bytes'], 1) * 100:.2f}% of the first image | small |

Medians of {len(r['runs']['backup'])} rounds; every round: {json.dumps(r['runs'])}.
Restored filesystem passes `e2fsck -fn`: {s['restored_fsck_clean']}.
<!-- bench:end -->"""
    put_section(doc, "bench", table, "## Backup and restore (make bench)\n\n")


def put_section(doc: Path, name: str, block: str, intro: str) -> None:
    """Replace the generated block ``<!-- name:start ... <!-- name:end -->`` of *doc* with
    *block* (which carries both markers), or append *intro* and *block* when it has none."""
    text = doc.read_text() if doc.exists() else "# Performance\n\n"
    if f"<!-- {name}:start" in text:
        text = re.sub(rf"<!-- {name}:start.*?<!-- {name}:end -->", lambda _m: block, text,
                      flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + intro + block + "\n"
    doc.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
