"""The dashboard page: one self-contained HTML file shipped with the package."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["JSON_HEADERS", "Page", "page"]

JSON_HEADERS: Final[Mapping[str, str]] = MappingProxyType(
    {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
)
"""Headers every JSON answer of the dashboard API carries."""


@dataclass(frozen=True, slots=True)
class Page:
    """The dashboard page and the headers to serve it with.

    :param body: the UTF-8 HTML: inline CSS and JavaScript, no external resource
    :param content_type: ``text/html; charset=utf-8``
    :param headers: a Content-Security-Policy allowing only the page's own inline script
        and style (by hash) and requests to its own origin, plus caching and sniffing
        headers
    """

    body: bytes
    content_type: str
    headers: Mapping[str, str]


def _hashes(tag: str, html: str) -> str:
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks
    )


@cache
def page() -> Page:
    """Return the dashboard page (read from the package once).

    The page fetches the JSON endpoints relative to its own URL (``<mount>/counts`` for a
    page at ``<mount>/``), so it works under any prefix. It draws the chart as inline SVG
    and the retention heatmap as a table, and sets every text with ``textContent``.
    """
    html = resources.files("bitlens.web").joinpath("dashboard.html").read_text("utf-8")
    policy = "; ".join(
        [
            "default-src 'none'",
            f"script-src {_hashes('script', html)}",
            f"style-src {_hashes('style', html)}",
            "connect-src 'self'",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'self'",
        ]
    )
    return Page(
        body=html.encode("utf-8"),
        content_type="text/html; charset=utf-8",
        headers=MappingProxyType(
            {
                "Content-Security-Policy": policy,
                "Cache-Control": "no-cache",
                "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff",
            }
        ),
    )
