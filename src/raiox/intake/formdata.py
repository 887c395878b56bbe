"""Reading the webhook's form body: bounded while streaming, fast for Jotform's shape, strict otherwise.

Jotform's multipart bodies hold text fields only (curl-style boundary, no files). For exactly that
shape, `split_multipart` is a few splits (~20x cheaper than the general streaming parser, which
matters at hundreds of webhooks a second); anything else goes to Starlette's `MultiPartParser`, whose
errors become typed 400s here (never Starlette's bare `{"detail": ...}`). A body without its closing
boundary is refused: it was cut short, and accepting it would silently drop its last field.
Either shape over MAX_FIELDS fields is a 400 (`split_multipart`, `split_urlencoded` and Starlette's parser alike).
Text is UTF-8 in both shapes (urlencoded: percent-escaped or raw); a field that is not valid UTF-8 is read as
Latin-1 (Starlette's own fallback for multipart), never dropped.
"""

import re
from urllib.parse import unquote_to_bytes

from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from raiox.kit.errors import BadRequest, RaioxError, TooLarge
from raiox.kit.streams import read_capped

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
MAX_BODY = 16 * 1024 * 1024
MAX_FIELDS = 2000
_BOUNDARY = re.compile(r'boundary="?([^";,]+)"?', re.I)
_PAIR = re.compile(rb"[^&]+")
_NAME = re.compile(rb'^content-disposition:\s*form-data;\s*name="([^"\\]*)"\s*$', re.I)


class UnsupportedMediaType(RaioxError):
    status_code = 415
    code = "unsupported_media_type"


def boundary_of(content_type: str) -> str | None:
    match = _BOUNDARY.search(content_type)
    return match.group(1) if match else None


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refused (413) as soon as it passes LIMIT: declared or not (chunked), the rest is
    never read."""
    return await read_capped(request.stream(), limit, request.headers.get("content-length"),
                             lambda _size: TooLarge(f"webhook body over {limit} bytes"))


async def read_form(request: Request) -> dict[str, str]:
    """Text fields of the webhook's body (multipart/form-data or application/x-www-form-urlencoded)."""
    header = request.headers.get("content-type", "")
    content_type = header.split(";")[0].strip().lower()
    if content_type not in FORM_TYPES:
        raise UnsupportedMediaType(f"unsupported content type {content_type or '(none)'}: Jotform posts "
                                   "multipart/form-data or application/x-www-form-urlencoded")
    body = await read_body(request)
    if content_type == FORM_TYPES[1]:
        return split_urlencoded(body)
    boundary = boundary_of(header)
    if not boundary:
        raise BadRequest("multipart/form-data without a boundary: the Content-Type header must name it "
                         "(multipart/form-data; boundary=...)")
    fields = split_multipart(body, boundary)
    return fields if fields is not None else await parse_multipart(body, request, boundary)


async def parse_multipart(body: bytes, request: Request, boundary: str) -> dict[str, str]:
    """Any well-formed multipart body of text fields (Starlette's parser); typed 400s otherwise."""
    delimiter = b"--" + boundary.encode("latin-1")
    if delimiter not in body:
        raise BadRequest(f"multipart body does not use the boundary {boundary!r} named in Content-Type")
    if delimiter + b"--" not in body:
        raise BadRequest(f"multipart body is incomplete: its closing boundary --{boundary}-- is missing "
                         "(cut short in transit?)")

    async def stream():
        yield body

    parser = MultiPartParser(request.headers, stream(), max_files=0, max_fields=MAX_FIELDS, max_part_size=MAX_BODY)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadRequest(_explain(exc)) from None
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _explain(exc: MultiPartException) -> str:
    if exc.message.startswith("Too many files"):
        return "a part of the multipart body carries a file: Jotform's webhook sends text fields only"
    if exc.message.startswith("Too many fields"):
        return _too_many("multipart")
    if exc.__cause__ is not None:  # python-multipart's own reason
        return (f"malformed multipart body ({exc.__cause__}): parts must be delimited by the boundary named "
                "in Content-Type, with CRLF line endings")
    return f"malformed multipart body: {exc.message}"


def _too_many(shape: str) -> str:
    return f"{shape} body has more than {MAX_FIELDS} fields"


def split_multipart(body: bytes, boundary: str) -> dict[str, str] | None:
    """Text fields of a simple multipart/form-data BODY, or None when it is not that simple; 400 over MAX_FIELDS
    fields, as Starlette's parser answers for the other shapes."""
    delimiter = b"--" + boundary.encode("latin-1")
    pieces = body.split(delimiter)
    if len(pieces) < 2 or not pieces[-1].startswith(b"--"):
        return None
    if len(pieces) - 2 > MAX_FIELDS:
        raise BadRequest(_too_many("multipart"))
    fields: dict[str, str] = {}
    for piece in pieces[1:-1]:
        if not piece.startswith(b"\r\n") or not piece.endswith(b"\r\n"):
            return None
        head, sep, value = piece[2:-2].partition(b"\r\n\r\n")
        if not sep or b"\r\n" in head:  # exactly one header line: Content-Disposition with a name
            return None
        match = _NAME.match(head)
        if match is None:
            return None
        try:
            fields[match.group(1).decode()] = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return fields


def split_urlencoded(body: bytes) -> dict[str, str]:
    """Fields of an application/x-www-form-urlencoded BODY (`+` a space, `%XX` a byte, a name without `=` an empty
    value, the last of a repeated name kept). Each name and value is decoded from its bytes, percent-escaped or
    sent raw alike, as UTF-8 (what browsers and Jotform send), else as Latin-1, as Starlette's multipart parser
    does: every byte is one character, so text that is not UTF-8 is kept readable rather than refused or dropped.
    More than MAX_FIELDS fields (pairs, a repeated name counted each time, as multipart parts are) is a 400."""
    fields: dict[str, str] = {}
    for count, match in enumerate(_PAIR.finditer(body), 1):
        if count > MAX_FIELDS:
            raise BadRequest(_too_many("urlencoded"))
        name, _, value = match.group().partition(b"=")
        fields[_text(name)] = _text(value)
    return fields


def _text(raw: bytes) -> str:
    data = unquote_to_bytes(raw.replace(b"+", b" "))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")
