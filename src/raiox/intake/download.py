"""Safe download of uploaded files (SSRF-guarded): only allow-listed origins, checked at every hop.

- Origins (scheme, host, port) must be in RAIOX_JOTFORM_UPLOAD_HOSTS; redirects are followed by hand
  and every hop is checked again, so a redirect off the list is refused.
- The host is resolved here and the connection goes to the checked address (DNS pinning: the URL
  carries the IP, `Host` and TLS SNI/verification carry the name). Private, loopback, link-local and
  other non-public addresses are refused unless the allow-list names that address (or `localhost`).
- The API key goes along (`APIKEY` header and `apiKey` query) as accounts with "Require log-in to view
  uploaded files" need it; no message or log line ever contains it (only scheme://host/path).
- Size cap (Content-Length and while streaming), timeouts, retries with backoff on 429/5xx/network
  errors. An HTML answer (Jotform's login page) is an error, not an image.
"""

import asyncio
import hashlib
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from raiox.kit.errors import RaioxError, ServiceUnavailable
from raiox.kit.logging import get_logger
from raiox.kit.settings import Settings, _origin
from raiox.kit.streams import read_capped

log = get_logger(__name__)
MAX_REDIRECTS = 5
TEMPORARY_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class DownloadFailed(RaioxError):
    """The file cannot be fetched (refused origin, 404, HTML page, too large): retrying will not help."""

    status_code = 422
    code = "download_failed"


class DownloadUnavailable(ServiceUnavailable):
    """The upload host is down, slow or rate limiting: retry later."""

    code = "download_unavailable"


@dataclass
class Downloaded:
    data: bytes
    content_type: str | None
    url: str  # the final URL (after redirects), without query string


def public_url(url: str) -> str:
    """URL without query or fragment (never shows an apiKey): for the database, not for logs."""
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[::1/x": not a URL Python can read; cut by hand
        return url.split("#", 1)[0].split("?", 1)[0]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def upload_ref(url: str) -> str:
    """How errors and logs name an upload: its host and the first 8 hex digits of the URL's md5 (the digest
    `case_images` is unique on), never its path (file names name patients) nor its query (an apiKey)."""
    digest = hashlib.md5(url.encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest()[:8]
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[::1/x"
        return f"an unreadable URL (upload {digest})"
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/… (upload {digest})"


def _explicit(host: str, allowed: list[str], origin: str) -> bool:
    """True when the allow-list entry itself names this address (IP literal) or `localhost`."""
    if origin not in allowed:
        return False
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DownloadUnavailable(f"cannot resolve {host}: {exc.strerror}") from None
    return list(dict.fromkeys(info[4][0] for info in infos))


async def check_target(url: str, allowed: list[str]) -> tuple[str, str, int]:
    """(scheme, pinned IP, port) for URL, or DownloadFailed when URL is not an allowed public target."""
    try:
        origin = _origin(url)
    except ValueError:
        raise DownloadFailed(f"not an http(s) URL: {upload_ref(url)!r}") from None
    if origin not in allowed:
        raise DownloadFailed(f"{origin} is not an allowed upload origin (RAIOX_JOTFORM_UPLOAD_HOSTS)")
    parts = urlsplit(url)
    host, port = parts.hostname or "", int(origin.rsplit(":", 1)[1])
    addresses = await _resolve(host, port)
    explicit = _explicit(host, allowed, origin)
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global and not explicit:
            raise DownloadFailed(f"{host} resolves to a non-public address ({ip}); refused")
    return parts.scheme, addresses[0], port


def _pinned(url: str, address: str) -> tuple[str, dict, dict]:
    """URL rewritten to connect to ADDRESS, with the Host header and TLS server name of the original."""
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    headers = {"Host": parts.netloc.rsplit("@", 1)[-1]}
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    return pinned, headers, extensions


def _looks_like_html(data: bytes, content_type: str | None) -> bool:
    head = data[:512].lstrip().lower()
    return (content_type or "").lower().startswith("text/html") or head.startswith((b"<!doctype", b"<html"))


def _keyed(url: str, settings: Settings) -> bool:
    """Whether the account's API key goes with a download of URL: with RAIOX_JOTFORM_FORM_ID set, only for that form's
    upload folder (`/uploads/<user>/<form id>/...`), so that a URL put into a submission cannot make the server fetch
    another form's files with the key (and show them in the submitter's report)."""
    if not settings.jotform_form_id:
        return True
    parts = urlsplit(url).path.split("/")
    return len(parts) > 3 and parts[1] == "uploads" and parts[3] == settings.jotform_form_id


async def _fetch_once(http: httpx.AsyncClient, url: str, settings: Settings, api_key: str) -> Downloaded:
    for _hop in range(MAX_REDIRECTS + 1):
        _scheme, address, _port = await check_target(url, settings.jotform_upload_hosts)
        pinned, headers, extensions = _pinned(url, address)
        key = api_key if _keyed(url, settings) else ""
        params = {"apiKey": key} if key else None
        if key:
            headers["APIKEY"] = key
        request = http.build_request("GET", pinned, params=params, headers=headers, extensions=extensions)
        response = await http.send(request, stream=True)
        try:
            if response.is_redirect:
                location = response.headers.get("location")
                if not location:
                    raise DownloadFailed(f"redirect without Location from {upload_ref(url)}")
                url = urljoin(url, location)
                continue
            return await _read_body(response, url, settings)
        finally:
            await response.aclose()
    raise DownloadFailed(f"too many redirects from {upload_ref(url)}")


async def _read_body(response: httpx.Response, url: str, settings: Settings) -> Downloaded:
    where = upload_ref(url)
    if response.status_code in TEMPORARY_STATUSES or response.status_code >= 500:
        raise DownloadUnavailable(f"upload host answered HTTP {response.status_code} for {where}")
    if response.status_code != 200:
        raise DownloadFailed(f"upload host answered HTTP {response.status_code} for {where}")
    limit = settings.download_max_bytes

    def too_large(size: int | None) -> DownloadFailed:
        if size is None:
            return DownloadFailed(f"file too large: more than {limit} bytes (RAIOX_DOWNLOAD_MAX_BYTES)")
        return DownloadFailed(f"file too large: {size} bytes > {limit} (RAIOX_DOWNLOAD_MAX_BYTES)")

    data = await read_capped(response.aiter_bytes(), limit, response.headers.get("content-length"), too_large)
    content_type = response.headers.get("content-type")
    if _looks_like_html(data, content_type):
        raise DownloadFailed("upload host answered with an HTML page, not the file (login page? check "
                             "RAIOX_JOTFORM_API_KEY and 'Require log-in to view uploaded files')")
    return Downloaded(data, content_type, public_url(url))


async def download(url: str, settings: Settings, *, http: httpx.AsyncClient | None = None) -> Downloaded:
    """Fetch URL safely; DownloadFailed (permanent) or DownloadUnavailable (after retries)."""
    api_key = settings.jotform_api_key.get_secret_value() if settings.jotform_api_key else ""
    own = http is None
    http = http or new_client(settings)
    try:
        for attempt in range(settings.download_retries + 1):
            try:
                async with asyncio.timeout(settings.download_timeout_s * 3):
                    return await _fetch_once(http, url, settings, api_key)
            except (httpx.TimeoutException, TimeoutError):
                error = DownloadUnavailable(f"timed out downloading {upload_ref(url)}")
            except httpx.TransportError as exc:
                error = DownloadUnavailable(f"network error downloading {upload_ref(url)}: {type(exc).__name__}")
            except DownloadUnavailable as exc:
                error = exc
            if attempt == settings.download_retries:
                raise error
            delay = settings.retry_backoff_s * 2**attempt
            log.warning("download_retry", url=upload_ref(url), attempt=attempt + 1, error=error.message, delay_s=delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")
    finally:
        if own:
            await http.aclose()


def new_client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(settings.download_timeout_s), follow_redirects=False,
                             headers={"User-Agent": "raiox/1"}, trust_env=False)
