"""Jotform REST API client (httpx): envelope checks, typed errors, retries with backoff.

Base URL from RAIOX_JOTFORM_API_URL: `https://api.jotform.com`, `https://eu-api.jotform.com`,
`https://hipaa-api.jotform.com`, an Enterprise `https://<sub>.jotform.com/API`, each with or without a
`/v1` suffix (paths are appended to whatever base is given). The key travels in the `APIKEY` header only,
so no URL we build or log ever contains it.

Every answer is the documented envelope `{"responseCode", "message", "content", ...}`: both the HTTP
status and the body's `responseCode` must be 2xx. 429, 5xx (Jotform maps rate limits to 503),
timeouts and connection errors are retried with exponential backoff; the rest raise at once.
"""

import asyncio
import json
import random
from datetime import datetime
from typing import Any

import httpx

from raiox.kit.errors import RaioxError
from raiox.kit.logging import get_logger
from raiox.kit.settings import Settings, get_settings

log = get_logger(__name__)
RETRY_STATUSES = {429, 500, 502, 503, 504}


class JotformError(RaioxError):
    """The Jotform API answered with an error (or not at all)."""

    status_code = 502
    code = "jotform_error"
    retryable = False

    def __init__(self, message: str, *, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status


class JotformAuthError(JotformError):
    """401/403: invalid API key, or a submission that does not belong to this account."""

    code = "jotform_unauthorized"


class JotformNotFound(JotformError):
    code = "jotform_not_found"


class JotformUnavailable(JotformError):
    """429, 5xx, timeouts, network errors, an answer that is not the envelope: worth retrying later."""

    status_code = 503
    code = "jotform_unavailable"
    retryable = True


def _error_for(status: int, message: str) -> JotformError:
    text = f"Jotform API {status}: {message}"
    if status in (401, 403):
        return JotformAuthError(text, upstream_status=status)
    if status == 404:
        return JotformNotFound(text, upstream_status=status)
    if status in RETRY_STATUSES or status >= 500:
        return JotformUnavailable(text, upstream_status=status)
    return JotformError(text, upstream_status=status)


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_envelope(response: httpx.Response) -> dict:
    """The envelope of RESPONSE, or the typed error its HTTP status / body `responseCode` stands for."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        if response.status_code >= 400:
            raise _error_for(response.status_code, response.reason_phrase or "error")
        raise JotformUnavailable(f"Jotform API answered HTTP {response.status_code} without its JSON envelope")
    code = _as_int(body.get("responseCode"))
    message = str(body.get("message") or response.reason_phrase or "")
    if response.status_code >= 300:
        raise _error_for(response.status_code, message)
    if code is None or not 200 <= code < 300:
        raise _error_for(code or 502, message)
    return body


def edit_form(fields: dict[str, str]) -> dict[str, str]:
    """`{"21": "x"}` -> `{"submission[21]": "x"}`; a sub-field `"3:first"` -> `submission[3][first]`."""
    return {"submission" + "".join(f"[{part}]" for part in str(qid).split(":")): value for qid, value in fields.items()}


class JotformClient:
    def __init__(
        self,
        api_key: str,
        base_url: str = "https://api.jotform.com",
        *,
        timeout: float = 20.0,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not api_key:
            raise JotformAuthError("no Jotform API key configured (RAIOX_JOTFORM_API_KEY)")
        self.retries, self.backoff = retries, backoff
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers={"APIKEY": api_key, "Accept": "application/json", "User-Agent": "raiox/1"},
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    async def __aenter__(self) -> "JotformClient":
        return self

    async def __aexit__(self, *_exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, *, params: dict | None = None, data: dict | None = None) -> dict:
        """One API call with retries; returns the whole envelope (its `content`, `resultSet`, ...)."""
        path = path.lstrip("/")
        for attempt in range(self.retries + 1):
            try:
                response = await self._http.request(method, path, params=params, data=data)
                envelope = parse_envelope(response)
                return envelope
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                error: JotformError = JotformUnavailable(f"Jotform API unreachable: {type(exc).__name__}")
                retry_after = None
            except JotformError as exc:
                if not exc.retryable:
                    raise
                error, retry_after = exc, _as_int(response.headers.get("retry-after"))
            if attempt == self.retries:
                raise error
            delay = min(retry_after or self.backoff * 2**attempt, 30.0) * (1 + random.random() * 0.2)
            log.warning("jotform_retry", method=method, path=path.split("?")[0], attempt=attempt + 1,
                        error=error.message, delay_s=round(delay, 2))
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def get_submission(self, submission_id: str) -> dict:
        """`GET /submission/{id}` -> content: {id, form_id, created_at, status, answers: {qid: {...}}}."""
        return (await self.request("GET", f"submission/{submission_id}"))["content"]

    async def edit_submission(self, submission_id: str, fields: dict[str, str]) -> dict:
        """`POST /submission/{id}`, urlencoded `submission[<qid>]=value`: only FIELDS change (an edit is
        idempotent, so retrying after a lost answer is safe). Returns the envelope's `content`."""
        return (await self.request("POST", f"submission/{submission_id}", data=edit_form(fields)))["content"]

    async def list_submissions(
        self,
        form_id: str,
        created_after: datetime | str | None = None,
        offset: int = 0,
        limit: int = 100,
        *,
        orderby: str = "created_at",
    ) -> list[dict]:
        """One page of `GET /form/{id}/submissions` (limit <= 1000), optionally `created_at:gt` filtered."""
        params: dict[str, Any] = {"offset": offset, "limit": min(limit, 1000), "orderby": orderby}
        if created_after is not None:
            when = created_after.strftime("%Y-%m-%d %H:%M:%S") if isinstance(created_after, datetime) else created_after
            params["filter"] = json.dumps({"created_at:gt": when})
        content = (await self.request("GET", f"form/{form_id}/submissions", params=params))["content"]
        return content if isinstance(content, list) else []


def get_jotform_client(settings: Settings | None = None, **kwargs) -> JotformClient:
    """A client configured from settings (close it: `async with get_jotform_client() as api:`)."""
    settings = settings or get_settings()
    key = settings.jotform_api_key.get_secret_value() if settings.jotform_api_key else ""
    kwargs.setdefault("timeout", settings.download_timeout_s)
    kwargs.setdefault("retries", settings.jotform_retries)
    kwargs.setdefault("backoff", settings.retry_backoff_s)
    return JotformClient(key, settings.jotform_api_url, **kwargs)
