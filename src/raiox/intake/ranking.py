"""The fused per-case ranking: one list of systems from every fixture of every image of a case.

Each fixture's search gives its top-k systems with a cosine similarity. For a system S:

    max_score = best similarity of S over all fixtures
    mean_top  = mean of S's m best per-fixture similarities, m = min(3, fixtures in the case),
                a fixture whose top-k does not list S counting 0
    score     = 0.7 * max_score + 0.3 * mean_top

The best single match dominates (an expert looks for the closest reference), while a system seen
on several fixtures/images is preferred over one that matched a single fixture slightly better:
the implants of one patient are usually of one system. With a single fixture, score = max_score.
`evidence` keeps the inputs: max, mean_top, support (fixtures listing S), fixtures (total), the
images involved and the best fixture/reference.
"""

from collections import defaultdict
from dataclasses import dataclass

MAX_RANKED = 20
WEIGHT_MAX, WEIGHT_MEAN, TOP_M = 0.7, 0.3, 3


@dataclass
class Fused:
    system_id: str
    score: float
    evidence: dict


def fuse(rows: list) -> list[Fused]:
    """ROWS: (image_id, fixture_id, fixture_index, rank, system_id, score, reference_image_id) tuples."""
    fixtures = {row.fixture_id for row in rows}
    per_system: dict[str, dict] = defaultdict(dict)  # system -> fixture -> best row
    for row in rows:
        best = per_system[row.system_id].get(row.fixture_id)
        if best is None or row.score > best.score:
            per_system[row.system_id][row.fixture_id] = row
    m = min(TOP_M, len(fixtures))
    fused = []
    for system_id, by_fixture in per_system.items():
        ordered = sorted(by_fixture.values(), key=lambda r: r.score, reverse=True)
        scores = [r.score for r in ordered][:m] + [0.0] * max(0, m - len(ordered))
        max_score, mean_top = ordered[0].score, sum(scores) / m
        best = ordered[0]
        evidence = {
            "max": round(max_score, 6), "mean_top": round(mean_top, 6), "support": len(ordered),
            "fixtures": len(fixtures), "images": sorted({str(r.image_id) for r in ordered}),
            "best": {"image_id": str(best.image_id), "fixture_index": best.fixture_index,
                     "reference_image_id": str(best.reference_image_id) if best.reference_image_id else None},
        }
        fused.append(Fused(system_id, WEIGHT_MAX * max_score + WEIGHT_MEAN * mean_top, evidence))
    fused.sort(key=lambda f: (-f.score, f.system_id))
    return fused[:MAX_RANKED]
