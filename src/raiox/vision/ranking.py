"""How a system is scored from its reference images: the catalog search (`raiox.catalog.search`, in SQL) and
`raiox vision eval` (here, in numpy) rank systems the same way, so the evaluation measures the product."""

from __future__ import annotations

import numpy as np

SCORE_REFERENCES = 3  # a system scores the mean similarity of this many of its closest references


def rank(gallery_vecs, g_lab, query_vecs, n_systems: int, references: int = SCORE_REFERENCES) -> np.ndarray:
    """(Q, n_systems) system ids ordered best first: a system scores the mean similarity of its
    ``references`` most similar gallery images, as the catalog search ranks them."""
    sims = query_vecs @ gallery_vecs.T
    per_sys = np.full((len(query_vecs), n_systems), -np.inf, np.float32)
    for s in range(n_systems):
        cols = g_lab == s
        if cols.any():
            per_sys[:, s] = -np.sort(-sims[:, cols], axis=1)[:, :references].mean(1)
    return np.argsort(-per_sys, axis=1, kind="stable")
