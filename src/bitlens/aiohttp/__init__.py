"""bitlens in aiohttp applications, in a few lines.

Needs ``pip install 'bitlens[aiohttp]'``; ``import bitlens`` never imports aiohttp.

Example::

    from aiohttp import web

    from bitlens import MonthEvents
    from bitlens.aiohttp import RequestMarker, install, tracker_from


    async def active(request: web.Request) -> web.Response:
        count = await tracker_from(request).count(MonthEvents.from_date("request"))
        return web.json_response(count)


    app = web.Application()
    app.router.add_get("/active", active)
    install(
        app,
        "redis://localhost:6379/0",
        prefix="app",
        mark=RequestMarker(lambda request: request.get("user_id")),
    )  # the dashboard: /bitlens/

:func:`serve_dashboard` serves the dashboard alone (``bitlens serve``).
"""

from ..web import MarkingStats, RequestMarker
from ._integration import (
    TRACKER_KEY,
    add_routes,
    create_app,
    install,
    middleware,
    serve_dashboard,
    tracker_from,
)

__all__ = [
    "TRACKER_KEY",
    "MarkingStats",
    "RequestMarker",
    "add_routes",
    "create_app",
    "install",
    "middleware",
    "serve_dashboard",
    "tracker_from",
]


# Show users bitlens.aiohttp.install, not bitlens.aiohttp._integration.install.
def _rehome() -> None:
    from contextlib import suppress

    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith("bitlens.aiohttp._"):
            with suppress(AttributeError, TypeError):
                obj.__module__ = "bitlens.aiohttp"


_rehome()
del _rehome
