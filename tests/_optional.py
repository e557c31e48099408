"""Optional parts of the test environment: skip when missing, fail when CI requires them.

A machine with only Python and pip runs the whole suite green: a test that needs something
pip cannot bring (a browser, a TLS-built ``redis-server``, ``openssl``, network access to
install bitmapist) skips with a one-line reason. CI installs those parts and sets the
part's ``BITLENS_REQUIRE_*`` variable to ``1``, which turns the skip into a failure, so a
part that silently went missing cannot pass as green. The noxfile never sets them.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

__all__ = [
    "CHROMIUM_ENV",
    "NO_CHROMIUM",
    "NO_PLAYWRIGHT",
    "REQUIRE_BITMAPIST",
    "REQUIRE_BROWSER",
    "REQUIRE_TLS",
    "REQUIRE_VARIABLES",
    "find_chromium",
    "missing",
]

REQUIRE_BROWSER = "BITLENS_REQUIRE_BROWSER"
"""``1``: the dashboard's browser tests must run (playwright and Chromium present)."""

REQUIRE_TLS = "BITLENS_REQUIRE_TLS"
"""``1``: the TLS test must run (``openssl`` and a TLS-built ``redis-server`` present)."""

REQUIRE_BITMAPIST = "BITLENS_REQUIRE_BITMAPIST"
"""``1``: the bitmapist parity tests must run (bitmapist 3.119 installable in a venv)."""

REQUIRE_VARIABLES = (REQUIRE_BROWSER, REQUIRE_TLS, REQUIRE_BITMAPIST)
"""Every variable that turns a skip of this module into a failure."""

NO_PLAYWRIGHT = "playwright is not installed (the 'browser' dependency group)"
"""The reason the browser tests skip without playwright."""

NO_CHROMIUM = "no Chromium on PATH (apt-get install chromium)"
"""The reason the browser tests skip without Chromium."""

CHROMIUM_ENV = "BITLENS_CHROMIUM"
"""The environment variable naming the Chromium executable to drive, if not on ``PATH``."""

CHROMIUM_NAMES = ("chromium", "chromium-browser")
"""The executable names looked up on ``PATH`` (Debian's package installs ``chromium``)."""


def missing(require_env: str, reason: str) -> NoReturn:
    """Skip the test because an optional part is missing; fail instead if it is required.

    :param require_env: the ``BITLENS_REQUIRE_*`` variable of the part
    :param reason: one line saying what is missing and how to get it
    :raises pytest.skip.Exception: the part is not required (the variable is not ``1``)
    :raises pytest.fail.Exception: the variable is ``1``
    """
    if os.environ.get(require_env) == "1":
        pytest.fail(f"{require_env}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def find_chromium() -> str | None:
    """Return the Chromium executable to drive, or ``None`` when there is none.

    ``$BITLENS_CHROMIUM`` when set (``None`` if it is not executable), else the first of
    :data:`CHROMIUM_NAMES` on ``PATH``.
    """
    named = os.environ.get(CHROMIUM_ENV, "").strip()
    if named:
        return named if os.access(named, os.X_OK) else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    return None
