"""Request ids: every HTTP request's id (the client's `X-Request-ID` when it is a sane value, else a new one) is on
each structlog line written while the request is served (`request_id`) and answers in the `X-Request-ID` header."""

import re
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
SCOPE_KEY = "raiox.request_id"  # for the answers rendered outside the middleware (a 500, by Starlette's outermost)
_SANE = re.compile(r"[A-Za-z0-9._-]{1,128}")


def choose_request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's `X-Request-ID` when it is at most 128 characters of [A-Za-z0-9._-], else a new uuid4 hex: a
    client's id never carries what a log line or a header must not (blanks, control characters, a huge value)."""
    given = dict(headers).get(HEADER, b"").decode("latin-1")
    return given if _SANE.fullmatch(given) else uuid.uuid4().hex


def request_id_of(scope: Scope) -> str | None:
    """The id the middleware gave this request (None outside it)."""
    return scope.get(SCOPE_KEY)


class RequestId:
    """Pure ASGI middleware (outermost of the app's own): binds the request's id to structlog's context variables
    for the request's duration and sets `X-Request-ID` on its answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = scope[SCOPE_KEY] = choose_request_id(scope["headers"])

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, request_id.encode())]}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, sending)
