"""The README's quickstart runs as written and prints what its comments say.

The other pages' blocks, and the Guarantees page's citations, are checked in test_docs.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def quickstart_code() -> str:
    """Return the first python block under the README's Quickstart heading."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quickstart", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no python block under ## Quickstart"
    return match.group(1)


def test_quickstart_runs_and_prints_documented_answers(redis_url: str) -> None:
    """The quickstart, run against a real server, prints the numbers in its comments."""
    env = {**os.environ, "REDIS_URL": redis_url}
    done = subprocess.run(
        [sys.executable, "-c", quickstart_code()],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:7] == [
        "3",
        "True",
        "2",
        "[1]",
        "1",
        "1",
        "{'mau': 3, 'retained': 2, 'churned': 1}",
    ]
    assert lines[7].isdigit()


def test_quickstart_comments_match_the_asserted_output() -> None:
    """Each `print(...)  # N` comment in the quickstart states the asserted value."""
    comments = re.findall(r"print\(.*\)\s+# (\S+)", quickstart_code())
    assert comments[:6] == ["3", "True", "2", "[1]", "1", "1:"]
