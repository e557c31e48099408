"""The executor: the only module that sends commands to Redis.

It takes finished command lists from the planner and the marking code and sends each list
in one write on a pooled connection of the ``redis.asyncio`` client, then reads the replies
in order. It uses redis-py's connection (handshake, auth, TLS, parser) but not its
``Pipeline`` machinery: the list is packed once and no per-command response callback runs,
which roughly halves the client CPU per round trip (see the README's benchmarks).

Faults:

* A dropped connection raises redis-py's ``ConnectionError`` or is retried according to the
  client's ``Retry`` policy. Retrying is safe: marks are idempotent (SETBIT), and a query
  creates and deletes its temp keys inside one atomic script or transaction.
* Cancellation at any await closes the connection (redis-py disconnects on any exception
  while reading or writing), so no half-read reply can ever reach the next caller.
* Error replies are read to the end of the batch before the first one is raised, so the
  connection stays in step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
from redis.exceptions import ResponseError

from ._plan import Capabilities
from ._writes import Packed

if TYPE_CHECKING:
    from collections.abc import Sequence

    from redis.asyncio import Redis

    from ._writes import Command

__all__ = ["Executor", "pack", "parse_info"]


def pack(commands: Sequence[Command]) -> bytes:
    """Encode commands as one RESP request (arrays of bulk strings), ready to write.

    A leaner twin of redis-py's ``pack_commands``: one bytes object, no per-argument
    encoder objects, and :class:`~bitlens._writes.Packed` blocks copied as they are.

    :param commands: the commands, each a tuple of ``str``, ``int``, ``bytes`` or ``Packed``
    :raises TypeError: for another argument type
    """
    out: list[bytes] = []
    append = out.append
    for command in commands:
        header = len(command)
        for arg in command:
            if isinstance(arg, Packed):
                header += arg.count - 1
        append(b"*%d\r\n" % header)
        for arg in command:
            if isinstance(arg, str):
                data = arg.encode()
            elif isinstance(arg, bytes):
                data = arg
            elif isinstance(arg, int) and not isinstance(arg, bool):
                data = b"%d" % arg
            elif isinstance(arg, Packed):
                append(arg.data)
                continue
            else:
                raise TypeError(f"cannot send {arg!r} to Redis")
            append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


def parse_info(reply: object) -> dict[str, str]:
    """Parse an ``INFO`` reply (bytes or str, RESP2 or RESP3) into a mapping.

    :param reply: the raw reply
    """
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    if text.startswith("txt:"):
        text = text[4:]
    info: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            key, _, value = line.partition(":")
            info[key] = value
    return info


class Executor:
    """Sends command lists in one round trip each on a ``redis.asyncio`` client's pool.

    :param client: the client whose connection pool to use; the executor never closes it
    """

    __slots__ = ("_client", "_slots", "capabilities")

    def __init__(self, client: Redis) -> None:
        self._client = client
        self.capabilities: Capabilities | None = None
        # redis-py's pool raises MaxConnectionsError past its limit (100 by default);
        # bitlens queues its own callers instead, so thousands of tasks can share a tracker.
        limit = getattr(client.connection_pool, "max_connections", None)
        self._slots = anyio.Semaphore(
            limit if isinstance(limit, int) and 0 < limit < 2**31 else 100
        )

    async def send(
        self, commands: Sequence[Command], *, transaction: bool = False, probe: bool = False
    ) -> list[object]:
        """Send ``commands`` in one round trip and return their replies in order.

        While the server's BITOP capabilities are unknown and ``probe`` is set, an
        ``INFO server`` rides along (no extra round trip) and is consumed here.

        :param commands: the commands, each a tuple of arguments
        :param transaction: wrap them in MULTI/EXEC (atomic per server)
        :param probe: learn the server's capabilities on this round trip if still unknown
        :raises redis.exceptions.ResponseError: the first error reply, after all were read
        :raises redis.exceptions.ConnectionError: when the connection fails (after retries)
        """
        probing = probe and self.capabilities is None
        wire: list[Command] = list(commands)
        if probing:
            wire.insert(0, ("INFO", "server"))
        if transaction:
            wire = [("MULTI",), *wire, ("EXEC",)]
        pool: Any = self._client.connection_pool
        async with self._slots:
            replies = await self._round_trip(pool, wire)
        if transaction:
            replies = _exec_replies(replies)
        if probing:
            self.capabilities = Capabilities.from_info(parse_info(replies.pop(0)))
        return replies

    async def _round_trip(self, pool: Any, wire: list[Command]) -> list[object]:
        packed = pack(wire)
        conn: Any = await pool.get_connection()
        try:

            async def attempt() -> list[object]:
                await conn.send_packed_command(packed, check_health=False)
                return await _read_all(conn, len(wire))

            async def on_failure(error: Exception) -> None:
                await conn.disconnect()

            replies: list[object] = await conn.retry.call_with_retry(attempt, on_failure)
        finally:
            with anyio.CancelScope(shield=True):
                await pool.release(conn)
        return replies


async def _read_all(conn: Any, count: int) -> list[object]:
    """Read ``count`` replies; raise the first error reply only after reading them all."""
    replies: list[object] = []
    first_error: ResponseError | None = None
    for _ in range(count):
        try:
            replies.append(await conn.read_response())
        except ResponseError as error:
            first_error = first_error or error
            replies.append(error)
    if first_error is not None:
        raise first_error
    return replies


def _exec_replies(replies: list[object]) -> list[object]:
    """Return the replies of the commands inside MULTI/EXEC (the EXEC array)."""
    result = replies[-1]
    if not isinstance(result, list):
        raise ResponseError(f"unexpected EXEC reply {result!r}")
    for item in result:  # pyright: ignore[reportUnknownVariableType]
        if isinstance(item, ResponseError):
            raise item
    return list(result)  # pyright: ignore[reportUnknownArgumentType]
