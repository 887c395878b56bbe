"""Synthetic catalogs for search tests: clustered unit vectors, one cluster per system."""

import hashlib
import uuid

import numpy as np

from raiox.catalog import repository

DIM = 512


def unit(rows: np.ndarray) -> np.ndarray:
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float32))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


async def add_system(session, system_id: str, vectors: np.ndarray, model_id: str, *, active: bool = True) -> None:
    from raiox.models import ImplantSystem

    if await session.get(ImplantSystem, system_id) is None:
        await repository.upsert_system(session, system_id, "Test Co", system_id.title(), {"connection": "cone"})
    from sqlalchemy import insert

    from raiox.models import ReferenceImage

    values = [
        {"id": uuid.uuid4(), "system_id": system_id, "storage_key": f"k/{system_id}/{i}", "source": "test",
         "sha256": hashlib.sha256(f"{system_id}-{i}-{len(vectors)}".encode()).hexdigest()}
        for i in range(len(vectors))
    ]
    await session.execute(insert(ReferenceImage), values)
    rows = [(v["id"], system_id) for v in values]
    await repository.put_embeddings(session, rows, unit(vectors), model_id)
    if not active:
        system = await session.get(ImplantSystem, system_id)
        system.active = False
    await session.flush()


def exact_top(query: np.ndarray, systems: dict[str, np.ndarray], k: int,
              references: int | None = None) -> list[tuple[str, float]]:
    """Mean cosine similarity of each system's ``references`` closest vectors, best first (ties by id), in numpy."""
    from raiox.catalog.search import SCORE_REFERENCES

    q, references = unit(query)[0], references or SCORE_REFERENCES
    scores = {sid: float(np.sort(unit(vecs) @ q)[::-1][:references].mean()) for sid, vecs in systems.items()}
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]


def at_similarity(query: np.ndarray, cosines, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors at exactly these cosine similarities to the unit vector ``query``."""
    out = []
    for c in cosines:
        u = rng.standard_normal(len(query))
        u -= (u @ query) * query
        out.append(c * query + np.sqrt(1 - c * c) * u / np.linalg.norm(u))
    return np.stack(out)
