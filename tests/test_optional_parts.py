"""The test suite passes where optional parts are missing, and CI's variables require them.

The README's test command must pass on a machine with only Python and pip. These tests run
the browser test module in a pytest subprocess whose ``PATH`` holds no Chromium (and no
``BITLENS_*`` variables from CI): its tests must skip with the one-line reason, and fail
instead once ``BITLENS_REQUIRE_BROWSER=1`` is set, as ``.ci/run`` does. Where playwright
itself is not installed (the older Pythons' sessions), that is the reason given.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _optional import (
    CHROMIUM_ENV,
    NO_CHROMIUM,
    NO_PLAYWRIGHT,
    REQUIRE_BROWSER,
    find_chromium,
    missing,
)

TESTS = Path(__file__).resolve().parent
BROWSER_TESTS = TESTS / "test_dashboard_browser.py"
REASON = NO_CHROMIUM if importlib.util.find_spec("playwright") is not None else NO_PLAYWRIGHT
BROWSER_COUNT = len(re.findall(r"^(?:async )?def test_", BROWSER_TESTS.read_text(), re.M))
"""How many browser tests the module holds (none is parametrized)."""


def _run_without_chromium(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run the browser tests in a subprocess whose PATH is an empty directory."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("BITLENS_")}
    empty = tmp_path / "bin"
    empty.mkdir()
    env |= {"PATH": str(empty), "PYTHONPATH": os.pathsep.join(sys.path), **extra}
    options = ["-q", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *options, str(BROWSER_TESTS)],
        cwd=TESTS.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_browser_tests_skip_with_one_line_reason_without_chromium(tmp_path: Path) -> None:
    """No Chromium on PATH: every browser test skips, saying why, and pytest exits 0."""
    completed = _run_without_chromium(tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    skipped = [line for line in completed.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == BROWSER_COUNT > 0
    assert all(line.endswith(f": {REASON}") for line in skipped)
    last = completed.stdout.rstrip().splitlines()[-1]
    assert last.startswith(f"{BROWSER_COUNT} skipped in")


def test_browser_tests_fail_without_chromium_when_required(tmp_path: Path) -> None:
    """With BITLENS_REQUIRE_BROWSER=1 and no Chromium, the browser tests fail, saying why."""
    completed = _run_without_chromium(tmp_path, **{REQUIRE_BROWSER: "1"})
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert completed.stdout.count(f"{REQUIRE_BROWSER}=1 but {REASON}") >= BROWSER_COUNT
    last = completed.stdout.rstrip().splitlines()[-1]
    assert last.startswith(f"{BROWSER_COUNT} errors in")


def test_chromium_named_by_the_environment_must_be_executable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BITLENS_CHROMIUM naming a missing file means no Chromium, not a later launch error."""
    monkeypatch.setenv(CHROMIUM_ENV, str(tmp_path / "chromium"))
    assert find_chromium() is None


def test_missing_part_skips_when_not_required(monkeypatch: pytest.MonkeyPatch) -> None:
    """missing() skips with the reason alone when the part's variable is unset."""
    monkeypatch.delenv(REQUIRE_BROWSER, raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"^no thing$"):
        missing(REQUIRE_BROWSER, "no thing")


def test_missing_part_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    """missing() fails, naming the variable, when the part's variable is 1."""
    monkeypatch.setenv(REQUIRE_BROWSER, "1")
    with pytest.raises(pytest.fail.Exception, match=rf"^{REQUIRE_BROWSER}=1 but no thing$"):
        missing(REQUIRE_BROWSER, "no thing")
