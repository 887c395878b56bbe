"""Making submission data storable: PostgreSQL text and jsonb refuse NUL characters, lone UTF-16
surrogates (which JSON escapes such as `"\\ud800"` produce) and NaN/Infinity. `storable` rewrites every
string (keys included) of a parsed payload instead of refusing it, so such a submission still becomes
a case; its nesting depth is bounded (Jotform's answers are a few levels deep)."""

import math
import re

from raiox.kit.errors import BadRequest

MAX_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


def text(value: str) -> str:
    """VALUE without NUL characters, each lone surrogate replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", value.replace("\x00", ""))


def storable(value: object, what: str = "payload", depth: int = 0) -> object:
    """VALUE (JSON-shaped) with every string made storable; BadRequest when nested over MAX_DEPTH."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # jsonb has no NaN/Infinity: kept as text
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:
        raise BadRequest(f"{what} is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        return {text(str(k)): storable(v, what, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v, what, depth + 1) for v in value]
    return value
