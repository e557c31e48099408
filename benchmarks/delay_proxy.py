"""A TCP proxy that holds every byte for a fixed time each way: a network of known latency.

    python benchmarks/delay_proxy.py --target 127.0.0.1:6379 --one-way-ms 0.25 [--cpu 0]

It prints the port it listens on (one line, on stdout) and forwards every connection to
``--target``, delivering each chunk it reads ``--one-way-ms`` after it arrived, in order,
in both directions: a round trip through it costs twice that plus the proxy's own work
(measure the floor with a bare ``PING`` through it: :func:`ping_round_trip`). Each
direction of each connection has one thread, which stamps what it reads and sends each
chunk when it falls due (``select`` with a microsecond timeout waits for whichever comes
first); the process asks Linux for a timer slack of 1 ns, so a wait of 250 µs ends within
a few µs of its deadline instead of the default 50 µs. Kernel delay (``tc netem``) is more
faithful where the kernel has it; this works anywhere, as any process.

It stops on SIGTERM or when stdin closes.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import os
import select
import signal
import socket
import sys
import threading
import time

PR_SET_TIMERSLACK = 29


def _precise_sleeps() -> None:
    """Ask Linux to end this process' sleeps on time (timer slack 1 ns); no-op elsewhere."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)


def _pump(source: socket.socket, sink: socket.socket, delay: float) -> None:
    """Forward ``source`` to ``sink``, each chunk ``delay`` seconds after it was read.

    One thread per direction: ``select`` waits (to the microsecond) for the next byte to
    read or the next chunk to fall due, whichever comes first.
    """
    due: collections.deque[tuple[float, bytes]] = collections.deque()
    open_ = True
    try:
        while open_ or due:
            now = time.perf_counter()
            while due and due[0][0] <= now:
                sink.sendall(due.popleft()[1])
            if not open_:
                if due:
                    time.sleep(max(0.0, due[0][0] - time.perf_counter()))
                continue
            timeout = None if not due else max(0.0, due[0][0] - now)
            readable, _, _ = select.select([source], [], [], timeout)
            if readable:
                data = source.recv(262144)
                if data:
                    due.append((time.perf_counter() + delay, data))
                else:
                    open_ = False
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _serve(client: socket.socket, target: tuple[str, int], delay: float) -> None:
    try:
        upstream = socket.create_connection(target)
    except OSError:
        client.close()
        return
    for sock in (client, upstream):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=_pump, args=(upstream, client, delay), daemon=True)
    back.start()
    _pump(client, upstream, delay)
    back.join()
    client.close()
    upstream.close()


def ping_round_trip(host: str, port: int, pings: int = 200) -> float:
    """Median seconds of a bare ``PING`` round trip to ``host:port`` (a plain socket).

    :param host: where to connect (the proxy)
    :param port: its port
    :param pings: how many to time
    """
    samples: list[float] = []
    with socket.create_connection((host, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(pings + 10):
            t0 = time.perf_counter()
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(64)
                if not chunk:
                    raise ConnectionError("the proxy closed the connection")
                reply += chunk
            samples.append(time.perf_counter() - t0)
    samples = sorted(samples[10:])
    return samples[len(samples) // 2]


def main() -> None:
    """Listen, print the port, forward until SIGTERM or the end of stdin."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--one-way-ms", type=float, required=True, help="delay each way")
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to a CPU")
    args = parser.parse_args()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    _precise_sleeps()
    host, _, port = args.target.rpartition(":")
    target = (host, int(port))
    delay = args.one_way_ms / 1000
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    def watch_stdin() -> None:
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_serve, args=(client, target, delay), daemon=True).start()


if __name__ == "__main__":
    main()
