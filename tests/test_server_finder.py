"""The test matrix's server finder: every binary on ``PATH`` is seen, copies count once."""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

from bitlens.embedded import ENV_VAR
from harness import servers

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def _fake_binary(folder: Path, name: str, body: str) -> str:
    """Write an executable shell script ``folder/name`` printing ``body``; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\necho '{body}'\n")
    path.chmod(0o755)
    return str(path)


def test_a_copy_first_on_path_does_not_hide_the_next_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A venv's copy of the bundled server, first on PATH, leaves the system's one found."""
    bundled = _fake_binary(tmp_path / "site", "redis-server", "Redis server v=6.2.14")
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    shutil.copy2(bundled, venv_bin / "redis-server")
    system = _fake_binary(tmp_path / "usr" / "bin", "redis-server", "Redis server v=7.0.15")
    monkeypatch.setenv("PATH", os.pathsep.join([str(venv_bin), str(tmp_path / "usr" / "bin")]))
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(servers, "_bundled", lambda package, parts: bundled)
    assert servers.find_redis_servers() == [bundled, system]


def test_a_symlink_and_its_target_count_once(tmp_path: Path) -> None:
    """Two paths resolving to one file are one binary."""
    target = _fake_binary(tmp_path / "a", "valkey-server", "Valkey server v=9.1.0")
    link = tmp_path / "b" / "valkey-server"
    link.parent.mkdir()
    link.symlink_to(target)
    assert servers._distinct([target, str(link), None]) == [target]


def test_different_binaries_are_all_kept(tmp_path: Path) -> None:
    """Binaries with different bytes are all kept, in the order given."""
    first = _fake_binary(tmp_path / "a", "redis-server", "Redis server v=6.2.14")
    second = _fake_binary(tmp_path / "b", "redis-server", "Redis server v=7.0.15")
    assert servers._distinct([second, first]) == [second, first]
