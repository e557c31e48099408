"""The executor: the only module that sends commands to Redis.

It takes finished command lists from the planner and the marking code, sends each as one
pipeline (inside MULTI/EXEC when it creates temp keys or writes), and hands back the raw
replies in order. redis-py's pipeline API is loosely typed (``pipe.setbit()`` claims to
return an ``Awaitable[int]``); that looseness stays in this module.

Why MULTI/EXEC makes temp keys safe: a query's ``BITOP`` into a temp key and the ``DEL`` of
that key travel in the same transaction. Redis runs a transaction whole or not at all;
if the connection drops or the caller is cancelled before ``EXEC`` arrives, the server
discards the queued commands, so no temp key can outlive its query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from ._plan import Capabilities, Command

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["Executor"]


class Executor:
    """Sends command lists as pipelines on a ``redis.asyncio`` client.

    :param client: the client to send on; the executor never closes it
    """

    __slots__ = ("_client", "capabilities")

    def __init__(self, client: Redis) -> None:
        self._client = client
        self.capabilities: Capabilities | None = None

    async def send(
        self, commands: Sequence[Command], *, transaction: bool, probe: bool = False
    ) -> list[object]:
        """Send ``commands`` in one round trip and return their replies in order.

        While the server's BITOP capabilities are unknown, an ``INFO server`` rides along
        with the first pipeline (no extra round trip) and its reply is consumed here.

        :param commands: the commands, each a tuple of arguments
        :param transaction: wrap them in MULTI/EXEC (atomic; required with temp keys)
        :param probe: learn the server's capabilities on this round trip if still unknown
        :raises redis.exceptions.RedisError: whatever the server or the connection raises
        """
        probe = probe and self.capabilities is None
        pipe: Any = self._client.pipeline(transaction=transaction)
        async with pipe:
            if probe:
                pipe.execute_command("INFO", "server")
            for command in commands:
                pipe.execute_command(*command)
            replies = cast("list[object]", await pipe.execute())
        if probe:
            info = replies.pop(0)
            self.capabilities = Capabilities.from_info(
                cast("Mapping[str, object]", info) if isinstance(info, Mapping) else {}
            )
        return replies
