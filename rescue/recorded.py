"""Reading recorded machines (`rescue devices --dump`): one JSON file holding the
inventory and the hardware profile, or a bare inventory or profile."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rescue.errors import UsageError


def read_member(path: str | os.PathLike[str], member: str, what: str,
                held: str) -> dict[str, Any]:
    """The *member* object of a recorded-machine file, or the whole file when it is a bare
    *what*; *held* names it in the sentence for a file that holds something else."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"Cannot read the {what} {path}: {exc.strerror}.") from exc
    except ValueError as exc:
        raise UsageError(f"{path} is not a JSON {what} ({exc}).") from exc
    if isinstance(data, dict) and isinstance(data.get(member), dict):
        data = data[member]
    if not isinstance(data, dict):
        raise UsageError(f"{path} does not hold a {held}.")
    return data
