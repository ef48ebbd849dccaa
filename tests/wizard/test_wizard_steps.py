"""The order of the screens is data (rescue/wizard/flow.py), the step numbers follow it,
docs/WIZARD.md says the same, and the screens import neither each other nor the app."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
from wizard_fakes import FixtureServices
from wizard_fixtures import english  # noqa: F401 (fixtures)
from wizard_helpers import name, on, press_button, run_async, to_repair, wait_for

import rescue
from rescue.wizard import flow
from rescue.wizard.app import RescueApp
from rescue.wizard.model import WizardState
from rescue.wizard.screens.base import WizardScreen
from rescue.wizard.screens.dialogs import ConfirmDialog
from rescue.wizard.screens.save_logs import SaveLogsDialog

PACKAGE = Path(rescue.__file__).resolve().parent
WIZARD = PACKAGE / "wizard"
SCREENS = WIZARD / "screens"
DOC = PACKAGE.parent / "docs" / "WIZARD.md"
# The screens' shared kit: a screen module may import these, and nothing else of screens/.
KIT = {"rescue.wizard.screens.base", "rescue.wizard.screens.dialogs"}
# What only the top may import: the screens reach the app through rescue.wizard.protocol.
TOP = {"rescue.wizard.app", "rescue.wizard.flow"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imported(path: Path) -> set[str]:
    """Every rescue module *path* imports, anywhere (top level, functions, TYPE_CHECKING);
    ``from package import module`` counts as the module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            assert node.module
            found.add(node.module)
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if (PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").exists():
                    found.add(sub)
    return {m for m in found if m == "rescue" or m.startswith("rescue.")}


def screen_modules() -> list[Path]:
    return sorted(p for p in SCREENS.glob("*.py") if p.name != "__init__.py")


# -- the table ---------------------------------------------------------------------------

def test_every_step_is_a_screen_of_its_own_module():
    assert set(flow.FLOWS) == {"restore", "backup", "browse"}
    for action, steps in flow.FLOWS.items():
        assert steps.action == action
        assert steps.steps[: len(flow.COMMON)] == flow.COMMON
        assert steps.entry == len(flow.COMMON) < len(steps.steps)
        assert len(set(steps.steps)) == len(steps.steps), f"{action}: a screen twice"
        for screen in steps.steps:
            assert issubclass(screen, WizardScreen)
            module = importlib.import_module(screen.__module__)
            assert module.__name__.startswith("rescue.wizard.screens.")
            assert module.__name__ not in KIT
            assert getattr(module, screen.__name__) is screen
    assert flow.FIRST is flow.COMMON[0]
    assert flow.HOME in flow.COMMON
    assert flow.DEFAULT in flow.FLOWS


def doc_flows() -> dict[str, list[str]]:
    """The flows as docs/WIZARD.md writes them ("restore: A -> B -> ...", continued on
    indented lines starting with "->")."""
    flows: dict[str, list[str]] = {}
    current = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        start = re.match(r"^\s{4,}(restore|backup|browse):\s+(.*)$", line)
        more = re.match(r"^\s{4,}->\s+(.*)$", line)
        if start:
            current = start.group(1)
            flows[current] = re.split(r"\s*->\s*", start.group(2).strip())
        elif more and current:
            flows[current] += re.split(r"\s*->\s*", more.group(1).strip())
        else:
            current = None
    return flows


def test_the_order_is_what_the_docs_say():
    assert doc_flows() == {action: [s.__name__ for s in f.steps]
                           for action, f in flow.FLOWS.items()}
    # ... and the steps table is numbered 1..N, N the restore flow's length.
    text = DOC.read_text(encoding="utf-8").split("## The steps", 1)[1].split("\n## ", 1)[0]
    numbers = [int(m) for m in re.findall(r"^\| (\d+) \|", text, re.M)]
    assert numbers == list(range(1, len(flow.FLOWS["restore"].steps) + 1))
    assert "adding a step = one line in `rescue/wizard/flow.py`" in DOC.read_text(
        encoding="utf-8")


def test_step_numbers_follow_the_table():
    for action, steps in flow.FLOWS.items():
        total = len(steps.steps)
        for index, screen in enumerate(steps.steps):
            assert flow.step_number(action, screen) == (index + 1, total)
            following = steps.steps[index + 1] if index + 1 < total else None
            assert flow.next_step(action, screen) is following
        assert flow.entry_step(action) is steps.steps[steps.entry]
    # A screen of several flows has one number, whatever the route to it.
    for screen in {s for f in flow.FLOWS.values() for s in f.steps}:
        numbers = {f.number(screen) for f in flow.FLOWS.values()} - {None}
        assert len(numbers) == 1, screen
        assert flow.step_number("", screen) is not None
    for dialog in (ConfirmDialog, SaveLogsDialog):
        assert flow.step_number("restore", dialog) is None


def test_kinds_reach_the_screens_that_differ_by_job():
    for action, steps in flow.FLOWS.items():
        for screen in steps.steps[steps.entry:]:
            made = screen.for_flow(action)
            assert type(made) is screen
            if hasattr(made, "kind"):
                assert made.kind == action


# -- imports -----------------------------------------------------------------------------

def test_screens_import_no_other_screen_nor_the_app():
    wrong = []
    for path in screen_modules():
        this = module_name(path)
        for mod in imported(path):
            if mod in TOP or (mod.startswith("rescue.wizard.screens.") and mod not in KIT):
                wrong.append(f"{this} imports {mod}")
            elif this in KIT and mod in KIT and not (
                    this == "rescue.wizard.screens.dialogs" and mod.endswith(".base")):
                wrong.append(f"{this} (shared) imports {mod}")
    for shared in ("protocol.py", "texts.py", "widgets.py", "model.py"):
        for mod in imported(WIZARD / shared):
            if mod in TOP or mod.startswith("rescue.wizard.screens"):
                wrong.append(f"rescue.wizard.{shared[:-3]} imports {mod}")
    assert not wrong, "\n".join(wrong)


def test_only_flow_and_app_import_the_screens():
    for path in sorted(WIZARD.glob("*.py")):
        if path.name in ("flow.py", "app.py"):
            continue
        assert not any(m.startswith("rescue.wizard.screens") for m in imported(path)), path


def test_no_imports_inside_functions_or_blocks():
    """app.py, flow.py, protocol.py and the screens import at the top of the module only
    (no function-level and no TYPE_CHECKING imports)."""
    paths = [WIZARD / "app.py", WIZARD / "flow.py", WIZARD / "protocol.py",
             WIZARD / "texts.py", *screen_modules()]
    wrong = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top:
                wrong.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not wrong


def test_the_wizard_package_has_no_import_cycle():
    graph = {module_name(p): {m for m in imported(p) if m.startswith("rescue.wizard")}
             for p in sorted(WIZARD.rglob("*.py"))}
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(mod: str) -> None:
        state[mod] = 1
        path.append(mod)
        for dep in sorted(graph.get(mod, ())):
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        path.pop()
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod)


# -- the numbers on screen -----------------------------------------------------------------

def title(pilot) -> str:
    return str(pilot.app.screen.query_one("#title").render())


def make_app() -> RescueApp:
    return RescueApp(FixtureServices(), WizardState(), restart_countdown=0,
                     clock=lambda: 100.0, default_backup_name="web01")


@pytest.mark.parametrize("action", ["restore", "backup", "browse"])
def test_each_screen_shows_its_number_from_the_table(action):
    steps = flow.FLOWS[action].steps
    ready = {  # what each screen loads before Next can be pressed
        "SelectImageScreen": lambda s: s.loaded,
        "TargetScreen": lambda s: s.loaded,
        "BackupSourceScreen": lambda s: bool(s.disks),
        "BackupDestinationScreen": lambda s: bool(s.media),
    }

    async def run() -> None:
        async with make_app().run_test(size=(80, 24)) as pilot:
            await on(pilot, steps[0].__name__)
            # before a job is chosen, the common steps count in the default flow
            assert f"Step 1 of {len(flow.flow_of('').steps)}" in title(pilot)
            await to_repair(pilot)
            # the repair options: restore, back up, browse
            await pilot.press(*{"restore": [], "backup": ["down"],
                                "browse": ["down", "down"]}[action], "enter")
            for number, screen in enumerate(steps[flow.FLOWS[action].entry:],
                                            start=flow.FLOWS[action].entry + 1):
                await on(pilot, screen.__name__)
                assert f"Step {number} of {len(steps)}" in title(pilot), name(pilot)
                if screen.__name__ in ("SummaryScreen", "BrowseScreen"):
                    break  # the rest runs the job: test_wizard_flow.py, _browse.py
                check = ready[screen.__name__]
                await wait_for(pilot, lambda c=check: c(pilot.app.screen))
                if screen.__name__ == "BackupDestinationScreen":
                    pilot.app.screen.query_one("#destination").value = "/media/usb/rescue"
                await press_button(pilot, "#next")

    run_async(run())
