"""Services built on first use, so the wizard's first screen is drawn before the engine
is loaded.

Loading :class:`~rescue.wizard.backend.EngineServices` imports the whole engine (image
format, repositories, catalog, signatures): about a third of a second on a desktop and
8 s under QEMU's emulation (docs/PERFORMANCE.md "Boot time"), all before the language
screen could show. ``rescue wizard`` hands the application a :class:`DeferredServices`
instead; the application calls :meth:`~DeferredServices.warm_up` in a thread once the
first screen is drawn, and any call before that simply waits for the build.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from rescue.wizard.ports import SERVICE_METHODS


class DeferredServices:
    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._real: Any = None
        self._failed: BaseException | None = None  # a build that failed is not retried
        self._closed = False

    def _services(self) -> Any:
        with self._lock:
            if self._failed is not None:
                raise self._failed
            if self._real is None:
                if self._closed:
                    raise RuntimeError("the wizard's services were closed")
                try:
                    self._real = self._build()
                except BaseException as exc:
                    self._failed = exc
                    raise
            return self._real

    def warm_up(self) -> None:
        """Build the real services now (the wizard calls this in a thread and shows the
        error if the build fails; every later use raises the same error)."""
        with self._lock:
            if self._closed:
                return
        self._services()

    @property
    def built(self) -> bool:
        return self._real is not None

    def __getattr__(self, name: str) -> Any:  # only for what this class does not have
        if name.startswith("__"):
            raise AttributeError(name)
        if name in SERVICE_METHODS and self._real is None:
            # Not built yet: a stand-in that builds when called. The screens pass these
            # to a worker thread (``in_thread(self.services.list_disks, ...)``); looking
            # the method up must not make the event loop wait for the engine.
            def later(*args: Any, **kwargs: Any) -> Any:
                return getattr(self._services(), name)(*args, **kwargs)

            later.__name__ = later.__qualname__ = name
            return later
        return getattr(self._services(), name)

    def close(self) -> None:
        """Close the real services if they were built; nothing to do otherwise."""
        with self._lock:
            self._closed = True
            real = self._real
        if real is not None:
            real.close()
