"""Every code block of README.md and docs/*.md runs against a real server, or says who runs it.

The pages mark their blocks with an HTML comment on the line just before the fence (GitHub
and Sphinx both hide it):

* no marker on a ``python`` block: this module runs it as a script against a private real
  server (``$REDIS_URL`` points at it); it must exit with status 0.
* ``<!-- docs: output of the block above -->`` on a ``text`` block: the exact standard
  output of the nearest ``python`` block before it, which this module runs and compares.
* ``<!-- docs: run by tests/FILE.py::TEST_NAME -->``: that test runs the block (it checks
  printed values line by line, sends requests to an app, runs a command-line transcript or
  needs a cluster); the test must exist and its file must name the page.
* ``<!-- docs: not run: REASON -->``: shown only; the reason says why.
* ``console`` blocks are shell commands for a reader's terminal (installs, nox sessions):
  not run unless a ``run by`` marker hands them to a test.

Any other block without a marker fails :func:`test_every_block_is_run_or_says_why`. Fences
whose info string is a MyST directive (``{toctree}``, ``{include}``, ...) are not code.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from _forkserver import run_python
from bitlens import MonthEvents, Tracker
from bitlens.embedded import EmbeddedRedis

if TYPE_CHECKING:
    from harness import EmbeddedCluster

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

MARKER = re.compile(r"<!-- docs: (.+?) -->")
FENCE = re.compile(r"^(`{3,})([^`\n]*)$")
RUN_BY = re.compile(r"run by (tests/[\w/]+\.py)::(test_\w+)")
UTC = dt.timezone.utc
DOCS_URL = "https://bitlens.readthedocs.io/"


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page: where it is, its language, marker and text."""

    page: Path
    line: int
    lang: str
    marker: str | None
    code: str

    @property
    def where(self) -> str:
        """Return ``page:line`` for messages and test ids."""
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """Return the fenced code blocks of ``page``, MyST directives left out.

    :param page: a Markdown file
    """
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opened = FENCE.match(lines[i])
        if opened is None:
            i += 1
            continue
        fence, info = opened.group(1), opened.group(2).strip()
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith(fence))
        before = lines[i - 1] if i else ""
        marker = MARKER.fullmatch(before.strip())
        if not info.startswith("{"):
            found.append(
                Block(
                    page=page,
                    line=i + 1,
                    lang=info.split()[0] if info else "",
                    marker=marker.group(1) if marker else None,
                    code="".join(f"{line}\n" for line in lines[i + 1 : end]),
                )
            )
        i = end + 1
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks(page)]


def self_run_blocks() -> list[tuple[Block, Block | None]]:
    """Return each unmarked python block with the output block that follows it, if any."""
    pairs: list[tuple[Block, Block | None]] = []
    for block in ALL_BLOCKS:
        if block.marker == "output of the block above":
            assert pairs, f"{block.where}: no python block before this output"
            assert pairs[-1][0].page == block.page, f"{block.where}: no python block before it"
            assert pairs[-1][1] is None, f"{block.where}: a second output for one block"
            pairs[-1] = (pairs[-1][0], block)
        elif block.lang == "python" and block.marker is None:
            pairs.append((block, None))
    return pairs


def run_script(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as ``python -c`` (a process forked after the import) and return what it did.

    :param code: the program
    :param env: variables added to this process's environment
    :param cwd: the working directory
    """
    done = run_python(["-c", code], env={**os.environ, **env}, cwd=cwd, timeout=120)
    return subprocess.CompletedProcess(
        [sys.executable, "-c", code], done.returncode, done.stdout.decode(), done.stderr.decode()
    )


@pytest.mark.parametrize(
    ("block", "output"), self_run_blocks(), ids=[b.where for b, _ in self_run_blocks()]
)
def test_python_block_runs_against_a_real_server(
    block: Block, output: Block | None, redis_binary: str, tmp_path: Path
) -> None:
    """The block runs as written on a private server and prints its output block, if any."""
    with EmbeddedRedis(redis_binary) as server:
        done = run_script(block.code, {"REDIS_URL": server.url}, tmp_path)
    assert done.returncode == 0, f"{block.where}:\n{done.stderr}"
    if output is not None:
        assert done.stdout == output.code, output.where


def test_every_block_is_run_or_says_why() -> None:
    """Each block is run here, by a named test, is a console session, or gives its reason."""
    unmarked = [
        b.where for b in ALL_BLOCKS if b.marker is None and b.lang not in ("python", "console")
    ]
    assert unmarked == []
    markers = {b.marker for b in ALL_BLOCKS if b.marker is not None}
    known = re.compile(r"output of the block above|not run: \S.*|run by tests/\S+::test_\w+")
    assert sorted(m for m in markers if not known.fullmatch(m)) == []


def test_run_by_markers_name_tests_that_read_the_page() -> None:
    """Each `run by FILE::TEST` names a test defined in FILE, and FILE names the page."""
    wrong: list[str] = []
    for block in ALL_BLOCKS:
        named = RUN_BY.fullmatch(block.marker or "")
        if named is None:
            continue
        path = ROOT / named.group(1)
        source = path.read_text("utf-8") if path.exists() else ""
        if not re.search(rf"^(?:async )?def {named.group(2)}\(", source, re.M):
            wrong.append(f"{block.where}: {named.group(2)} not in {named.group(1)}")
        if block.page.name not in source:
            wrong.append(f"{block.where}: {named.group(1)} does not read {block.page.name}")
    assert wrong == []


def defined_tests() -> set[str]:
    """Return the names of every test function defined under tests/."""
    return {
        name
        for path in (ROOT / "tests").rglob("test_*.py")
        for name in re.findall(r"^(?:async )?def (test_\w+)", path.read_text("utf-8"), re.M)
    }


def test_every_guarantee_names_a_test_that_exists() -> None:
    """Each test the Guarantees page cites is defined somewhere under tests/."""
    cited = set(re.findall(r"`(test_\w+)`", (DOCS / "guarantees.md").read_text("utf-8")))
    assert len(cited) >= 10
    assert sorted(cited - defined_tests()) == []


def test_every_test_a_page_cites_exists() -> None:
    """No page of the docs or the README cites a test that is not defined under tests/."""
    cited = {
        (page.name, name)
        for page in PAGES
        for name in re.findall(r"`(test_\w+)`", page.read_text("utf-8"))
    }
    defined = defined_tests()
    assert sorted((page, name) for page, name in cited if name not in defined) == []


def test_readme_links_are_absolute() -> None:
    """The README links only to absolute URLs, so no link breaks on a package index."""
    text = (ROOT / "README.md").read_text("utf-8")
    targets = re.findall(r"\]\(([^)]+)\)", text) + re.findall(r"<(https?://[^>]+)>", text)
    assert targets
    assert [t for t in targets if not t.startswith("https://")] == []
    docs_pages = {t.removeprefix(f"{DOCS_URL}en/latest/") for t in targets if DOCS_URL in t}
    missing = [
        t
        for t in docs_pages
        if t
        and not (DOCS / t.replace(".html", ".md")).exists()
        and not (DOCS / t.replace(".html", ".rst")).exists()
    ]
    assert missing == []


def test_every_guide_is_in_the_toctree() -> None:
    """Each page under docs/ is listed in the index's table of contents."""
    index = (DOCS / "index.md").read_text("utf-8")
    listed = set(re.findall(r"^([\w/-]+)$", index, re.M))
    pages = {p.stem for p in DOCS.glob("*.md")} - {"index"}
    assert sorted(pages - listed) == []


# -- blocks run by this module's own tests -----------------------------------------------------

ACL_PAGE = DOCS / "access-control.md"


def test_the_guides_acl_users_are_the_ones_tested() -> None:
    """The ACL lines of docs/access-control.md are the users tests/faults/test_acl.py runs."""
    from faults import test_acl

    (block, *_) = [b for b in ALL_BLOCKS if b.page == ACL_PAGE]
    shown = {}
    for line in block.code.splitlines():
        _, _, user, rules = line.split(" ", 3)
        shown[user] = re.sub(r"^on >\w+ ", "on >", rules).replace("~bl:*", "~acl:*")
    tested = {
        "bl-writer": test_acl.WRITER,
        "bl-reader": test_acl.READER,
        "bl-admin": test_acl.ADMIN,
    }
    assert shown == {user: re.sub(r"^on >\w+ ", "on >", rules) for user, rules in tested.items()}


def test_the_guides_read_only_user_is_the_one_tested() -> None:
    """The read-only ACL lines of docs/access-control.md are those test_acl.py creates."""
    from faults import test_acl

    (_, block, *_) = [b for b in ALL_BLOCKS if b.page == ACL_PAGE]
    shown = [line.split(" ", 3)[3] for line in block.code.splitlines() if line.startswith("ACL")]
    tested = [
        " ".join(test_acl._read_only_rules("bl", version))  # pyright: ignore[reportPrivateUsage]
        for version in ((7, 0, 0), (6, 2, 0))
    ]
    normalised = [re.sub(r"^on >\w+ ", "on >", rules) for rules in shown]
    assert normalised == [re.sub(r"^on >\w+ ", "on >", rules) for rules in tested]


CLUSTER_PAGE = DOCS / "cluster.md"


@pytest.mark.anyio
async def test_the_cluster_example_counts_on_a_real_cluster(
    redis_cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    """The example of docs/cluster.md marks two shards on a real cluster and counts them."""
    (block,) = [b for b in ALL_BLOCKS if b.page == CLUSTER_PAGE and b.lang == "python"]
    code = block.code.replace('prefix="clustered"', f'prefix="doc{os.getpid()}"')
    assert code.count(f'prefix="doc{os.getpid()}"') == 2
    done = run_script(code, {"REDIS_CLUSTER_URL": redis_cluster.url}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "2\n"
    async with Tracker(redis_cluster.url, cluster=True, prefix=f"doc{os.getpid()}") as tracker:
        assert [u async for u in tracker.members(MonthEvents("active", 2026, 11))] == [5, 3 << 20]


REFERENCE = {
    "bitlens": "bitlens",
    "bitlens.cohort": "cohort",
    "bitlens.fastapi": "fastapi",
    "bitlens.aiohttp": "aiohttp",
    "bitlens.web": "web",
    "bitlens.cli": "cli",
}


@pytest.mark.parametrize("module", sorted(REFERENCE))
def test_the_api_reference_documents_every_public_name(module: str) -> None:
    """Each name in the module's __all__ has an autodoc entry on its reference page."""
    import importlib

    public = set(importlib.import_module(module).__all__) - {"__version__"}
    page = (DOCS / "reference" / f"{REFERENCE[module]}.rst").read_text("utf-8")
    documented = set(re.findall(r"^\.\. auto\w+:: (?:[\w.]+\.)?(\w+)$", page, re.M))
    assert sorted(public - documented) == []


CLI_PAGE = DOCS / "cli.md"


async def serve_until_interrupted(line: str, env: dict[str, str]) -> None:
    """Run a ``bitlens serve`` command line until it prints its URL, then interrupt it.

    :param line: the command line (no shell syntax)
    :param env: its environment
    """
    with anyio.fail_after(60):
        async with await anyio.open_process(shlex.split(line), env=env) as process:
            assert process.stdout is not None
            printed = b""
            async for chunk in process.stdout:
                printed += chunk
                if b" on http://" in printed:  # serve and demo --serve alike
                    break
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0


@pytest.mark.anyio
async def test_the_cli_guides_commands_run(redis_binary: str, tmp_path: Path) -> None:
    """Each command of docs/cli.md's first block runs on marked data (servers only start)."""
    (block, *_) = [b for b in ALL_BLOCKS if b.page == CLI_PAGE and b.lang == "console"]
    commands = [line.split("  #")[0].strip() for line in block.code.splitlines()]
    assert all(c.startswith("bitlens ") for c in commands)
    with EmbeddedRedis(redis_binary) as server:
        async with Tracker(server.url) as tracker:  # the commands read the default prefix
            for day in (1, 8, 15, 22, 29):
                at = dt.datetime(2026, 11, day, 12, tzinfo=UTC)
                await tracker.mark_events([("active", u, at) for u in range(day, day + 40)])
            await tracker.mark_event("signed_up", 7, dt.datetime(2026, 11, 24, tzinfo=UTC))
        for command in commands:
            line = command.replace("bitlens ", f"{sys.executable} -m bitlens ", 1)
            env = {**os.environ, "REDIS_URL": server.url}
            if " serve " in command or "--serve" in command:  # serves until Ctrl-C
                served = line.replace("--port 8040", "--port 0")
                if "--serve" in command:  # the demo's own embedded Redis, on a free port
                    served += " --port 0 --users 500 --weeks 2"
                    env = {key: value for key, value in env.items() if key != "REDIS_URL"}
                await serve_until_interrupted(served, env)
                continue
            with anyio.fail_after(120):
                done = await anyio.run_process(
                    ["bash", "-c", line], env=env, cwd=tmp_path, check=False
                )
            out, err = done.stdout.decode(), done.stderr.decode()
            answered_false = "--contains" in command and out == "false\n"
            assert done.returncode == (1 if answered_false else 0), (command, err)
            assert out or "> " in command, command
    assert (tmp_path / "churned.txt").read_text() == "7\n"
