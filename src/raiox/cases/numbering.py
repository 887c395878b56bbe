"""How the implants of one film are numbered for people (panel, e-mail, report): 1, 2, 3 from left to right by the
middle of their boxes (then top to bottom), with no gaps after one is removed. The stored `Fixture.index` stays the
implant's stable identity; this number is what the operator and the dentist read, the same everywhere."""

import uuid
from collections.abc import Iterable


def _middle(box) -> tuple[float, float]:
    return sum(p[0] for p in box) / len(box), sum(p[1] for p in box) / len(box)


def implant_numbers(fixtures: Iterable) -> dict[uuid.UUID, int]:
    """Fixture id -> its number on the film, for FIXTURES of ONE film (objects with id, box and index)."""
    ordered = sorted(fixtures, key=lambda f: (*_middle(f.box), f.index))
    return {f.id: n for n, f in enumerate(ordered, start=1)}
