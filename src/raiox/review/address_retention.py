"""LGPD minimisation of the sign-in audit entries: their client addresses anonymised after
RAIOX_AUDIT_ADDRESS_RETENTION_DAYS (the daily retention job, `raiox audit anonymise-addresses`).

Apart from the panel's sign-in (`review.auth`, FastAPI) so that the command never imports the web framework.
"""

import ipaddress
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

ANONYMISED = "anonymised"  # what a sign-in entry's address becomes after RAIOX_AUDIT_ADDRESS_RETENTION_DAYS
ANONYMISED_ACTOR = f"ip:{ANONYMISED}"


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_network(text.removeprefix("ip:").strip(), strict=False)
    except ValueError:
        return False
    return True


def without_addresses(value):
    """VALUE (an entry's details) with every string that is a client address or network (`ip:` prefixed or not)
    replaced by ANONYMISED; the rest as it was."""
    if isinstance(value, dict):
        return {key: without_addresses(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_addresses(item) for item in value]
    return ANONYMISED if isinstance(value, str) and _is_address(value) else value


async def anonymise_addresses(session: AsyncSession, before: datetime, limit: int = 1000) -> int:
    """LGPD minimisation: the sign-in entries (`auth.*`) written by a client address (actor `ip:<address>`) before
    BEFORE, at most LIMIT of them, keep everything but the address: the actor becomes ANONYMISED_ACTOR and any address
    in their details ANONYMISED. Entries are never deleted, no other action is touched. How many were changed."""
    from raiox.review import repository

    entries = await repository.addressed_audit_entries(session, before, ANONYMISED_ACTOR, limit)
    for entry in entries:
        entry.actor, entry.details = ANONYMISED_ACTOR, without_addresses(entry.details or {})
    await session.flush()
    return len(entries)
