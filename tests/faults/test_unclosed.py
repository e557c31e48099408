"""A program that ends without ``aclose()`` is told about the queued marks it loses."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from _helpers import paused_server

pytestmark = pytest.mark.anyio

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from bitlens import Tracker

    async def main() -> None:
        tracker = Tracker(sys.argv[1], prefix=sys.argv[2])
        for uid in range(3):
            tracker.mark_event_nowait("active", uid)
        await asyncio.sleep(0)  # the sender starts, then the program ends: no aclose()

    asyncio.run(main())
    """
)


def _run(url: str, prefix: str, script: str = SCRIPT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-c", script, url, prefix],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


async def test_ending_the_loop_with_queued_marks_warns(redis_url: str, prefix: str) -> None:
    """asyncio.run() ends while marks wait (writes paused): a ResourceWarning names them."""
    async with paused_server(redis_url, 3000, "WRITE"):
        done = _run(redis_url, prefix)
    assert "ResourceWarning" in done.stderr
    assert "3 marks queued with mark_event_nowait() were never sent" in done.stderr


async def test_a_closed_tracker_does_not_warn(redis_url: str, prefix: str) -> None:
    """The same program with every mark sent in time prints no warning."""
    closing = SCRIPT.replace("await asyncio.sleep(0)", "await tracker.aclose()")
    done = _run(redis_url, prefix, closing)
    assert "ResourceWarning" not in done.stderr
