"""Every mount rescue makes goes through here: the command line, the private mount point,
the refusal of a symlinked mount point, and the unmount that always follows.

::

    with mounted(node, fstype, mode=RO, runner=runner, purpose="src") as where:
        ...                          # read-only, no journal or log replay
    with mounted(node, fstype, mode=RW, twin=True, runner=runner, purpose="grow") as where:
        ...                          # read-write (twin: next to a same-UUID twin)
    with probed(node, fstype, runner=runner) as where:   # None when it does not mount
        ...
    with mounted(source, argv=lambda node, mp: [...], runner=runner, where=mnt) as where:
        ...                          # a caller's own command line (cifs, nfs)

The command lines come from :mod:`rescue.fs.registry` (:func:`mount_command`). A private
mount point is a fresh directory (mode 0700) under /run when it is writable, else under
the temporary directory, named ``rescue-<purpose>-XXXX``; it is removed on leaving the
block. A given mount point (*where*) must be a directory and no symbolic link (``mount``
would follow it out of the tree it is in), and with *inside* (the top of a mounted system
holding it) no folder between that top and *where* may be a link either; it is left in
place.

Leaving the block unmounts, also after an error: ``umount``; when the target is busy, once
more after a moment; then ``umount -l`` (detached lazily, logged) as the last resort.

:func:`mount`, :func:`bind` and :func:`unmount` are the single steps, for callers that
keep their own stack of mounts (the boot fix-ups' chroot).

Pure of UI imports; every command through a :class:`~rescue.runner.CommandRunner`."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from rescue.errors import DeviceError
from rescue.fs import registry
from rescue.i18n import _
from rescue.runner import CommandRunner

log = logging.getLogger(__name__)

RO = "ro"  # read-only, replaying no journal or log
RW = "rw"  # read-write

PRIVATE_BASE = "/run"
BUSY_RETRY_DELAY = 0.3  # seconds before the second umount of a busy target


class MountError(DeviceError):
    """A mount failed or was refused; ``node`` and ``detail`` (what mount said) let a
    caller word its own sentence."""

    def __init__(self, message: str, node: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.node = node
        self.detail = detail


def _options(head: list[str], extra: Sequence[str]) -> list[str]:
    """*head* with *extra* appended to its ``-o`` value."""
    if not extra:
        return head
    out = list(head)
    i = out.index("-o") + 1
    out[i] = ",".join((out[i], *extra))
    return out


def mount_command(fstype: str | None, mode: str = RO, options: Sequence[str] = (),
                  twin: bool = False) -> list[str]:
    """The mount command before device and mount point.

    A type the registry knows: its read-only (no log replay) or read-write command
    (``mount -t TYPE -o ...`` or its FUSE helper); *twin* adds the options a mount next
    to a same-UUID twin needs (xfs ``nouuid``); *options* are appended. A type without
    a record (or None): ``mount -o ro`` / ``mount -w -o rw``, mount finding the type.
    A type the registry says is not mounted that way raises :class:`MountError`."""
    if mode not in (RO, RW):
        raise ValueError(f"mode {mode!r}")
    extra = (*(registry.twin_options(fstype) if twin else ()), *options)
    if registry.traits(fstype) is None:
        return ["mount", "-o", ",".join(("ro", *extra))] if mode == RO else \
            ["mount", "-w", "-o", ",".join(("rw", *extra))]
    head = registry.ro_mount_argv(fstype) if mode == RO else registry.rw_mount_argv(fstype)
    if head is None:
        raise MountError(_("rescue does not mount {fstype} filesystems").format(
            fstype=fstype), detail="")
    return _options(head, extra)


def private_base() -> str | None:
    """Where private mount points are made: /run when writable, else the temporary
    directory (None)."""
    return PRIVATE_BASE if os.access(PRIVATE_BASE, os.W_OK) else None


@contextlib.contextmanager
def private_dir(purpose: str, base: str | None = None) -> Iterator[Path]:
    """A fresh directory (mode 0700) ``rescue-<purpose>-XXXX`` under *base* (default
    :func:`private_base`), removed on leaving the block when it is empty."""
    top = tempfile.mkdtemp(prefix=f"rescue-{purpose}-", dir=base or private_base())
    try:
        yield Path(top)
    finally:
        remove_empty_dir(top)


def remove_empty_dir(path: str | os.PathLike[str]) -> None:
    """Remove a mount point left behind, when it is empty (never its contents)."""
    with contextlib.suppress(OSError):
        os.rmdir(path)


def _refuse_link(where: str, inside: str | os.PathLike[str] | None = None) -> None:
    """*where* must be a folder and no link; with *inside* (the top of a mounted system
    the mount point lies in), no folder between *inside* and *where* may be a link either
    (``mount`` would follow it out of that system)."""
    if inside is not None:
        top = os.path.normpath(os.fspath(inside))
        rel = os.path.relpath(os.path.normpath(where), top)
        parts = rel.split(os.sep)
        if rel == os.curdir or os.path.isabs(rel) or os.pardir in parts:
            raise MountError(_("{path} is not inside {root}; rescue does not mount anything "
                               "on it.").format(path=where, root=top))
        for i in range(1, len(parts)):
            step = os.path.join(top, *parts[:i])
            if os.path.islink(step):
                raise MountError(_("{path} leads through the symbolic link {link}; rescue "
                                   "does not mount anything on it.").format(
                                       path=where, link=step))
    if os.path.islink(where):
        raise MountError(_("{path} is a symbolic link; rescue does not mount anything "
                           "on it.").format(path=where))
    if not os.path.isdir(where):
        raise MountError(_("{path} is not a folder; rescue cannot mount anything "
                           "on it.").format(path=where))


def _last_line(stderr: str, stdout: str, code: int) -> str:
    detail = (stderr or stdout).strip().splitlines()
    return detail[-1] if detail else _("exit code {code}").format(code=code)


Command = Sequence[str] | Callable[[str, str], Sequence[str]]


def mount(node: str, where: str | os.PathLike[str], head: Command,
          runner: CommandRunner, inside: str | os.PathLike[str] | None = None) -> None:
    """Run ``head + [node, where]`` (*head* a function: ``head(node, where)``, a command
    line of the caller's own); *where* must be a directory and no symbolic link, nor
    reached through one below *inside* (a mounted system it lies in). Raises
    :class:`MountError` naming *node* and what mount said."""
    target = os.fspath(where)
    _refuse_link(target, inside)
    argv = head(node, target) if callable(head) else [*head, node, target]
    res = runner.run(argv, check=False)
    if res.returncode != 0:
        why = _last_line(res.stderr, res.stdout, res.returncode)
        raise MountError(_("{device} could not be mounted: {detail}").format(
            device=node, detail=why), node=node, detail=why)


def bind(source: str, where: str | os.PathLike[str], runner: CommandRunner,
         rslave: bool = True, what: str | None = None,
         inside: str | os.PathLike[str] | None = None) -> None:
    """Bind-mount *source* on *where* (no symbolic link, nor reached through one below
    *inside*, as for :func:`mount`); *rslave*: mounts made below *source* later reach
    *where*, never the other way. Raises through the runner (:class:`MountError` when
    refused)."""
    target = os.fspath(where)
    _refuse_link(target, inside)
    runner.run(["mount", "--bind", source, target],
               what=what or _("Binding {path}").format(path=source))
    if rslave:
        runner.run(["mount", "--make-rslave", target], check=False)


def unmount(where: str | os.PathLike[str], runner: CommandRunner) -> bool:
    """Unmount *where*: once more after a moment when it is busy, then lazily (logged).
    True when a plain umount did it."""
    target = os.fspath(where)
    res = runner.run(["umount", target], check=False)
    if res.returncode == 0:
        return True
    if "busy" in (res.stderr + res.stdout).lower():
        time.sleep(BUSY_RETRY_DELAY)
        res = runner.run(["umount", target], check=False)
        if res.returncode == 0:
            return True
    log.warning("could not unmount %s: %s; detaching it lazily", target,
                (res.stderr or res.stdout).strip())
    runner.run(["umount", "-l", target], check=False)
    return False


@contextlib.contextmanager
def mounted(
    node: str,
    fstype: str | None = None,
    *,
    mode: str = RO,
    options: Sequence[str] = (),
    twin: bool = False,
    runner: CommandRunner | None = None,
    where: str | os.PathLike[str] | None = None,
    purpose: str = "mount",
    base: str | None = None,
    argv: Command | None = None,
) -> Iterator[Path]:
    """*node* mounted for the block (see the module docstring): on *where*, or on a
    private directory made for it and removed afterwards. *argv*: the caller's own
    command (see :func:`mount`; network shares) instead of :func:`mount_command`. Raises
    :class:`MountError` when it does not mount (nothing is left behind)."""
    runner = runner or CommandRunner()
    head = argv if argv is not None else mount_command(fstype, mode, options, twin)
    with contextlib.ExitStack() as stack:
        target = Path(where) if where is not None else \
            stack.enter_context(private_dir(purpose, base))
        mount(node, target, head, runner)
        try:
            yield target
        finally:
            unmount(target, runner)


@contextlib.contextmanager
def probed(node: str, fstype: str | None = None, *, runner: CommandRunner | None = None,
           options: Sequence[str] = (), twin: bool = False, purpose: str = "probe",
           where: str | os.PathLike[str] | None = None) -> Iterator[Path | None]:
    """A read-only look at *node*, as :func:`mounted`; None when it does not mount."""
    with contextlib.ExitStack() as stack:
        try:
            target = stack.enter_context(mounted(
                node, fstype, mode=RO, options=options, twin=twin, runner=runner,
                purpose=purpose, where=where))
        except MountError as exc:
            log.debug("%s does not mount: %s", node, exc)
            yield None
            return
        yield target
