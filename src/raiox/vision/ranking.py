"""How a system is scored from its reference images: the catalog search (`raiox.catalog.search`, in SQL) and
`raiox vision eval` (here, in numpy) rank systems the same way, so the evaluation measures the product."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from raiox.vision.threads import Turns

SCORE_REFERENCES = 2  # a system scores the mean similarity of this many of its closest references (3 until
# session 26: with raiox-v11, 2 ranks the right system first more often on all three evaluation seeds;
# docs/benchmarks.md, session-26 note)
ORIENTATION_MARGIN = 0.075  # a located fixture is read the other way up when that matches the catalog by this much
# more (best system score): the localiser's platform-end call overruled (docs/benchmarks.md, session 21)
ENDS_SURE = 1.0  # ... checked only where the localiser's maps are less sure of its ends than this
# (`detect.Detection.ends`, -2..2): the other way up costs a crop and an embedding (docs/benchmarks.md, session 36)
RERANK_POOL = 10  # the nearest systems the connection, feature and thread readers reorder (the catalog search too:
# it reorders max(top_k, RERANK_POOL) and answers its top k). 5 until session 34: at 10 top-1 is unchanged on seeds
# 7000-7005 and top-5 gains 3 | 0 | 0 | 1 | 0 | 2 queries (a system the readers lift from 6th-10th into the first 5)


def rank(gallery_vecs, g_lab, query_vecs, n_systems: int, references: int = SCORE_REFERENCES,
         connection: list | None = None, classes: list | None = None, features: list | None = None,
         specs: list | None = None, turns: list | None = None, lines: list | None = None) -> np.ndarray:
    """(Q, n_systems) system ids ordered best first: a system scores the mean similarity of its
    ``references`` most similar gallery images, as the catalog search ranks them. With ``connection``
    (per query: the connection reader's probabilities, or None) and ``classes`` (per system: its
    ``raiox.vision.connection`` class, or None), ``features`` (per query: ``raiox.vision.features.read``'s
    reading, or None) and ``specs`` (per system: its spec, or None), and/or ``turns`` (per query:
    ``raiox.vision.threads.read``'s count, or None) and ``lines`` (per system: its ``threads.Line``, or None), the
    RERANK_POOL first are re-ranked as the search does."""
    per_sys = system_scores(gallery_vecs, g_lab, query_vecs, n_systems, references)
    order = np.argsort(-per_sys, axis=1, kind="stable")
    for q in range(len(order)):
        reads = Reads(connection[q] if connection is not None else None, features[q] if features is not None else None,
                      turns[q] if turns is not None else None)
        if reads:
            order[q, :RERANK_POOL] = rerank(order[q, :RERANK_POOL], per_sys[q], reads, classes, specs, lines)
    return order


def system_scores(gallery_vecs, g_lab, query_vecs, n_systems: int, references: int = SCORE_REFERENCES) -> np.ndarray:
    """(Q, n_systems) scores: the mean similarity of each system's ``references`` closest gallery images
    (-inf for a system without references)."""
    sims = np.asarray(query_vecs) @ np.asarray(gallery_vecs).T
    per_sys = np.full((len(sims), n_systems), -np.inf, np.float32)
    for s in range(n_systems):
        cols = g_lab == s
        if cols.any():
            per_sys[:, s] = -np.sort(-sims[:, cols], axis=1)[:, :references].mean(1)
    return per_sys


def checks_orientation(detection) -> bool:
    """Whether a located fixture (`detect.Detection`) is also read the other way up: where the localiser's maps
    did not measure its ends (``ends`` None) or measured them below ENDS_SURE."""
    return detection.ends is None or detection.ends < ENDS_SURE


def turn_over(best: float, reverse_best: float) -> bool:
    """Whether a located fixture should be read the other way up: its reverse reading's best system
    score beats its own by more than ORIENTATION_MARGIN (the catalog search and the evaluation alike)."""
    return reverse_best - best > ORIENTATION_MARGIN


@dataclass(frozen=True)
class Reads:
    """What was read off one fixture for the re-rank: the connection reader's probabilities
    (``raiox.vision.connection``), the feature reader's log-probabilities (``raiox.vision.features``) and the
    thread count (``raiox.vision.threads``); each None where it was not read."""

    connection: np.ndarray | None = None
    features: dict | None = None
    turns: Turns | None = None

    def __bool__(self) -> bool:
        return self.connection is not None or self.features is not None or self.turns is not None


def rerank(pool: np.ndarray, score: np.ndarray, reads: Reads, classes: list | None, specs: list | None = None,
           lines: list | None = None) -> np.ndarray:
    """The systems ``pool`` (best first) reordered by ``score`` plus ``read_bonus``."""
    pick = (lambda values: None if values is None else [values[s] for s in pool])
    adjusted = score[pool] + read_bonus(len(pool), reads, pick(classes), pick(specs), pick(lines))
    return pool[np.argsort(-adjusted, kind="stable")]


def read_bonus(n: int, reads: Reads, classes: list | None = None, specs: list | None = None,
               lines: list | None = None) -> np.ndarray:
    """What the re-rank adds to each of ``n`` candidates (the catalog search and the evaluation alike): the
    connection reader's bonus by their connection ``classes``, the feature reader's by their ``specs`` and the
    thread count's by their ``lines`` (``raiox.vision.threads.Line``), each where it was read; zeros without reads."""
    from raiox.vision import connection, features, threads

    out = np.zeros(n, np.float64)
    if reads.connection is not None:
        out += connection.bonus(reads.connection, classes)
    if reads.features is not None:
        out += features.bonus(reads.features, specs)
    if reads.turns is not None and lines is not None:
        out += threads.bonus(reads.turns, lines)
    return out
