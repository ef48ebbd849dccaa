"""rescue backup | list | inspect | verify | restore | delete | prune."""

from __future__ import annotations

import argparse
import json
import sys
import threading

from rescue import services
from rescue.devices.catalog import format_images, open_catalog
from rescue.devices.inventory import probe_inventory
from rescue.errors import Cancelled, RescueError, SignatureRefusedError, UsageError
from rescue.events import Broadcast, JsonLog, Sink, human_bytes
from rescue.image.repository import summarize
from rescue.runner import CommandRunner
from rescue.services import FIXUP_NAMES, BackupOptions, RestoreOptions, open_repository
from rescue.terminal import TerminalProgress

REPO_HELP = ("repository: a folder; an SMB or NFS share (smb://[user:password@]server/share"
             "/folder, //server/share/folder, nfs://server/export/folder, server:/export/"
             "folder: mounted while the command runs); or the http:// or https:// URL of a "
             "folder a web server shares (read-only; http://user:password@host/path/)")


WRITE_REPO_HELP = ("repository: a folder, or an SMB or NFS share (smb://[user:password@]server"
                   "/share/folder, nfs://server/export/folder: mounted read-write while the "
                   "command runs)")
TRUST_HELP = ("a trusted public key (NAME.pub) or a folder of them, besides those in "
              "/etc/rescue/trusted-keys/; repeatable. With any trusted key, only images "
              "signed by one are restored")
BREAK_LOCK_HELP = ("take the repository's writer lock even though another backup, delete or "
                   "prune holds it: only when that writer is gone (its machine switched off "
                   "or crashed)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backup", help="back up a whole disk into a repository",
                       description="Back up a whole disk (partition table, boot areas, every "
                       "partition's used blocks) into an image repository. Chunks already in "
                       "the repository are reused, so later backups store only changes.")
    p.add_argument("--disk", required=True, action="append",
                   help="the disk to back up, e.g. /dev/sda; repeat for a machine with "
                   "several disks (one image holds them all; give the system disk first)")
    p.add_argument("--repo", required=True,
                   help="repository folder (created if needed), or an SMB or NFS share "
                   "(smb://[user:password@]server/share/folder, nfs://server/export/folder)")
    p.add_argument("--name", default="", help="a name for the image, e.g. 'before upgrade'")
    p.add_argument("--level", type=int, default=3, help="zstd level (default 3)")
    p.add_argument("--log-json", metavar="FILE", help="also write events as JSON lines")
    p.add_argument("--break-lock", action="store_true", help=BREAK_LOCK_HELP)
    p.add_argument("--sign", metavar="KEYFILE",
                   help="sign the image with this private key (NAME.key from 'rescue key "
                   "create'), so restores can tell it was made by its holder")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("list", help="list images: one repository, or every attached disk",
                       description="With --repo: the images in that repository. Without: "
                       "every repository on every attached partition (mounted read-only "
                       "in a private directory, unmounted afterwards), newest first; the "
                       "newest is recommended.")
    p.add_argument("--repo", action="append", default=[],
                   help=REPO_HELP + "; repeatable; without it every attached disk is searched")
    p.add_argument("--include-loop", action="store_true",
                   help="also search loop devices (tests, demos)")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.add_argument("--trust", action="append", default=[], metavar="FILE_OR_DIR",
                   help=TRUST_HELP)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("inspect", help="show an image's layout, volumes and hardware")
    p.add_argument("--repo", required=True, help=REPO_HELP)
    p.add_argument("--image", default="latest", help="id, unique id prefix or 'latest'")
    p.add_argument("--json", action="store_true",
                   help="print the manifest as JSON (with the signature's verdict)")
    p.add_argument("--trust", action="append", default=[], metavar="FILE_OR_DIR",
                   help=TRUST_HELP)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("verify", help="re-hash every chunk of an image (no target needed)")
    p.add_argument("--repo", required=True, help=REPO_HELP)
    p.add_argument("--image", default="latest")
    p.add_argument("--trust", action="append", default=[], metavar="FILE_OR_DIR",
                   help=TRUST_HELP)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("restore", help="restore an image onto a disk (erases the disk)",
                       description="Restore an image onto a whole disk. Every check that can "
                       "refuse runs before the first byte is written. Without --yes the plan "
                       "is shown and a confirmation is asked for.")
    p.add_argument("--repo", required=True, help=REPO_HELP)
    p.add_argument("--image", default="latest")
    p.add_argument("--disk", required=True, action="append",
                   help="the target disk, e.g. /dev/sdb; an image of several disks needs "
                   "one --disk per disk, in the image's order (`rescue inspect` lists them)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    p.add_argument("--json", action="store_true", help="with --dry-run: the plan as JSON")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--no-grow", action="store_true",
                   help="keep partition sizes on a larger disk")
    p.add_argument("--no-shrink", action="store_true",
                   help="refuse a smaller disk instead of making the partitions that can "
                        "shrink (ext2/3/4, xfs, btrfs, vfat) anew and copying their files "
                        "one by one")
    p.add_argument("--verify", action="store_true",
                   help="read back and compare everything written")
    p.add_argument("--verify-first", action="store_true",
                   help="verify the whole image before writing anything")
    p.add_argument("--delta", "--resume", dest="delta", action="store_true",
                   help="skip chunks the target already holds: resumes an interrupted "
                   "restore, or refreshes a disk restored from an earlier image (each "
                   "chunk on the target is hashed and compared)")
    p.add_argument("--skip-fixup", action="append", default=[], metavar="NAME",
                   choices=FIXUP_NAMES,
                   help="skip a boot fix-up (repeatable): " + ", ".join(FIXUP_NAMES))
    p.add_argument("--add-driver", action="append", default=[], metavar="MODULE",
                   help="also put this storage driver into the restored initramfs "
                   "(repeatable), e.g. nvme when the disk goes into another machine")
    p.add_argument("--firmware", choices=("uefi", "bios"),
                   help="treat the machine as booted this way (default: detected); decides "
                   "the UEFI boot entry and fallback loader steps")
    p.add_argument("--force", action="store_true",
                   help="restore even if the hardware verdict is 'blocked'")
    p.add_argument("--report", metavar="FILE",
                   help="write the restore report (JSON) here, also when the restore fails")
    p.add_argument("--log-json", metavar="FILE", help="also write events as JSON lines")
    p.add_argument("--trust", action="append", default=[], metavar="FILE_OR_DIR",
                   help=TRUST_HELP)
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("delete", help="take an image out of a repository",
                       description="Take one image out of a repository (a folder or a share). "
                       "Its chunks stay until 'rescue prune' removes those no other image "
                       "uses. Holds the repository's writer lock: refused while a backup, "
                       "delete or prune of the same repository runs.")
    p.add_argument("--repo", required=True, help=WRITE_REPO_HELP)
    p.add_argument("--image", required=True,
                   help="the image's id or a unique prefix of it (not 'latest')")
    p.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")
    p.add_argument("--break-lock", action="store_true", help=BREAK_LOCK_HELP)
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("prune", help="remove chunks no image uses, and leftovers",
                       description="Remove the chunk files no image of the repository uses "
                       "(after 'rescue delete') and what interrupted backups left behind "
                       "(temporary files, image folders without a manifest). Prints what is "
                       "removed and the space freed. Holds the repository's writer lock; "
                       "safe to interrupt.")
    p.add_argument("--repo", required=True, help=WRITE_REPO_HELP)
    p.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")
    p.add_argument("--list", action="store_true",
                   help="print every chunk file removed (default: their number and size)")
    p.add_argument("--break-lock", action="store_true", help=BREAK_LOCK_HELP)
    p.set_defaults(func=cmd_prune)


def _sink(args: argparse.Namespace) -> Sink:
    sinks: list[Sink] = [TerminalProgress()]
    if getattr(args, "log_json", None):
        sinks.append(JsonLog(open(args.log_json, "a")))  # noqa: SIM115
    return Broadcast(sinks)


def cmd_backup(args: argparse.Namespace) -> int:
    """The repository (a share: mounted read-write) is open while the backup runs."""
    runner = CommandRunner()
    # a key that cannot sign is refused before the repository is opened or a disk read
    signer = services.load_signer(args.sign) if args.sign else None
    with services.open_writer(args.repo, runner, args.break_lock) as repo:
        prepared = services.prepare_backup(
            args.disk, repo, BackupOptions(name=args.name, level=args.level, signer=signer),
            runner)
        for line in prepared.summary_lines():
            print(line)
        cancel = threading.Event()
        try:
            result = services.run_backup(prepared, _sink(args), cancel)
        except KeyboardInterrupt:
            cancel.set()
            raise Cancelled(
                "Backup cancelled; no image was added to the repository.") from None
    m = result.manifest
    print(f"Image {m.id} written to {repo.location}")
    if signer is not None:
        print(f"  signed by {signer.name} ({signer.public.fingerprint})")
    print(f"  used data {human_bytes(m.data_bytes)}; new {human_bytes(result.new_raw_bytes)} "
          f"stored as {human_bytes(result.new_stored_bytes)}; reused "
          f"{human_bytes(result.reused_bytes)}; {result.elapsed:.1f} s")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    if len(args.repo) != 1:
        return _list_everywhere(args)
    problems: list[str] = []
    trust = services.trust_store(args.trust)
    with open_repository(args.repo[0], runner=CommandRunner()) as repo:
        images = repo.list_images(problems)
        signed = {s.id: services.image_signature(repo, s.id, trust) for s in images}
    for problem in problems:  # one bad image never hides the others
        print(f"rescue: warning: {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps([{**s.to_dict(), "signature": signed[s.id].to_dict()}
                          for s in images], indent=1))
        return 0
    if not images:
        print(f"No images in {repo.location}.")
        return 0
    print(f"{'ID':<24} {'CREATED':<26} {'COMPUTER':<16} {'SIZE':>10}  OS / NAME")
    for s in images:
        print(f"{s.id:<24} {s.created_local:<26} {s.computer[:16]:<16} "
              f"{human_bytes(s.data_bytes):>10}  {s.os_name} / {s.name}")
        print(f"{'':<24} {signed[s.id].text()}")
    return 0


def _list_everywhere(args: argparse.Namespace) -> int:
    runner = CommandRunner()
    trust = services.trust_store(args.trust)
    inventory = probe_inventory(include_loop=args.include_loop, runner=runner)
    signed: dict[tuple[str, str], services.SignatureVerdict] = {}
    with open_catalog(inventory, args.repo, runner) as catalog:
        found = list(catalog.images)
        for img in found:  # read while the catalog keeps the disks mounted
            try:
                with open_repository(img.repo, runner=runner) as repo:
                    signed[img.repo, img.id] = services.image_signature(repo, img.id, trust)
            except RescueError as exc:
                print(f"rescue: warning: image {img.id}: {exc}", file=sys.stderr)
    if args.json:
        out = []
        for img in found:
            d = img.to_dict()
            d["created"] = img.created_utc
            d["os"] = img.os_name
            if (img.repo, img.id) in signed:
                d["signature"] = signed[img.repo, img.id].to_dict()
            out.append(d)
        print(json.dumps(out, indent=1))
    else:
        print("\n".join(format_images(found, {k: v.text() for k, v in signed.items()})))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    trust = services.trust_store(args.trust)
    with open_repository(args.repo, runner=CommandRunner()) as repo:
        m, signature = repo.load_signed(args.image, trust)
    if args.json:
        print(json.dumps({**m.to_dict(), "signature": signature.to_dict()}, indent=1))
        return 0
    s = summarize(m)
    print(f"Image      {m.id}  ({m.name})")
    print(f"Signature  {signature.text()}")
    print(f"Created    {m.created_local} (UTC {m.created_utc}), zone {m.timezone or '?'}")
    print(f"Computer   {m.computer or '(unknown)'}")
    print(f"OS         {m.os_name or '(unknown)'}")
    print(f"Firmware   {m.firmware}")
    print(f"Data       {human_bytes(s.data_bytes)}; stored new by this image "
          f"{human_bytes(s.stored_bytes)}")
    hw = m.hardware
    if hw:
        print("Hardware   " + ", ".join(f"{k}={v}" for k, v in hw.items()
                                         if isinstance(v, str) and v))
    for d in m.disks:
        ss = d.logical_sector_size
        print(f"Disk       {human_bytes(d.size_bytes)} {d.table.upper()} {d.id}, "
              f"sectors {ss}/{d.physical_sector_size}"
              f"{', model ' + d.model if d.model else ''}")
        for a in d.boot_areas:
            print(f"  boot area {a.name}: {a.data.length} bytes at {a.offset}, "
                  f"{a.data.stored_chunks} chunk(s)")
        for p in d.partitions:
            print(f"  {p.number:>2} {p.kind:<8} start {p.start:>10} size "
                  f"{human_bytes(p.size * ss):>10} type {p.type}")
            print(f"     fs {p.filesystem or '-'} uuid {p.fs_uuid or '-'} "
                  f"label {p.fs_label or '-'} partuuid {p.uuid or '-'}"
                  f"{' name ' + repr(p.name) if p.name else ''}")
            chunks = p.data.stored_chunks if p.data else 0
            print(f"     {p.method}, used {human_bytes(p.used_bytes)}, {chunks} chunks")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    trust = services.trust_store(args.trust)
    with open_repository(args.repo, runner=CommandRunner()) as repo:
        m, signature = repo.load_signed(args.image, trust)
        print(f"Signature: {signature.text()}")
        if signature.status == "bad":
            raise SignatureRefusedError(f"Image {m.id} is not what its signer signed: "
                                        f"{signature.reason}")
        checked = services.verify_image(repo, m, TerminalProgress())
    print(f"Image {m.id} is intact: {m.stored_chunks} chunks, "
          f"{human_bytes(checked)} verified; {signature.text()}.")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """The repository (a share: mounted read-only) is open while the restore runs."""
    runner = CommandRunner()
    options = RestoreOptions(grow=not args.no_grow, shrink=not args.no_shrink,
                             verify=args.verify,
                             verify_first=args.verify_first, force=args.force,
                             delta=args.delta, skip_fixups=args.skip_fixup,
                             firmware=args.firmware or "", add_drivers=args.add_driver)
    trust = services.trust_store(args.trust)
    with open_repository(args.repo, runner=runner) as repo:
        prepared = services.prepare_restore(repo, args.image, args.disk, options, runner,
                                            trust)
        return _restore(args, prepared, runner)


def _restore(args: argparse.Namespace, prepared: services.PreparedRestore,
             runner: CommandRunner) -> int:
    if not args.json:
        print(f"Image {prepared.manifest.id}: {prepared.signature.text()}")
    if args.dry_run:
        if args.json:
            print(json.dumps(prepared.to_dict(), indent=1))
        else:
            print("\n".join(prepared.summary_lines()))
            print("Dry run: nothing was written.")
        return 0
    if args.json:
        raise UsageError("--json goes with --dry-run.")
    print("\n".join(prepared.summary_lines()))
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("Confirmation needed: run on a terminal or pass --yes.")
        answer = input(f"Type YES to erase {' and '.join(prepared.targets)} and restore: "
                       ).strip()
        if answer != "YES":
            print("Nothing was written.")
            return 1
    report = services.run_restore(prepared, _sink(args), None, runner, args.report)
    print(f"Restored image {report.image_id} onto {report.target}: "
          f"{human_bytes(report.bytes_written)} written in {report.elapsed:.1f} s"
          + (f", {human_bytes(report.bytes_skipped)} already in place"
             if args.delta else "")
          + (", verified" if report.verified else ""))
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if report.boot_fixups_failed:
        print("The data is restored, but the machine may not boot until this is fixed.",
              file=sys.stderr)
        return BOOT_FIXUP_FAILED
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    result = services.delete_image(args.repo, args.image, args.dry_run, CommandRunner(),
                                   args.break_lock)
    what = f"{result.image_id}" + (f" ({result.name}, {result.created_local})"
                                   if result.name else "")
    if result.dry_run:
        print(f"Would delete image {what}: {human_bytes(result.bytes_freed)}.")
        print("Dry run: nothing was removed.")
    else:
        print(f"Deleted image {what}: {human_bytes(result.bytes_freed)} freed.")
    print("Its chunks that no other image uses are removed by 'rescue prune'.")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    verb = "would remove" if args.dry_run else "removed"

    def shown(path: str, size: int) -> None:
        if args.list or not path.startswith("chunks/"):
            print(f"  {verb} {path} ({human_bytes(size)})")

    cancel = threading.Event()
    try:
        result = services.prune(args.repo, args.dry_run, CommandRunner(), args.break_lock,
                                shown, cancel)
    except KeyboardInterrupt:
        cancel.set()
        raise Cancelled("Prune interrupted; every file removed was unused, the repository "
                        "is intact. Run it again to finish.") from None
    head = "Would free" if result.dry_run else "Freed"
    print(f"{head} {human_bytes(result.bytes_freed)}: {result.chunks_removed} unused chunk "
          f"file(s) ({human_bytes(result.chunk_bytes)}) and {result.leftovers_removed} "
          f"leftover(s) of interrupted backups ({human_bytes(result.leftover_bytes)}); "
          f"{result.chunks_kept} chunk file(s) kept for {result.images} image(s).")
    if result.incomplete:
        print(f"{result.missing_chunks} chunk file(s) that images refer to are missing; "
              f"these images cannot be restored: {', '.join(result.incomplete)}. "
              "'rescue verify' names what is damaged; 'rescue delete' takes an image out.")
    if result.dry_run:
        print("Dry run: nothing was removed.")
    elif result.sealed:
        print(f"Sealed: {result.images - len(result.incomplete)} complete image(s); "
              "restores of them skip looking up each chunk while the repository is "
              "unchanged.")
    return 1 if result.incomplete else 0


BOOT_FIXUP_FAILED = 25
