"""Writing the result into the dentist's Jotform submission: `POST /submission/{id}` (urlencoded).

Moves to `raiox.kit.jotform` (the intake engineer's API client) once that lands; same signature.
"""

from urllib.parse import quote

import httpx

from raiox.kit.errors import ServiceUnavailable
from raiox.kit.settings import get_settings


class JotformError(ServiceUnavailable):
    """A Jotform API call failed; `retriable` for 429, 5xx and transport errors (timeouts included)."""

    code = "jotform_error"

    def __init__(self, message: str, *, retriable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.retry_after = retry_after


def edit_form(fields: dict[str, str]) -> dict[str, str]:
    """`{"21": "x"}` -> `{"submission[21]": "x"}`; a sub-field `"3:first"` -> `submission[3][first]`."""
    form = {}
    for qid, value in fields.items():
        key = "".join(f"[{part}]" for part in str(qid).split(":"))
        form[f"submission{key}"] = value
    return form


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def _check(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    code = body.get("responseCode", response.status_code)
    try:
        code = int(code)
    except (TypeError, ValueError):
        code = response.status_code
    if response.is_success and 200 <= code < 300:
        return body
    status = response.status_code if not response.is_success else code
    message = str(body.get("message") or response.reason_phrase or "error")[:300]
    retriable = status == 429 or status >= 500 or "limit" in message.lower()
    raise JotformError(f"Jotform API {status}: {message}", retriable=retriable, retry_after=_retry_after(response))


async def edit_submission(submission_id: str, fields: dict[str, str], *, client: httpx.AsyncClient | None = None) -> dict:
    """Edit only FIELDS (question id -> value) of the submission; returns the response envelope."""
    settings = get_settings()
    if settings.jotform_api_key is None:
        raise JotformError("RAIOX_JOTFORM_API_KEY is not set", retriable=False)
    url = f"{settings.jotform_api_url.rstrip('/')}/submission/{quote(str(submission_id), safe='')}"
    headers = {"APIKEY": settings.jotform_api_key.get_secret_value(), "Accept": "application/json"}
    own = client is None
    client = client or httpx.AsyncClient(timeout=settings.jotform_timeout_s)
    try:
        response = await client.post(url, data=edit_form(fields), headers=headers)
    except httpx.TimeoutException as exc:
        raise JotformError(f"Jotform API timeout: {type(exc).__name__}", retriable=True) from exc
    except httpx.TransportError as exc:
        raise JotformError(f"Jotform API unreachable: {type(exc).__name__}", retriable=True) from exc
    finally:
        if own:
            await client.aclose()
    return _check(response)
