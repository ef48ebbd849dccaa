"""Put tests/ and tests/integration on sys.path, as the integration tests have them."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parent.parent
for _p in (_TESTS, _TESTS / "integration"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
