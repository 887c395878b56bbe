"""A request body over a route's limit is refused before it is read (the API's error shape, 413).

Two parts, one limit: the route's own `max_body_size` (FastAPI: set on the route, or on its router for every route
of it) stops a body as it streams in, with or without a declared length, as soon as it passes the limit;
`DeclaredLengthFirst`, outermost, answers a declared Content-Length over the same limit before anything runs (the
token check included), in the API's error shape. `route_limits` reads the limits off the routers, so the two never
disagree.
"""

import re
from collections.abc import Callable, Iterable

from fastapi.responses import JSONResponse

from raiox.kit.errors import TooLarge

# a JSON request body (a decision, a note, a mark): the largest the API takes (an approval naming 60 implants and its
# message) is a few tens of KB; nothing past this is read or parsed
JSON_MAX_BODY = 2**20


def too_large(limit: int) -> str:
    return f"request body over {limit} bytes"


def route_limits(*routers: Iterable) -> dict[str, int]:
    """Each route's body limit (its own `max_body_size`, else its router's), by path template, for the routes of
    ROUTERS (FastAPI `APIRouter`s, their prefix in each route's path) that have one; a path several routes share
    keeps the largest of their limits (never refuse what one of them takes)."""
    limits: dict[str, int] = {}
    for router in routers:
        for route in router.routes:
            limit = getattr(route, "max_body_size", None) or getattr(router, "max_body_size", None)
            if limit is not None and getattr(route, "path", None):
                limits[route.path] = max(limit, limits.get(route.path, 0))
    return limits


def _pattern(template: str) -> re.Pattern:
    from starlette.routing import compile_path

    return compile_path(template)[0]


class DeclaredLengthFirst:
    """ASGI middleware: a request to one of LIMITS' paths (templates such as `/cases/{case_id}/approve`) whose declared
    Content-Length passes the path's limit is answered 413 `{"error": "too_large", ...}` before anything is read.
    (The route's own `max_body_size` stops a chunked body, with no declared length, as soon as it passes the limit,
    in the same shape; Starlette answers a declared one in plain text, and only once the route has answered, which is
    what this is for.) REFUSED(path), if given, is called for each one (to count it where the route would have)."""

    def __init__(self, app, limits: dict[str, int], refused: Callable[[str], None] | None = None) -> None:
        self.app, self.refused = app, refused
        self.limits = [(_pattern(path), limit) for path, limit in limits.items()]
        self.smallest = min((limit for _p, limit in self.limits), default=None)

    def _limit(self, path: str) -> int | None:
        return next((limit for pattern, limit in self.limits if pattern.match(path)), None)

    async def __call__(self, scope, receive, send) -> None:
        declared = b""
        if scope["type"] == "http" and self.smallest is not None:
            declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.smallest:
            limit = self._limit(scope["path"])
            if limit is not None and int(declared) > limit:
                if self.refused:
                    self.refused(scope["path"])
                await JSONResponse({"error": TooLarge.code, "detail": too_large(limit)}, status_code=413)(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)
