"""Implants are numbered on their film left to right, without gaps, whatever order they were found or drawn in."""

import uuid
from types import SimpleNamespace

from raiox.cases.numbering import implant_numbers


def _fixture(index: int, x: float, y: float = 100.0):
    box = [[x - 10, y - 50], [x + 10, y - 50], [x + 10, y + 50], [x - 10, y + 50]]
    return SimpleNamespace(id=uuid.uuid4(), index=index, box=box)


def test_numbers_follow_the_film_left_to_right_without_gaps():
    right, left, middle = _fixture(0, 500), _fixture(1, 100), _fixture(4, 300)  # found right first; index 2-3 removed
    numbers = implant_numbers([right, left, middle])
    assert [numbers[f.id] for f in (left, middle, right)] == [1, 2, 3]
    assert implant_numbers([right, middle]) == {middle.id: 1, right.id: 2}  # the left one removed: no gap


def test_implants_one_above_the_other_are_numbered_top_first():
    lower, upper = _fixture(0, 300, 400), _fixture(1, 300, 100)
    assert implant_numbers([lower, upper]) == {upper.id: 1, lower.id: 2}
