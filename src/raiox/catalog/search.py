"""Catalog search: nearest reference embeddings (pgvector, cosine) aggregated to implant systems.

Aggregation: a system scores the *mean* cosine similarity of its `SCORE_REFERENCES` (2) closest
reference images (all of them when it has fewer). The closest reference is what an expert looks
for, and `reference_image_id` names it; asking for more than one close view keeps a sibling
system from winning on one chance resemblance. On the demo-catalog evaluation this ranks the
right system first about 2 points more often than the best reference alone (docs/benchmarks.md,
session 12; three references until session 26, two since); a mean over all references would punish
systems whose references cover many sizes.

Search runs in two steps. A pool of systems is ranked by their best reference (the approximate
path over-fetches reference rows from the model's partial HNSW index, `hnsw.ef_search` sized to
the over-fetch, and widens until the pool is full; when the index cannot fill it, an exact scan
answers); then the pool's systems are scored exactly from all their references. A system outside
the pool has no reference closer than the pool's last best reference, so its score cannot exceed
that: when the k-th score reaches it the answer is exact, else the pool doubles. Only active
systems and only embeddings of `model_id` take part: vectors of different models are never
compared. pgvector >= 0.8 additionally uses iterative index scans (`hnsw.iterative_scan`), which
apply the active-system filter inside the scan.

A located fixture whose ends the localiser is unsure of is searched both ways up (`search_fixture`): where the
localiser called the platform and apex ends the wrong way round, the reversed crop matches the catalog far better
than its own, and it is taken.
A fixture's reads (the connection reader's, `raiox.vision.connection`; the design-feature reader's,
`raiox.vision.features`; its thread count, `raiox.vision.threads`) then reorder its first systems by what their
specs name and the lengths their lines are sold in (`rerank`).
"""

import math
import time
import uuid
from dataclasses import dataclass, field, replace

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.catalog.vector_index import has_iterative_scan, sql_literal
from raiox.kit.errors import BadRequest
from raiox.kit.logging import get_logger
from raiox.models import EMBEDDING_DIM
from raiox.vision.ranking import RERANK_POOL, SCORE_REFERENCES, Reads, read_bonus, turn_over
from raiox.vision.threads import Turns, line_of

log = get_logger(__name__)

REFS_PER_SYSTEM = 8  # over-fetch floor: reference rows fetched per requested system
MAX_REFS_PER_SYSTEM = 64  # over-fetch ceiling per requested system (then widening takes over)
STATS_TTL_S = 60.0
MIN_EF_SEARCH = 120  # recall@10 0.989 at 1M references, m=16 ef_construction=128 (0.977 at 100): docs/benchmarks.md
MAX_FETCH = 1000  # pgvector's ceiling for hnsw.ef_search; beyond it, the exact scan answers
MAX_POOL = 400  # systems re-scored at most; a wider pool means the exact scan


@dataclass(frozen=True)
class Candidate:
    system_id: str
    manufacturer: str
    name: str
    score: float  # mean cosine similarity of the system's SCORE_REFERENCES closest references, -1..1 (plus the
    # connection, feature and thread readers' bonuses, <= 0, when the search was given their reads: see `rerank`)
    reference_image_id: uuid.UUID
    # the system's spec and attributes, selected with its name by the scoring search (the re-rank and
    # `raiox.catalog.identify` read them; None from the best-reference pool, which does not select them)
    spec: dict | None = field(default=None, compare=False, repr=False)
    attributes: dict | None = field(default=None, compare=False, repr=False)


def _approximate_sql(model_id: str, iterative: bool) -> str:
    """Reference rows from the model's HNSW index, best reference per active system, top k.

    Without iterative scans the index returns rows in distance order, so the scan position ranks
    them and the distance (which needs the out-of-line vector: a TOAST read per row) is computed
    for the k winners only. Iterative scans (`relaxed_order`) may return rows slightly out of
    order: there every fetched row gets its distance."""
    if iterative:
        return _iterative_sql(model_id)
    return f"""
        WITH nearest AS MATERIALIZED (
            SELECT e.id, e.system_id FROM reference_embeddings e
            WHERE e.model_id = {sql_literal(model_id)}
            ORDER BY e.embedding <=> :q
            LIMIT :n
        ), ranked AS (
            SELECT n.id, n.system_id, row_number() OVER () AS rank FROM nearest n
        ), best AS (
            SELECT DISTINCT ON (r.system_id) r.id, r.rank
            FROM ranked r JOIN implant_systems s ON s.id = r.system_id AND s.active
            ORDER BY r.system_id, r.rank
        ), top AS (
            SELECT b.id FROM best b ORDER BY b.rank LIMIT :k
        )
        SELECT c.fetched, w.* FROM (SELECT count(*) AS fetched FROM nearest) c LEFT JOIN (
            SELECT e.system_id, e.reference_image_id, e.embedding <=> :q AS distance, s.manufacturer, s.name
            FROM top t JOIN reference_embeddings e ON e.id = t.id JOIN implant_systems s ON s.id = e.system_id
        ) w ON true ORDER BY w.distance, w.system_id
    """


def _iterative_sql(model_id: str) -> str:
    return f"""
        WITH nearest AS MATERIALIZED (
            SELECT e.system_id, e.reference_image_id, e.embedding <=> :q AS distance
            FROM reference_embeddings e JOIN implant_systems a ON a.id = e.system_id AND a.active
            WHERE e.model_id = {sql_literal(model_id)}
            ORDER BY e.embedding <=> :q
            LIMIT :n
        )
        SELECT c.fetched, best.* FROM (SELECT count(*) AS fetched FROM nearest) c LEFT JOIN (
            SELECT DISTINCT ON (n.system_id) n.system_id, n.reference_image_id, n.distance, s.manufacturer, s.name
            FROM nearest n JOIN implant_systems s ON s.id = n.system_id AND s.active
            ORDER BY n.system_id, n.distance, n.reference_image_id
        ) best ON true ORDER BY best.distance, best.system_id LIMIT :k
    """


def _best_reference_exact_sql(model_id: str) -> str:
    return f"""
        SELECT * FROM (
            SELECT DISTINCT ON (e.system_id) e.system_id, e.reference_image_id,
                   e.embedding <=> :q AS distance, s.manufacturer, s.name
            FROM reference_embeddings e JOIN implant_systems s ON s.id = e.system_id AND s.active
            WHERE e.model_id = {sql_literal(model_id)}
            ORDER BY e.system_id, distance, e.reference_image_id
        ) best ORDER BY best.distance, best.system_id LIMIT :k
    """


def _scored_sql(model_id: str, pool: bool) -> str:
    """Systems scored by the mean distance of their SCORE_REFERENCES closest references (all active
    systems of the model, or only those in :ids), best first; `reference_image_id` is the closest. Each
    row carries its system's spec and attributes (what the re-rank and the answer's look-alike lines read)."""
    where = "AND e.system_id = ANY(:ids)" if pool else ""
    return f"""
        WITH ranked AS (
            SELECT e.system_id, e.reference_image_id, e.embedding <=> :q AS distance,
                   row_number() OVER (PARTITION BY e.system_id
                                      ORDER BY e.embedding <=> :q, e.reference_image_id) AS place
            FROM reference_embeddings e JOIN implant_systems a ON a.id = e.system_id AND a.active
            WHERE e.model_id = {sql_literal(model_id)} {where}
        ), scored AS (
            SELECT system_id, avg(distance) AS distance,
                   (array_agg(reference_image_id ORDER BY place))[1] AS reference_image_id
            FROM ranked WHERE place <= {SCORE_REFERENCES} GROUP BY system_id
        )
        SELECT c.system_id, c.distance, c.reference_image_id, s.manufacturer, s.name, s.spec, s.attributes
        FROM scored c JOIN implant_systems s ON s.id = c.system_id
        ORDER BY c.distance, c.system_id LIMIT :k
    """


def _candidates(rows) -> list[Candidate]:
    return [Candidate(r.system_id, r.manufacturer, r.name, float(1.0 - r.distance), r.reference_image_id,
                      getattr(r, "spec", None), getattr(r, "attributes", None)) for r in rows]


def _query_vector(embedding: np.ndarray) -> np.ndarray:
    vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
    if vector.shape[0] != EMBEDDING_DIM or not np.all(np.isfinite(vector)):
        raise BadRequest(f"query embedding must be {EMBEDDING_DIM} finite numbers")
    return vector


def _vector_sql(sql: str):
    return text(sql).bindparams(bindparam("q", type_=Vector(EMBEDDING_DIM)))


async def exact_search(session: AsyncSession, embedding: np.ndarray, model_id: str, top_k: int) -> list[Candidate]:
    """Exact nearest systems (sequential scan): the reference answer, and the fallback."""
    rows = (await session.execute(_vector_sql(_scored_sql(model_id, pool=False)),
                                  {"q": _query_vector(embedding), "k": top_k})).all()
    return _candidates(rows)


async def search_systems(session: AsyncSession, embedding: np.ndarray, model_id: str, top_k: int,
                         connection: np.ndarray | None = None, features: dict | None = None,
                         turns: Turns | None = None) -> list[Candidate]:
    """The `top_k` active systems nearest to `embedding`, best first (see module docstring). With the
    connection reader's probabilities (`connection`), the feature reader's reading (`features`) or the thread
    count (`turns`, a `raiox.vision.threads.Turns`), the max(top_k, RERANK_POOL) nearest are re-ranked by them
    first: the re-rank reorders the answer, it never brings in a system similarity alone would not list."""
    if top_k < 1:
        return []
    reads = Reads(connection, features, turns)
    found = await _nearest(session, embedding, model_id, _pool(top_k, reads))
    return _answer(found, reads, top_k)


def _pool(top_k: int, reads: Reads) -> int:
    """Systems to fetch: the re-rank reorders at least RERANK_POOL of them."""
    return max(top_k, RERANK_POOL) if reads else top_k


def _answer(found: list[Candidate], reads: Reads, top_k: int) -> list[Candidate]:
    """The top k of ``found``, re-ranked by the reads when there are any."""
    if reads:
        found = rerank(found, reads)
    return found[:top_k]


async def search_fixture(session: AsyncSession, fixture, model_id: str, top_k: int):
    """`search_systems` for one analysed fixture (`raiox.vision.FixtureEmbedding`), and the fixture as searched.

    A located fixture whose ends the localiser was unsure of carries its reverse reading (platform and apex ends
    swapped; `raiox.vision.ranking.checks_orientation`). When that matches the
    catalog better by more than `ORIENTATION_MARGIN` (best system score), the localiser called the ends the
    wrong way round: the reversed fixture (box, embedding; nothing read, so no re-rank) is searched and
    returned instead."""
    if top_k < 1:
        return fixture, []
    reads = fixture.reads()
    found = await _nearest(session, fixture.embedding, model_id, _pool(top_k, reads))
    if fixture.reverse is not None and found:
        back = await _nearest(session, fixture.reverse.embedding, model_id, 1)
        if back and turn_over(found[0].score, back[0].score):
            log.info("fixture_turned_over", score=round(found[0].score, 4), reverse_score=round(back[0].score, 4))
            fixture = fixture.reversed()
            reads = fixture.reads()  # nothing read the other way up: no re-rank
            found = await _nearest(session, fixture.embedding, model_id, _pool(top_k, reads))
    return fixture, _answer(found, reads, top_k)


def rerank(found: list[Candidate], reads: Reads) -> list[Candidate]:
    """`found` re-scored by the connection (`raiox.vision.connection`) and the design features
    (`raiox.vision.features`) their specs name and by the thread count (`raiox.vision.threads`) their lines'
    lengths predict, best first (from the specs and attributes the scoring search selected with them)."""
    from raiox.vision import connection_class

    specs = [c.spec for c in found]
    lines = [line_of(c.spec, c.attributes) for c in found]
    extra = read_bonus(len(found), reads, [connection_class(s) for s in specs], specs, lines)
    scored = [replace(c, score=c.score + float(b)) for c, b in zip(found, extra)]
    return sorted(scored, key=lambda c: (-c.score, c.system_id))


async def _nearest(session: AsyncSession, embedding: np.ndarray, model_id: str, top_k: int) -> list[Candidate]:
    vector = _query_vector(embedding)
    size = top_k * 2 + 8
    while size <= MAX_POOL:
        pool = await best_reference_systems(session, vector, model_id, size)
        scored = _candidates((await session.execute(_vector_sql(_scored_sql(model_id, pool=True)), {
            "q": vector, "k": top_k, "ids": [c.system_id for c in pool]})).all())
        # nothing outside the pool can score above the pool's last best reference (a system deactivated
        # between the two statements can leave fewer than top_k: that answer is complete too)
        if len(pool) < size or len(scored) < top_k or scored[-1].score >= pool[-1].score:
            return scored
        size *= 2
    return await exact_search(session, vector, model_id, top_k)


async def _best_reference_exact(session: AsyncSession, vector: np.ndarray, model_id: str,
                                top_k: int) -> list[Candidate]:
    rows = (await session.execute(_vector_sql(_best_reference_exact_sql(model_id)), {"q": vector, "k": top_k})).all()
    return _candidates(rows)


async def best_reference_systems(session: AsyncSession, embedding: np.ndarray, model_id: str,
                                 top_k: int) -> list[Candidate]:
    """The `top_k` active systems whose best reference is nearest (HNSW; exact scan when it cannot tell);
    `score` here is that reference's similarity."""
    vector = _query_vector(embedding)
    iterative = await has_iterative_scan(session)
    if iterative:
        await session.execute(text("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)"))
    stmt = _vector_sql(_approximate_sql(model_id, iterative))
    for fetch in _fetch_sizes(top_k, await _refs_per_system(session)):
        ef_search = min(max(fetch, MIN_EF_SEARCH), MAX_FETCH)
        await session.execute(text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(ef_search)})
        rows = (await session.execute(stmt, {"q": vector, "n": fetch, "k": top_k})).all()
        found = [row for row in rows if row.system_id is not None]
        if len(found) >= top_k:
            return _candidates(found)
        if rows[0].fetched < fetch:
            break  # the index has nothing more to give under these filters: only an exact scan can tell
    return await _best_reference_exact(session, vector, model_id, top_k)


def _fetch_sizes(top_k: int, refs_per_system: float = REFS_PER_SYSTEM):
    """Reference rows to fetch: enough for top_k systems of average size, then x4 per round, up to MAX_FETCH.

    The nearest references of a query cluster in its best systems: on clustered data with 50
    references per system, the 5th distinct system appears by rank 115 for 99 % of queries
    (bench/search.py data), i.e. about top_k * (references per system) / 2 rows. Fewer means a
    second round trip, more a wider scan."""
    per_system = min(max(math.ceil(refs_per_system / 2), REFS_PER_SYSTEM), MAX_REFS_PER_SYSTEM)
    size = min(top_k * per_system, MAX_FETCH)
    while True:
        yield size
        if size >= MAX_FETCH:
            return
        size = min(size * 4, MAX_FETCH)


_stats: dict[str, tuple[float, float]] = {}


async def _refs_per_system(session: AsyncSession) -> float:
    """Average references per system from the planner's statistics (cheap; cached for a minute).
    Only the speed depends on it: widening and the exact fallback keep the result complete."""
    key = str(session.get_bind().engine.url)
    cached = _stats.get(key)
    if cached and time.monotonic() - cached[0] < STATS_TTL_S:
        return cached[1]
    row = (await session.execute(text(
        "SELECT (SELECT reltuples FROM pg_class WHERE oid = 'reference_embeddings'::regclass),"
        " (SELECT reltuples FROM pg_class WHERE oid = 'implant_systems'::regclass)"
    ))).one()
    refs, systems = float(row[0]), float(row[1])
    if refs > 0 and systems <= 0:  # never analysed yet (a young, small table): count it
        systems = float((await session.execute(text("SELECT count(*) FROM implant_systems"))).scalar_one())
    value = refs / systems if refs > 0 and systems > 0 else float(REFS_PER_SYSTEM)
    _stats[key] = (time.monotonic(), value)
    return value
