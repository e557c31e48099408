"""``bitlens serve``: the aiohttp dashboard on localhost, until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING, Protocol

import anyio

from ..embedded import EmbeddedRedis
from ._common import (
    CommandError,
    UsageError,
    add_connection_options,
    non_negative_int,
    open_tracker,
    resolve_url,
)

if TYPE_CHECKING:
    from argparse import _SubParsersAction  # pyright: ignore[reportPrivateUsage]
    from collections.abc import Awaitable, Callable

    from .._tracker import Tracker

__all__ = [
    "ServeDashboard",
    "add_serve_parser",
    "add_listen_options",
    "serve_dashboard",
    "serve_until_stopped",
]


class ServeDashboard(Protocol):
    """The interface of ``bitlens.aiohttp.serve_dashboard`` that ``serve`` relies on."""

    def __call__(
        self,
        tracker: Tracker,
        host: str = ...,
        port: int = ...,
        *,
        on_ready: Callable[[str], object] | None = ...,
    ) -> Awaitable[None]: ...


def serve_dashboard() -> ServeDashboard:
    """Import ``bitlens.aiohttp.serve_dashboard`` now (aiohttp is an optional extra).

    :raises CommandError: with an install hint if aiohttp is missing
    """
    try:
        from ..aiohttp import serve_dashboard
    except ModuleNotFoundError as exc:
        if exc.name == "aiohttp" or (exc.name or "").startswith("aiohttp."):
            raise CommandError(
                "the dashboard needs aiohttp: pip install 'bitlens[aiohttp]'"
            ) from None
        raise CommandError(f"the dashboard is not available: {exc}") from None
    return serve_dashboard


def add_serve_parser(sub: _SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``serve`` subcommand.

    :param sub: the subparsers of the ``bitlens`` parser
    """
    parser = sub.add_parser(
        "serve",
        help="serve the web dashboard on localhost until Ctrl-C (needs bitlens[aiohttp])",
        description=(
            "Serve the bitlens dashboard (aiohttp) of the data under --prefix, "
            "until Ctrl-C or SIGTERM. Without --url or REDIS_URL an empty embedded "
            "redis-server is started (bitlens[embedded]), which is only good for a look: "
            "`bitlens demo --serve` serves a dashboard of sample data instead."
        ),
    )
    add_listen_options(parser)
    add_connection_options(parser, url_help="else an embedded, empty redis-server")
    parser.set_defaults(run=_run, parser=parser)


def add_listen_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--host`` and ``--port``, where the dashboard listens.

    :param parser: the subcommand's parser
    """
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default: 127.0.0.1, this machine only)",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=8040,
        help="the TCP port to listen on; 0 picks a free one (default: 8040)",
    )


def _port(text: str) -> int:
    """Return ``text`` as a TCP port, 0 to 65535 (an ``argparse`` type)."""
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return value


async def serve_until_stopped(
    args: argparse.Namespace,
    url: str,
    serve: ServeDashboard,
    *,
    command: str = "serve",
    on_ready: Callable[[str], object] | None = None,
) -> None:
    """Serve the dashboard of ``url`` (``args.prefix``, ``args.tz``) until SIGINT or SIGTERM.

    :param args: the parsed arguments (``prefix``, ``tz``, ``cluster``, ``host``, ``port``)
    :param url: the server's URL
    :param serve: :func:`bitlens.aiohttp.serve_dashboard`
    :param command: the subcommand's name, for messages
    :param on_ready: called with the page's URL (default: print it)
    :raises CommandError: if the address cannot be bound
    """
    async with open_tracker(args, url) as tracker, anyio.create_task_group() as group:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    name = signal.Signals(signum).name
                    print(f"bitlens {command}: {name} received, stopping", file=sys.stderr)
                    group.cancel_scope.cancel()
                    return

        def ready(where: str) -> None:
            print(f"bitlens {command}: dashboard on {where} (Ctrl-C to stop)", flush=True)

        group.start_soon(stop_on_signal)
        try:
            await serve(tracker, host=args.host, port=args.port, on_ready=on_ready or ready)
        except OSError as exc:  # e.g. the port is taken
            raise CommandError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
        group.cancel_scope.cancel()


def _run(args: argparse.Namespace) -> int:
    """Run ``bitlens serve``."""
    serve = serve_dashboard()
    url = resolve_url(args)
    with ExitStack() as stack:
        if url is None:
            if args.cluster:
                raise UsageError("--cluster needs --url (or REDIS_URL) naming a cluster node")
            server = stack.enter_context(EmbeddedRedis())
            url = server.url
            print(
                f"bitlens serve: no --url or REDIS_URL: using an embedded, empty redis-server "
                f"at {url} (for sample data to look at, run `bitlens demo --serve`)",
                file=sys.stderr,
            )
        anyio.run(serve_until_stopped, args, url, serve)
    return 0
