"""A request body over a route's limit is refused before it is read (the API's error shape, 413)."""

from collections.abc import Callable

from fastapi.responses import JSONResponse

from raiox.kit.errors import TooLarge


class DeclaredLengthFirst:
    """ASGI middleware: a request to one of LIMITS' paths whose declared Content-Length passes the path's limit is
    answered 413 `{"error": "too_large", ...}` before anything is read. (The route's own `max_body_size` stops a
    chunked body, with no declared length, as soon as it passes the limit, in the same shape; Starlette answers a
    declared one in plain text, which is what this is for.) REFUSED(path), if given, is called for each one (to
    count it where the route would have)."""

    def __init__(self, app, limits: dict[str, int], refused: Callable[[str], None] | None = None) -> None:
        self.app, self.limits, self.refused = app, limits, refused

    async def __call__(self, scope, receive, send) -> None:
        limit = self.limits.get(scope["path"]) if scope["type"] == "http" else None
        declared = dict(scope.get("headers", [])).get(b"content-length", b"") if limit else b""
        if declared.isdigit() and int(declared) > limit:
            body = {"error": TooLarge.code, "detail": f"request body over {limit} bytes"}
            if self.refused:
                self.refused(scope["path"])
            await JSONResponse(body, status_code=413)(scope, receive, send)
            return
        await self.app(scope, receive, send)
