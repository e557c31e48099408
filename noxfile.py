"""Developer sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s typecheck``, ``nox -s demo``.

``docs``, ``bench`` and ``soak`` run only when asked (``nox -s docs``, ``nox -s bench``,
``nox -s soak``).
Every session forwards its posargs.
"""

from __future__ import annotations

import os

import nox

nox.needs_version = ">=2025.2.9"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_venv = "yes"

PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHONS: list[str] = nox.project.python_versions(PYPROJECT)
LATEST = PYTHONS[-1]
DEV = "3.11"


def _group(name: str) -> list[str]:
    return list(nox.project.dependency_groups(PYPROJECT, name))


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite against real redis-server processes (every available binary).

    The dashboard's browser tests do not depend on Python or the server binary, so they
    run once: the newest Python installs playwright and requires Chromium
    (``BITLENS_REQUIRE_BROWSER=1``: a missing browser fails); the others skip them.
    """
    newest = session.python == LATEST
    session.install("-e", ".", *_group("test"), *(_group("browser") if newest else []))
    env = {"BITLENS_REQUIRE_BROWSER": "1"} if newest else {}
    # Two workers (one per core here): each starts its own private servers and cluster.
    session.run("python", "-m", "pytest", "-n", "auto", *session.posargs, env=env)


@nox.session(python=DEV)
def lint(session: nox.Session) -> None:
    """Check lint and formatting with ruff."""
    session.install(*_group("lint"))
    session.run("ruff", "check", *session.posargs, ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=DEV)
def typecheck(session: nox.Session) -> None:
    """Type-check src and tests with mypy (strict) and pyright; verify the public API."""
    session.install("-e", ".", *_group("typecheck"), "nox")
    session.run("mypy", *session.posargs)
    session.run("pyright", "src", "tests")
    session.run("pyright", "--verifytypes", "bitlens", "--ignoreexternal")


@nox.session(python=DEV)
def demo(session: nox.Session) -> None:
    """Run the demo: synthetic activity on an embedded Redis (or on $REDIS_URL)."""
    session.install("-e", ".[embedded]")
    session.run(
        "bitlens", "demo", *session.posargs, env={"REDIS_URL": os.environ.get("REDIS_URL", "")}
    )


@nox.session(default=False)
def docs(session: nox.Session) -> None:
    """Build the documentation site into docs/_build/html; any Sphinx warning is an error.

    Runs on the Python that runs nox (any supported one). ``-E`` rebuilds every page, so a
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


@nox.session(python=DEV, default=False)
def bench(session: nox.Session) -> None:
    """Run the benchmarks and print the tables of docs/benchmarks.md (server, client on own CPUs).

    bitmapist 3.119 needs redis-py < 6, so it runs from a venv of its own beside this one,
    ``.nox/bench-bitmapist``, which ``benchmarks/run.py`` creates on first use.
    """
    session.install("-e", ".[embedded]")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(python=DEV, default=False)
def soak(session: nox.Session) -> None:
    """Run the bounded soak (default 60 s, 200 tasks, one server restart); fails on any check.

    Every write path and the queries run at once on an embedded AOF server that is killed
    with SIGKILL halfway and started again; see ``benchmarks/soak.py --help``.
    """
    session.install("-e", ".[embedded]")
    session.run("python", "benchmarks/soak.py", *session.posargs)
