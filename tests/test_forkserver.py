"""The tests' fork server: a forked ``python -m``/``-c`` behaves as a new interpreter does."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from _forkserver import run_python

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")

SHOW = "import os, sys; print(os.getcwd(), os.environ.get('FORK_TEST'), sys.argv[1:], sys.path[0])"


def test_the_child_takes_the_requests_cwd_env_and_arguments(tmp_path: Path) -> None:
    """cwd, environment and argv are the request's; sys.path[0] is '' as for ``-c``."""
    env = {**os.environ, "FORK_TEST": "yes"}
    done = run_python(["-c", SHOW, "a", "b"], env=env, cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout.decode() == f"{tmp_path} yes ['a', 'b'] \n"


def test_the_child_reads_the_given_stdin() -> None:
    """What is passed as stdin is what the child reads, then end of file."""
    code = "import sys; print(repr(sys.stdin.read()))"
    done = run_python(["-c", code], env=dict(os.environ), stdin=b"one\ntwo\n")
    assert done.stdout == b"'one\\ntwo\\n'\n"


def test_sys_exit_gives_the_exit_code_and_flushes_output() -> None:
    """``sys.exit(3)`` after buffered prints: code 3, both streams complete."""
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    done = run_python(["-c", code], env=dict(os.environ))
    assert (done.returncode, done.stdout, done.stderr) == (3, b"out\n", b"err\n")


def test_an_uncaught_exception_exits_1_with_the_interpreters_traceback() -> None:
    """The traceback starts at the program, as ``python -c`` prints it."""
    done = run_python(["-c", "raise ValueError('boom')"], env=dict(os.environ))
    assert done.returncode == 1
    assert done.stderr.decode() == (
        "Traceback (most recent call last):\n"
        '  File "<string>", line 1, in <module>\n'
        "ValueError: boom\n"
    )


def test_atexit_handlers_of_the_child_run() -> None:
    """The child exits through the interpreter's own exit: its atexit handlers run."""
    code = "import atexit; atexit.register(print, 'bye'); print('hi')"
    done = run_python(["-c", code], env=dict(os.environ))
    assert done.stdout == b"hi\nbye\n"


def test_a_module_runs_as_main() -> None:
    """``-m bitlens --help`` runs the package's ``__main__``: the command line's usage."""
    done = run_python(["-m", "bitlens", "--help"], env=dict(os.environ))
    assert done.returncode == 0
    assert done.stdout.decode().startswith("usage: bitlens")


def test_children_are_separate_processes() -> None:
    """Two runs are two processes, neither of them this one."""
    code = "import os; print(os.getpid())"
    pids = {run_python(["-c", code], env=dict(os.environ)).stdout for _ in range(2)}
    assert len(pids) == 2
    assert str(os.getpid()).encode() + b"\n" not in pids


def test_a_child_over_its_timeout_is_killed() -> None:
    """A run longer than its timeout raises TimeoutError; the next run still works."""
    with pytest.raises(TimeoutError):
        run_python(["-c", "import time; time.sleep(30)"], env=dict(os.environ), timeout=0.5)
    assert run_python(["-c", "print(1)"], env=dict(os.environ)).stdout == b"1\n"


def test_other_interpreter_options_start_a_new_interpreter() -> None:
    """``-X utf8`` is not reproduced by a fork: it runs in a new interpreter, honoured."""
    code = "import sys; print(sys.flags.utf8_mode)"
    done = run_python(["-X", "utf8", "-c", code], env=dict(os.environ))
    assert done.stdout == b"1\n"


def test_another_python_variable_starts_a_new_interpreter() -> None:
    """A changed ``PYTHON*`` variable (read at start-up) runs in a new interpreter."""
    code = "import sys; print(sys.flags.dont_write_bytecode)"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        env.pop("PYTHONDONTWRITEBYTECODE")
    done = run_python(["-c", code], env=env)
    assert done.stdout == (b"0\n" if os.environ.get("PYTHONDONTWRITEBYTECODE") else b"1\n")
