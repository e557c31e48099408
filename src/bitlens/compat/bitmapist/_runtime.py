"""The private event loop that runs bitlens under the sync API, and its Redis systems.

One daemon thread per process runs one asyncio event loop; every system's
:class:`~bitlens.Tracker` lives on it, and each sync call waits for its coroutine there.
After a ``fork`` the child starts a loop and trackers of its own on first use (the
parent's connections are never shared).
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from redis.asyncio import Redis

from ..._keys import BitmapistSchema, KeySchema
from ..._tracker import Tracker

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["RUNNER", "Runner", "System"]

_T = TypeVar("_T")


@dataclass(frozen=True)
class System:
    """Where one named system's data lives: a server and a key layout.

    :param host: the Redis host
    :param port: the Redis port
    :param schema: the key layout (bitmapist's by default)
    :param options: more ``redis.asyncio.Redis`` keyword arguments (``db``, ``password``...)
    """

    host: str
    port: int
    schema: KeySchema = field(default_factory=BitmapistSchema)
    options: dict[str, Any] = field(default_factory=dict)


class Runner:
    """The process's event-loop thread, the systems and their trackers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._trackers: dict[str, Tracker] = {}
        self.systems: dict[str, System] = {"default": System("localhost", 6379)}

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="bitlens-compat", daemon=True
                )
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
                self._trackers = {}  # a forked child's: the parent's connections stay its own
            return self._loop

    def run(self, system: str, call: Callable[[Tracker], Awaitable[_T]]) -> _T:
        """Run ``call`` with the tracker of ``system`` on the loop thread; wait for it.

        :param system: the system's name
        :param call: what to do with its tracker
        :raises KeyError: for a system never set up
        :raises RuntimeError: when called from the loop thread itself (it would deadlock)
        """
        loop = self._ensure()
        if threading.current_thread() is self._thread:
            raise RuntimeError("bitlens.compat.bitmapist is sync: do not call it from its loop")

        async def on_loop() -> _T:
            return await call(self._tracker(system))

        return asyncio.run_coroutine_threadsafe(on_loop(), loop).result()

    def _tracker(self, name: str) -> Tracker:
        """The tracker of system ``name``, made on first use (on the loop thread)."""
        tracker = self._trackers.get(name)
        if tracker is None:
            try:
                system = self.systems[name]
            except KeyError:
                raise KeyError(
                    f"no bitmapist system {name!r}: call setup_redis({name!r}, host, port)"
                ) from None
            client = Redis(host=system.host, port=system.port, **system.options)
            tracker = self._trackers[name] = Tracker(client, schema=system.schema)
        return tracker

    def setup(self, name: str, system: System) -> None:
        """Point system ``name`` at ``system``; close the tracker it had, if any.

        :param name: the system's name
        :param system: its server and layout
        """
        with self._lock:
            old = self._trackers.pop(name, None) if self._pid == os.getpid() else None
            self.systems[name] = system
        if old is not None and self._loop is not None:
            asyncio.run_coroutine_threadsafe(_close(old), self._loop).result()


async def _close(tracker: Tracker) -> None:
    await tracker.aclose()
    await tracker.client.aclose()


RUNNER = Runner()
"""The process's runner."""
