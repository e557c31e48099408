"""bitmapist 3.119's own virtual environment, shared by every benchmark group.

bitmapist needs redis-py < 6, so it cannot live in the bench session's venv (redis-py 8):
it gets ``.nox/bench-bitmapist``, created on first use.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

__all__ = ["BITMAPIST_REQUIREMENTS", "BITMAPIST_VENV", "BITMAPIST_VERSION", "ensure_bitmapist_venv"]

ROOT = Path(__file__).resolve().parent.parent
BITMAPIST_VENV = ROOT / ".nox" / "bench-bitmapist"
BITMAPIST_REQUIREMENTS = ("bitmapist==3.119", "redis<6")
BITMAPIST_VERSION = "3.119"


def ensure_bitmapist_venv() -> Path:
    """Return the python of ``.nox/bench-bitmapist``, creating the venv if needed.

    :raises RuntimeError: if the venv cannot be made or bitmapist cannot be installed
    """
    python = BITMAPIST_VENV / "bin" / "python"
    check = [
        str(python),
        "-c",
        "from importlib.metadata import version; import bitmapist, redis; "
        f"assert version('bitmapist') == {BITMAPIST_VERSION!r}, version('bitmapist')",
    ]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return python
    requirements = " ".join(BITMAPIST_REQUIREMENTS)
    print(
        f"creating {BITMAPIST_VENV.relative_to(ROOT)} (pip install {requirements})", file=sys.stderr
    )
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(BITMAPIST_VENV)],
        [str(python), "-m", "pip", "install", "-q", *BITMAPIST_REQUIREMENTS],
        check,
    ]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"`{shlex.join(step)}` failed: {exc}") from exc
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
            raise RuntimeError(f"`{shlex.join(step)}` exited with {done.returncode}: {tail}")
    return python
