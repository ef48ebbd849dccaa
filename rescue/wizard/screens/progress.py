"""Progress — overall bar, current volume, throughput, elapsed and remaining."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Button, Label, ProgressBar, Static

from rescue.errors import Cancelled
from rescue.events import Event, LogMessage, Progress, StageFinished, StageStarted
from rescue.i18n import _, format_duration, format_rate, format_size
from rescue.wizard.model import Outcome
from rescue.wizard.ports import describe_error
from rescue.wizard.screens.base import WizardScreen
from rescue.wizard.screens.dialogs import ConfirmDialog


class ProgressScreen(WizardScreen):
    BACK = False
    STAYS = False  # the finished screen replaces it: a finished job is not gone back to

    @classmethod
    def for_flow(cls, kind: str) -> ProgressScreen:
        return cls(kind)

    def __init__(self, kind: str, start: bool = True) -> None:
        super().__init__()
        self.kind = kind
        self.start = start  # False: show only (screenshots feed events by hand)
        self.stage_title = ""
        self.finished_bytes = 0
        self.stage_done = 0
        self.stage_total = 0
        self.volume_start = 0  # first of prepared.volumes the current data stage writes
        self.stage_volumes: tuple[int, int] | None = None  # its [start, end) in volumes
        self.rate = 0.0
        self.started = 0.0
        self.messages: list[str] = []
        self.cancelling = False

    def heading(self) -> str:
        return _("Restoring") if self.kind == "restore" else _("Backing up")

    def key_hints(self) -> str:
        return "  ".join((_("F2 Language"), _("Esc Cancel")))

    def body(self) -> ComposeResult:
        with Vertical(id="body"):
            yield Static(
                _("Restoring the system image. Do not turn off the computer.")
                if self.kind == "restore"
                else _("Backing up this computer. Do not turn off the computer."),
                classes="heading",
            )
            yield Label(_("Overall"))
            yield ProgressBar(total=100, show_eta=False, id="overall")
            yield Static("", id="stage")
            yield ProgressBar(total=100, show_eta=False, id="stage-bar")
            yield Static("", id="numbers")
            yield Static("", id="log")
        yield self.buttons(Button(_("Cancel"), id="cancel", variant="error"))

    def on_mount(self) -> None:
        self.started = self.wizard.clock()
        self.state.cancel.clear()
        self.refill()
        self.query_one("#cancel", Button).focus()
        if self.start:
            self.run_job()

    @work(thread=True, exclusive=True, group="job")
    def run_job(self) -> None:
        st = self.state
        prepared = st.prepared
        assert prepared is not None

        def sink(event: Event) -> None:
            self.app.call_from_thread(self.on_engine_event, event)

        try:
            if self.kind == "restore":
                outcome = self.services.run_restore(prepared, sink, st.cancel)
            else:
                outcome = self.services.run_backup(prepared, sink, st.cancel)
        except Cancelled as exc:
            outcome = Outcome(ok=False, cancelled=True, message=str(exc))
        except Exception as exc:  # noqa: BLE001 - every failure ends on the finished screen
            if st.cancel.is_set():
                outcome = Outcome(ok=False, cancelled=True, message=describe_error(exc))
            else:
                outcome = Outcome(ok=False, message=describe_error(exc))
        self.app.call_from_thread(self.done, outcome)

    def on_engine_event(self, event: Event) -> None:
        if isinstance(event, StageStarted):
            self.stage_title = event.title
            self.stage_done, self.stage_total = 0, event.total_bytes
            self.stage_volumes = self._volumes_of(event.total_bytes)
        elif isinstance(event, Progress):
            self.stage_done, self.stage_total = event.done_bytes, event.total_bytes
            self.rate = event.rate
        elif isinstance(event, StageFinished):
            self.finished_bytes += max(self.stage_total, event.done_bytes)
            self.stage_done = self.stage_total = 0
            if self.stage_volumes is not None:
                self.volume_start = self.stage_volumes[1]
                self.stage_volumes = None
        elif isinstance(event, LogMessage):
            self.messages = [*self.messages, event.text][-2:]
        self.refill()

    def _volumes_of(self, total: int) -> tuple[int, int] | None:
        """The run of the plan's volumes, from the next unwritten one, that a data stage of
        *total* bytes walks in order (one per disk of the image), or None."""
        prepared = self.state.prepared
        volumes = prepared.volumes if prepared else []
        running = 0
        for end in range(self.volume_start, len(volumes)):
            running += volumes[end][1]
            if running == total:
                return self.volume_start, end + 1
            if running > total:
                break
        return None

    def current_volume(self) -> str:
        """The volume the data stages are in, from their byte count and the plan."""
        prepared = self.state.prepared
        if not prepared or self.stage_volumes is None or not self.stage_total:
            return ""  # not a stage that walks the volumes in order
        start, stop = self.stage_volumes
        end = 0
        for title, size in prepared.volumes[start:stop]:
            end += size
            if self.stage_done < end:
                return title
        return prepared.volumes[stop - 1][0]

    def overall(self) -> tuple[int, int]:
        prepared = self.state.prepared
        done = self.finished_bytes + self.stage_done
        total = max(prepared.total_bytes if prepared else 0, self.finished_bytes + self.stage_total)
        return done, max(total, 1)

    def refill(self) -> None:
        done, total = self.overall()
        self.query_one("#overall", ProgressBar).update(total=total, progress=done)
        self.query_one("#stage-bar", ProgressBar).update(
            total=max(self.stage_total, 1), progress=self.stage_done)
        now = (_("Now: {what}").format(what=self.stage_title) if self.stage_title
               else _("Preparing…"))
        volume = self.current_volume()
        if volume:
            now += "\n" + _("Volume: {volume}").format(volume=volume)
        self.query_one("#stage", Static).update(now)
        elapsed = self.wizard.clock() - self.started
        remaining = (total - done) / self.rate if self.rate > 0 else None
        self.query_one("#numbers", Static).update(
            "\n".join((
                _("{done} of {total}").format(done=format_size(done), total=format_size(total))
                + f" ({int(100 * done / total)} %)",
                _("Throughput: {rate}").format(rate=format_rate(self.rate)),
                _("Elapsed: {elapsed}   Remaining: {remaining}").format(
                    elapsed=format_duration(elapsed), remaining=format_duration(remaining)),
            )))
        status = [_("Cancelling… the current step finishes first.")] if self.cancelling else []
        self.query_one("#log", Static).update("\n".join([*self.messages, *status]))

    def action_back(self) -> None:
        self.ask_cancel()

    @on(Button.Pressed, "#cancel")
    def ask_cancel(self) -> None:
        if self.cancelling:
            return
        question = (
            _("Cancel the restore? The target disk will be left incomplete and will not "
              "start until a restore finishes.")
            if self.kind == "restore"
            else _("Cancel the backup? The image being written is discarded; earlier "
                   "images stay intact.")
        )
        self.app.push_screen(
            ConfirmDialog(question, _("Cancel it"), _("Continue")), self.cancel_answer
        )

    def cancel_answer(self, yes: object) -> None:
        if yes is True:
            self.cancelling = True
            self.state.cancel.set()
            self.query_one("#cancel", Button).disabled = True
            self.refill()

    def done(self, outcome: Outcome) -> None:
        self.state.outcome = outcome
        self.wizard.advance(self)
