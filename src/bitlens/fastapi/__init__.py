"""bitlens in FastAPI (and Starlette) applications, in a few lines.

Needs ``pip install 'bitlens[fastapi]'``; ``import bitlens`` never imports FastAPI.

Example::

    from typing import Annotated

    from fastapi import Depends, FastAPI, Request

    from bitlens import MonthEvents, Tracker
    from bitlens.fastapi import bitlens_lifespan, get_tracker, mark_requests, router

    app = FastAPI(lifespan=bitlens_lifespan("redis://localhost:6379/0", prefix="app"))
    mark_requests(app, lambda request: getattr(request.state, "user_id", None))
    app.include_router(router(), prefix="/bitlens")  # the dashboard: /bitlens/


    @app.get("/active")
    async def active(tracker: Annotated[Tracker, Depends(get_tracker)]) -> int:
        return await tracker.count(MonthEvents.from_date("request"))
"""

from ..dashboard import MarkingStats, RequestMarker
from ._integration import (
    STATE_KEY,
    BitlensMiddleware,
    bitlens_lifespan,
    get_tracker,
    mark_requests,
    router,
)

__all__ = [
    "STATE_KEY",
    "BitlensMiddleware",
    "MarkingStats",
    "RequestMarker",
    "bitlens_lifespan",
    "get_tracker",
    "mark_requests",
    "router",
]


# Show users bitlens.fastapi.BitlensMiddleware, not bitlens.fastapi._integration.…
def _rehome() -> None:
    from contextlib import suppress

    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith("bitlens.fastapi._"):
            with suppress(AttributeError, TypeError):
                obj.__module__ = "bitlens.fastapi"


_rehome()
del _rehome
