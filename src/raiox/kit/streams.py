"""Reading a body of bounded size: refused as soon as it is known to be too large, the rest never read."""

from collections.abc import AsyncIterable, Callable


async def read_capped(chunks: AsyncIterable[bytes], limit: int, declared: str | None,
                      too_large: Callable[[int | None], Exception]) -> bytes:
    """CHUNKS joined; ``too_large(size)`` is raised when the DECLARED length (Content-Length, size given) or the
    bytes read so far (chunked, or a length that lied: size None) pass LIMIT."""
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared))
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large(None)
        parts.append(chunk)
    return b"".join(parts)
