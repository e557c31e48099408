"""Run ``python -m bitlens ...`` (and ``python -c CODE``) as real processes, minus the import.

A new interpreter spends most of a short ``bitlens`` command importing redis-py and
bitlens (about 0.8 s of CPU on 2 vCPUs, redis-py's share the largest), and the suite runs
over a hundred of them per run. So each pytest worker keeps one server process that has
imported ``bitlens.cli`` once and then forks a child per command. The child is still a
process of its own: it gets the command's environment, working directory, arguments and
standard streams, runs the module or code as ``__main__`` the way the interpreter does,
and exits through the interpreter's normal exit (``sys.exit`` codes, an uncaught
exception's traceback and exit code 1, ``atexit`` handlers, buffered output flushed).

When a request is one this cannot reproduce exactly (interpreter options, another
``PYTHON*`` variable than the server was started with), or the server cannot be used,
:func:`run_python` starts a new interpreter instead, so the answer never depends on it.

Run as a script, this file is the server: it reads one JSON request per line on its
standard input and answers ``{"pid": N}`` when the child started and ``{"status": S}``
(the ``waitpid`` status) when it ended.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import TracebackType

__all__ = ["Finished", "arun_python", "run_python"]

SERVER = Path(__file__).resolve()


@dataclass(frozen=True)
class Finished:
    """What a finished ``python ARGS`` left: its exit code and its output, as bytes."""

    returncode: int
    stdout: bytes
    stderr: bytes


def _python_vars(env: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``env`` the interpreter reads at start-up (``PYTHON*``)."""
    return {key: value for key, value in env.items() if key.startswith("PYTHON")}


class _Server:
    """One fork server process and the pipe it is driven through, one request at a time."""

    def __init__(self) -> None:
        self.env = dict(os.environ)
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=self.env,
            cwd=SERVER.parent,
        )
        self.lock = threading.Lock()
        self._buffer = b""
        ready = self._reply(60.0)
        if ready != {"ready": True}:
            raise RuntimeError(f"the fork server did not start: {ready!r}")

    def _reply(self, timeout: float | None) -> dict[str, Any] | None:
        """The server's next JSON line; ``None`` if it does not come within ``timeout``."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            readable, _, _ = select.select([fd], [], [], timeout)
            if not readable:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError("the fork server exited")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def run(
        self, argv: list[str], env: dict[str, str], cwd: str, stdin: bytes, timeout: float
    ) -> Finished:
        """Run ``python ARGV`` in a forked child; raise ``TimeoutError`` after ``timeout`` s."""
        with tempfile.TemporaryDirectory(prefix="bitlens-fork-") as scratch:
            streams = {name: os.path.join(scratch, name) for name in ("in", "out", "err")}
            Path(streams["in"]).write_bytes(stdin)
            request = {"argv": argv, "env": env, "cwd": cwd, "streams": streams}
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
            started = self._reply(60.0)
            if started is None or "pid" not in started:
                raise RuntimeError(f"the fork server did not fork: {started!r}")
            ended = self._reply(timeout)
            if ended is None:
                os.kill(started["pid"], signal.SIGKILL)
                self._reply(60.0)
                raise TimeoutError(f"python {' '.join(argv)[:80]} ran over {timeout} s")
            status = int(ended["status"])
            code = os.waitstatus_to_exitcode(status)
            out = Path(streams["out"]).read_bytes()
            err = Path(streams["err"]).read_bytes()
        return Finished(code, out, err)

    def close(self) -> None:
        """End the server (it exits when its standard input closes)."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


_server: _Server | None = None
_server_lock = threading.Lock()


def _shared_server() -> _Server | None:
    """This process's fork server, started on first use; ``None`` where there is no fork."""
    global _server
    if not hasattr(os, "fork"):
        return None
    with _server_lock:
        if _server is None or _server.process.poll() is not None:
            _server = _Server()
            import atexit

            atexit.register(_server.close)
        return _server


def _supported(argv: Sequence[str]) -> bool:
    """Whether the server reproduces ``python ARGV``: ``-m MODULE ...``, ``-c CODE ...``."""
    return len(argv) >= 2 and argv[0] in ("-m", "-c")


def run_python(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | os.PathLike[str] | None = None,
    stdin: bytes = b"",
    timeout: float = 60.0,
) -> Finished:
    """Run ``python ARGV`` with ``env`` as its whole environment, to the end.

    :param argv: the interpreter's arguments, ``-m MODULE ...`` or ``-c CODE ...`` to fork
    :param env: the process's environment (not merged with this one)
    :param cwd: its working directory (this one's by default)
    :param stdin: what it reads on its standard input
    :param timeout: seconds before it is killed and ``TimeoutError`` raised
    :raises TimeoutError: if it runs longer than ``timeout``
    """
    where = os.fspath(cwd) if cwd is not None else os.getcwd()
    server = _shared_server() if _supported(argv) else None
    if server is not None and _python_vars(env) == _python_vars(server.env):
        with server.lock:
            try:
                return server.run(list(argv), dict(env), where, stdin, timeout)
            except (EOFError, BrokenPipeError):  # the server died: a fresh interpreter
                pass
    try:
        done = subprocess.run(
            [sys.executable, *argv],
            input=stdin,
            env=dict(env),
            cwd=where,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise TimeoutError(f"python {' '.join(argv)[:80]} ran over {timeout} s") from exc
    return Finished(done.returncode, done.stdout, done.stderr)


async def arun_python(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | os.PathLike[str] | None = None,
    stdin: bytes = b"",
    timeout: float = 60.0,
) -> Finished:
    """:func:`run_python` from async code, in a worker thread (the event loop keeps running).

    :raises TimeoutError: if it runs longer than ``timeout``
    """
    import functools

    import anyio.to_thread

    call = functools.partial(run_python, argv, env=env, cwd=cwd, stdin=stdin, timeout=timeout)
    return await anyio.to_thread.run_sync(call)


# -- the server -----------------------------------------------------------------------------


def _read_line(buffer: bytearray) -> bytes | None:
    """The next request line from standard input (raw reads: nothing is left buffered)."""
    while b"\n" not in buffer:
        chunk = os.read(0, 65536)
        if not chunk:
            return None
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


def _serve() -> dict[str, Any] | None:
    """Answer requests until standard input closes; in a forked child, return its request."""
    import bitlens.cli  # noqa: F401 - the import every child then skips

    os.write(1, b'{"ready": true}\n')
    buffer = bytearray()
    while (line := _read_line(buffer)) is not None:
        request: dict[str, Any] = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            return request
        os.write(1, json.dumps({"pid": pid}).encode() + b"\n")
        _, status = os.waitpid(pid, 0)
        os.write(1, json.dumps({"status": status}).encode() + b"\n")
    return None


def _report(error: BaseException, traceback: TracebackType | None) -> NoReturn:
    """Print ``error`` from ``traceback`` on (the program's frames) and exit 1, as Python does."""
    error = error.with_traceback(traceback)
    sys.excepthook(type(error), error, traceback)
    sys.exit(1)


def _become(request: dict[str, Any]) -> None:
    """In the forked child: take the request's environment and streams, then run it."""
    import runpy

    streams: dict[str, str] = request["streams"]
    write = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for fd, name, flags in ((0, "in", os.O_RDONLY), (1, "out", write), (2, "err", write)):
        opened = os.open(streams[name], flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    option, target, *rest = request["argv"]
    if option == "-c":
        sys.argv = ["-c", *rest]
        sys.path[0] = ""
        code = compile(target, "<string>", "exec")
        try:
            exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
        except Exception as error:  # as the interpreter reports it: no frame of this file
            traceback = error.__traceback__
            _report(error, traceback.tb_next if traceback else None)
    else:
        sys.argv = [target, *rest]
        sys.path[0] = os.getcwd()
        try:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        except Exception as error:
            traceback = error.__traceback__
            while traceback is not None and traceback.tb_frame.f_code.co_filename in (
                __file__,
                runpy.__file__,
            ):
                traceback = traceback.tb_next
            _report(error, traceback)


if __name__ == "__main__":
    child = _serve()
    if child is not None:
        _become(child)
