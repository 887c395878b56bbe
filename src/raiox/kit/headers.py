"""Response headers the whole API shares."""

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class NoStoreJSON:
    """Every JSON answer without a caching rule of its own gets `Cache-Control: no-store`: the API's answers carry
    dentists' contacts and patients' cases (`GET /cases/{id}`), which no browser or proxy cache may keep (the
    report page and the panel set their own)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "cache-control" not in headers and headers.get("content-type", "").startswith("application/json"):
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, sending)



class HeadAsGet:
    """`HEAD` wherever `GET` is answered (RFC 9110: a server that answers GET answers HEAD too): FastAPI's routes
    answer HEAD with 405; a HEAD whose 405 names GET in its `Allow` header is answered again as that GET would be
    (status, headers, Content-Length; the token checked the same way), without the body. A route that answers HEAD
    itself (the report links) is left as it is. (The route tables are not read here: FastAPI keeps included routers
    as internal objects; a 405 to a HEAD has had no effect, the route did not run.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        refused = False

        async def unless_get_allowed(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 405:
                allow = MutableHeaders(scope=message).get("allow", "")
                refused = "GET" in {m.strip().upper() for m in allow.split(",")}
            if not refused:
                await send(message)

        await self.app(scope, receive, unless_get_allowed)
        if not refused:
            return

        async def bodiless(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, bodiless)  # the server still knows the request was HEAD
