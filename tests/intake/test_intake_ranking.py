"""The fused per-case ranking (raiox.intake.ranking): formula and evidence."""

import uuid
from collections import namedtuple

from raiox.intake.ranking import fuse

Row = namedtuple("Row", "image_id fixture_id fixture_index rank system_id score reference_image_id")
IMG_A, IMG_B = uuid.uuid4(), uuid.uuid4()
F1, F2, F3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def test_single_fixture_keeps_its_order_and_scores():
    rows = [Row(IMG_A, F1, 0, 1, "x", 0.9, None), Row(IMG_A, F1, 0, 2, "y", 0.8, None)]
    fused = fuse(rows)
    assert [(f.system_id, round(f.score, 6)) for f in fused] == [("x", 0.9), ("y", 0.8)]
    assert fused[0].evidence["support"] == 1 and fused[0].evidence["fixtures"] == 1


def test_corroboration_across_fixtures_beats_one_slightly_better_match():
    rows = [
        Row(IMG_A, F1, 0, 1, "lone", 0.90, None), Row(IMG_A, F1, 0, 2, "common", 0.85, None),
        Row(IMG_B, F2, 0, 1, "common", 0.86, None), Row(IMG_B, F2, 0, 2, "other", 0.5, None),
        Row(IMG_B, F3, 1, 1, "common", 0.84, None),
    ]
    fused = {f.system_id: f for f in fuse(rows)}
    # common: 0.7*0.86 + 0.3*mean(0.86, 0.85, 0.84); lone: 0.7*0.90 + 0.3*mean(0.90, 0, 0)
    assert abs(fused["common"].score - (0.7 * 0.86 + 0.3 * 0.85)) < 1e-9
    assert abs(fused["lone"].score - (0.7 * 0.90 + 0.3 * 0.30)) < 1e-9
    assert fuse(rows)[0].system_id == "common"
    assert fused["common"].evidence["support"] == 3 and len(fused["common"].evidence["images"]) == 2
    assert fused["common"].evidence["best"]["image_id"] == str(IMG_B)


def test_no_rows_no_ranking():
    assert fuse([]) == []
