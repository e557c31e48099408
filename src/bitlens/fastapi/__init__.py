"""bitlens in FastAPI (and Starlette) applications, in a few lines.

Needs ``pip install 'bitlens[fastapi]'``; ``import bitlens`` never imports FastAPI.

Example::

    from typing import Annotated

    from fastapi import Depends, FastAPI, Request

    from bitlens import MonthEvents, Tracker
    from bitlens.fastapi import RequestMarker, install, tracker_from

    app = FastAPI()
    install(
        app,
        "redis://localhost:6379/0",
        prefix="app",
        mark=RequestMarker(lambda request: getattr(request.state, "user_id", None)),
    )  # the dashboard: /bitlens/


    @app.get("/active")
    async def active(tracker: Annotated[Tracker, Depends(tracker_from)]) -> int:
        return await tracker.count(MonthEvents.from_date("request"))

For finer control: ``FastAPI(lifespan=bitlens_lifespan(url))``, :func:`mark_requests` and
``app.include_router(router(), prefix="/bitlens")``, which :func:`install` combines.
"""

from ..web import MarkingStats, RequestMarker
from ._integration import (
    STATE_KEY,
    BitlensMiddleware,
    bitlens_lifespan,
    install,
    mark_requests,
    router,
    tracker_from,
)

__all__ = [
    "STATE_KEY",
    "BitlensMiddleware",
    "MarkingStats",
    "RequestMarker",
    "bitlens_lifespan",
    "install",
    "mark_requests",
    "router",
    "tracker_from",
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
