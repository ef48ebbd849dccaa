"""``rescue wizard``: the restore wizard on the console, or an unattended job.

    rescue wizard [--include-loop] [--repo PATH]...
    rescue wizard --job job.toml          (unattended, answers from a TOML file)
    rescue wizard --cmdline ["TEXT"]      (unattended, answers from a kernel command line;
                                           without TEXT: /proc/cmdline)

Without --job/--cmdline the wizard also runs unattended when /proc/cmdline carries
``rescue.action=...`` (the live ISO's unattended boot entries).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from rescue import i18n, unattended
from rescue.errors import UsageError
from rescue.runner import CommandRunner, DryRunRunner, Result
from rescue.unattended import Answers
from rescue.wizard.deferred import DeferredServices
from rescue.wizard.model import WizardState
from rescue.wizard.ports import Services

if TYPE_CHECKING:
    from rescue.wizard.backend import EngineServices


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "wizard",
        help="the restore wizard (full-screen, keyboard only) or an unattended job",
        description="Walk from language to a restored, restarting machine: choose an "
        "image, a target disk and Finish. With --job or --cmdline every answer is given "
        "up front and the run needs no keyboard.",
    )
    p.add_argument("--include-loop", action="store_true",
                   help="offer loop devices as disks (demo and tests)")
    p.add_argument("--repo", action="append", default=[], metavar="PATH",
                   help="add an image repository location up front (repeatable)")
    p.add_argument("--job", metavar="FILE", help="run unattended with answers from a TOML file")
    p.add_argument("--cmdline", nargs="?", const="/proc/cmdline", metavar="TEXT",
                   help="run unattended with answers from a kernel command line "
                   "(default: /proc/cmdline)")
    p.add_argument("--lang", help="start in this language (en, de, fr, es)")
    p.add_argument("--disk", action="append", default=[], metavar="DEV",
                   help="only consider these disks (repeatable; demos and tests on a "
                   "shared machine)")
    p.add_argument("--no-media-search", action="store_true",
                   help="do not search attached disks for images; only --repo locations")
    p.add_argument("--restart-countdown", type=int, default=30, metavar="SECONDS",
                   help="seconds before the automatic restart after a restore (0: none)")
    p.add_argument("--simulate-power", action="store_true",
                   help="print restart/shut down instead of doing it (demo and tests)")
    p.add_argument("--log", metavar="FILE",
                   help="wizard log file (default /run/rescue/wizard.log, mode 0600)")
    p.add_argument("--trust", action="append", default=[], metavar="FILE_OR_DIR",
                   help="a trusted public key (NAME.pub) or a folder of them, besides "
                   "/etc/rescue/trusted-keys/ (repeatable); with any, only images signed "
                   "by one are restored")
    p.set_defaults(func=run)


class _PrintingDryRun(DryRunRunner):
    def run(self, argv: Sequence[str], **kwargs: Any) -> Result:
        print(f"(simulated) {' '.join(str(a) for a in argv)}", file=sys.stderr, flush=True)
        return super().run(argv, **kwargs)


def build_services(args: argparse.Namespace, interactive_free: bool) -> EngineServices:
    """The real services; *interactive_free*: no TUI, so simulated power actions print."""
    from rescue.wizard.backend import LOG_FILE, EngineServices  # loads the engine

    wanted = {os.path.realpath(d) for d in args.disk}
    return EngineServices(
        runner=CommandRunner(),
        include_loop=args.include_loop,
        log_file=Path(args.log) if args.log else LOG_FILE,
        disk_filter=(lambda path: os.path.realpath(path) in wanted) if wanted else None,
        scan_media=not args.no_media_search,
        power_runner=(_PrintingDryRun() if interactive_free else DryRunRunner())
        if args.simulate_power else None,
        trusted_keys=getattr(args, "trust", []),
    )


def _cmdline_answers(args: argparse.Namespace) -> tuple[Answers | None, Answers | None]:
    """(answers for an unattended run, presets for the interactive wizard)."""
    if args.job:
        return unattended.load_job(args.job), None
    if args.cmdline is not None:
        text = args.cmdline
        if text == "/proc/cmdline" or (text.startswith("/") and Path(text).is_file()):
            text = Path(text).read_text()
        answers = unattended.parse_cmdline(text)
        if answers is None:
            raise UsageError("The kernel command line holds no rescue.* answers "
                             "(for example rescue.action=restore).")
        return answers, None
    try:
        return boot_answers(Path("/proc/cmdline").read_text())
    except (OSError, UsageError):
        return None, None


def boot_answers(cmdline: str) -> tuple[Answers | None, Answers | None]:
    """Only rescue.action makes a boot unattended; rescue.lang=de alone (a boot menu
    entry per language) just presets the interactive wizard."""
    found = unattended.parse_cmdline(cmdline)
    if found is not None and found.action:
        return found, None
    return None, found


def run(args: argparse.Namespace) -> int:
    answers, presets = _cmdline_answers(args)
    if answers is not None:
        from rescue.wizard import headless

        engine = build_services(args, interactive_free=True)
        try:
            answers.repos = [*answers.repos, *args.repo]
            outcome = headless.run(answers, engine)
            return 0 if outcome.ok else 1
        finally:
            engine.close()
    # the interactive wizard: its first screen is drawn before the engine is loaded
    services = DeferredServices(lambda: build_services(args, interactive_free=False))
    try:
        from rescue.wizard.app import RescueApp  # loads textual: only when the wizard opens

        state = WizardState(locations=list(args.repo))
        lang = args.lang or (presets.lang if presets else "")
        if lang:
            if lang not in i18n.LANGUAGES:
                raise UsageError(f"Language {lang!r} is not available; use one of "
                                 f"{', '.join(i18n.LANGUAGES)}.")
            state.language = lang
            state.region = i18n.DEFAULT_FORMAT.get(lang, "en_US")
            state.keymap = i18n.DEFAULT_KEYMAP.get(lang, "us")
        if presets is not None:
            if presets.format in i18n.FORMATS:
                state.region = presets.format
            state.keymap = presets.keymap or state.keymap
            state.locations += [r for r in presets.repos if r not in state.locations]
        app = RescueApp(cast(Services, services), state,
                        restart_countdown=args.restart_countdown)
        return app.run() or 0
    finally:
        services.close()
