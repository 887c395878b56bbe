"""Search: systems scored by their closest references, active systems only, never mixing models, full recall."""

import numpy as np
import pytest
from sqlalchemy import text

from raiox.catalog.search import exact_search, search_systems
from raiox.catalog.vector_index import create_index_sql, ensure_vector_index, index_name
from catalog_helpers import DIM, add_system, at_similarity, exact_top, unit

MODEL = "raiox-v1"


async def _force_index(session) -> None:
    """Small test tables would be scanned sequentially: make the planner take the HNSW path."""
    await session.execute(text("ANALYZE reference_embeddings"))
    await session.execute(text("SET LOCAL enable_seqscan = off"))
    await session.execute(text("SET LOCAL enable_bitmapscan = off"))
    await session.execute(text("SET LOCAL enable_sort = off"))


async def _plan(session, model_id: str) -> str:
    from pgvector.sqlalchemy import Vector
    from sqlalchemy import bindparam

    from raiox.catalog.search import _approximate_sql

    stmt = text("EXPLAIN " + _approximate_sql(model_id, False)).bindparams(bindparam("q", type_=Vector(DIM)))
    rows = await session.execute(stmt, {"q": np.ones(DIM, np.float32), "n": 40, "k": 5})
    return "\n".join(rows.scalars())


@pytest.fixture
def rng():
    return np.random.default_rng(7)


async def test_filtered_top_k_has_full_recall_with_inactive_systems_and_other_models(session, rng):
    query = unit(rng.standard_normal(DIM))[0]
    active, everything = {}, {}
    for i in range(40):
        centre = rng.standard_normal(DIM)
        if i < 12:  # inactive systems sit right next to the query: they would fill an unfiltered top-k
            centre = query * 40 + rng.standard_normal(DIM)
        vectors = centre + 0.3 * rng.standard_normal((5, DIM))
        sid = f"sys-{i:02d}"
        await add_system(session, sid, vectors, MODEL, active=i >= 12)
        everything[sid] = vectors
        if i >= 12:
            active[sid] = vectors
    for i in range(30):  # another model: vectors identical to the query, must never show up
        await add_system(session, f"other-{i:02d}", np.repeat(query[None], 3, axis=0), "other-model")
    await ensure_vector_index(session, "other-model")
    await _force_index(session)
    assert index_name(MODEL) in await _plan(session, MODEL)  # the HNSW path really runs

    for k in (1, 5, 10, 28):
        found = await search_systems(session, query, MODEL, k)
        expected = exact_top(query, active, k)
        assert [c.system_id for c in found] == [sid for sid, _ in expected]
        assert [round(c.score, 4) for c in found] == [round(s, 4) for _, s in expected]
    assert len(await search_systems(session, query, MODEL, 50)) == 28  # every active system, no more


async def test_one_system_crowding_the_neighbourhood_still_yields_k_systems(session, rng):
    query = unit(rng.standard_normal(DIM))[0]
    crowd = query * 10 + rng.standard_normal((1100, DIM))  # > MAX_FETCH references of one system
    await add_system(session, "crowd", crowd, MODEL)
    systems = {"crowd": crowd}
    for i in range(6):
        systems[f"far-{i}"] = rng.standard_normal((3, DIM))
        await add_system(session, f"far-{i}", systems[f"far-{i}"], MODEL)
    await _force_index(session)
    found = await search_systems(session, query, MODEL, 5)
    assert [c.system_id for c in found] == [sid for sid, _ in exact_top(query, systems, 5)]
    assert found[0].system_id == "crowd"


async def test_best_reference_is_reported_and_models_are_never_mixed(session, rng):
    query = unit(rng.standard_normal(DIM))[0]
    near = np.stack([query + 0.005 * rng.standard_normal(DIM), rng.standard_normal(DIM)])
    await add_system(session, "alpha", near, MODEL)
    expected = float((unit(near) @ query).mean())  # the mean of its references' similarities (it has two)
    await add_system(session, "beta", rng.standard_normal((2, DIM)), MODEL)
    await add_system(session, "beta", np.repeat(query[None], 1, axis=0) + 0.001, "raiox-v0")
    await ensure_vector_index(session, "raiox-v0")
    found = await search_systems(session, query, MODEL, 2)
    assert found[0].system_id == "alpha" and found[0].score == pytest.approx(expected, abs=1e-4)
    from raiox.models import ReferenceImage

    best = await session.get(ReferenceImage, found[0].reference_image_id)
    assert best.storage_key == "k/alpha/0"
    other = await search_systems(session, query, "raiox-v0", 5)
    assert [c.system_id for c in other] == ["beta"] and other[0].score > 0.99
    assert await search_systems(session, query, "unknown-model", 5) == []
    assert [c.system_id for c in await exact_search(session, query, MODEL, 2)] == [c.system_id for c in found]


async def test_candidates_carry_their_systems_spec_and_attributes(session, rng):
    """The scoring search selects each system's spec and attributes with its name: the re-rank and the
    answer's look-alike lines read them without loading the systems again."""
    from raiox.catalog import repository
    from raiox.synth import demo_catalog

    query = unit(rng.standard_normal(DIM))[0]
    spec = demo_catalog()[3].spec
    await add_system(session, "alpha", np.stack([query, query]) + 0.01 * rng.standard_normal((2, DIM)), MODEL)
    await add_system(session, "beta", rng.standard_normal((2, DIM)), MODEL)
    await repository.upsert_system(session, "alpha", "Test Co", "Alpha", {"lengths": [8, 10], "connection": "cone"},
                                   spec)
    for found in (await search_systems(session, query, MODEL, 2), await exact_search(session, query, MODEL, 2)):
        assert [c.system_id for c in found] == ["alpha", "beta"]
        assert found[0].spec == spec and found[0].attributes == {"lengths": [8, 10], "connection": "cone"}
        assert found[1].spec is None and found[1].attributes == {"connection": "cone"}


async def test_a_system_with_several_close_references_outranks_one_chance_resemblance(session, rng):
    """Fifteen systems each hold one reference almost identical to the query and two unrelated ones; one
    system holds three references at 0.8. By best reference the steady system ranks 16th, outside the first
    pool of candidates (10 for k = 1): the pool must widen until it is scored, and it wins."""
    query = unit(rng.standard_normal(DIM))[0]
    systems = {f"spiky-{i:02d}": at_similarity(query, [0.9 + 0.001 * i, 0.0, 0.0], rng) for i in range(15)}
    systems["steady"] = at_similarity(query, [0.8, 0.8, 0.8], rng)
    for sid, vectors in systems.items():
        await add_system(session, sid, vectors, MODEL)
    await _force_index(session)
    for k in (1, 3):
        found = await search_systems(session, query, MODEL, k)
        assert [c.system_id for c in found] == [sid for sid, _ in exact_top(query, systems, k)]
        assert found[0].system_id == "steady" and found[0].score == pytest.approx(0.8, abs=1e-4)
        assert [c.system_id for c in await exact_search(session, query, MODEL, k)] == [c.system_id for c in found]
    assert [sid for sid, _ in exact_top(query, systems, 1, references=1)] == ["spiky-14"]  # max alone would miss it


async def test_vector_index_per_model_is_partial_and_idempotent(session):
    model = "open_clip:ViT-B-32/it's"
    assert await ensure_vector_index(session, model) is True
    assert await ensure_vector_index(session, model) is False
    definition = (await session.execute(
        text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": index_name(model)}
    )).scalar_one()
    assert "hnsw" in definition and "vector_cosine_ops" in definition and "it''s" in definition
    assert len(index_name(model)) <= 63 and index_name(model) != index_name("open_clip:ViT-B-32/its")
    default = (await session.execute(
        text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": index_name(MODEL)}
    )).scalar_one()  # created by migration 0002 with the same definition
    assert "raiox-v1" in default and "m='16',ef_construction='128'" in default.replace(" ", "")  # 0003
    assert "ef_construction='128'" in definition.replace(" ", "")
    assert create_index_sql(MODEL).startswith("CREATE INDEX IF NOT EXISTS")


async def test_bad_query_vectors_are_rejected(session):
    from raiox.kit.errors import BadRequest

    with pytest.raises(BadRequest):
        await search_systems(session, np.ones(10), MODEL, 5)
    with pytest.raises(BadRequest):
        await search_systems(session, np.full(DIM, np.nan), MODEL, 5)


async def test_connection_read_reorders_close_siblings_by_their_specs(session, rng):
    from raiox.catalog import repository
    from raiox.synth import demo_catalog
    from raiox.vision.connection import CLASSES, FLOOR, WEIGHT, spec_class

    demo = demo_catalog()
    hex_spec = next(s.spec for s in demo if s.spec["connection"]["kind"] == "external_hex")
    cone_spec = next(s.spec for s in demo if s.spec["connection"].get("cone_angle_deg") == 11.5)
    query = unit(rng.standard_normal(DIM))[0]
    for sid, cosine, spec in (("hex", 0.90, hex_spec), ("cone", 0.895, cone_spec), ("unknown", 0.85, None),
                              ("far-cone", 0.5, cone_spec)):
        await repository.upsert_system(session, sid, "Test Co", sid, {}, spec)
        await add_system(session, sid, at_similarity(query, [cosine] * 3, rng), MODEL)
    probs = np.full(len(CLASSES), 0.1 / (len(CLASSES) - 2), np.float32)
    probs[spec_class(cone_spec)], probs[spec_class(hex_spec)] = 0.88, 0.02

    plain = await search_systems(session, query, MODEL, 4)
    assert [c.system_id for c in plain] == ["hex", "cone", "unknown", "far-cone"]
    read = await search_systems(session, query, MODEL, 4, connection=probs)
    assert [c.system_id for c in read] == ["cone", "hex", "unknown", "far-cone"]  # only the close sibling moves
    by_id = {c.system_id: c.score for c in read}
    assert by_id["cone"] == pytest.approx(0.895 + WEIGHT * np.log(0.88 + FLOOR), abs=1e-4)
    assert by_id["hex"] == pytest.approx(0.90 + WEIGHT * np.log(0.02 + FLOOR), abs=1e-4)
    # a system without a spec is neither rewarded nor punished: the mean bonus of those with one
    known = [WEIGHT * np.log(p + FLOOR) for p in (0.02, 0.88, 0.88)]
    assert by_id["unknown"] == pytest.approx(0.85 + np.mean(known), abs=1e-4)
    assert [c.system_id for c in await search_systems(session, query, MODEL, 1, connection=probs)] == ["cone"]


async def test_feature_read_reorders_close_siblings_and_adds_to_the_connection_read(session, rng):
    from raiox.catalog import repository
    from raiox.synth import demo_catalog
    from raiox.vision.attributes import HEADS
    from raiox.vision.connection import CLASSES, spec_class
    from raiox.vision.features import WEIGHT

    demo = demo_catalog()
    flat = next(s.spec for s in demo if s.spec["apex"]["shape"] == "flat")
    cone = next(s.spec for s in demo if s.spec["apex"]["shape"] == "cone" and spec_class(s.spec) != spec_class(flat))
    query = unit(rng.standard_normal(DIM))[0]
    for sid, cosine, spec in (("flat", 0.90, flat), ("cone", 0.897, cone), ("unknown", 0.85, None)):
        await repository.upsert_system(session, sid, "Test Co", sid, {}, spec)
        await add_system(session, sid, at_similarity(query, [cosine] * 3, rng), MODEL)
    shapes = HEADS["apex_shape"][0]
    logp = np.log(np.array([{"cone": 0.9, "flat": 0.02}.get(s, 0.08) for s in shapes], np.float32))
    feats = {"apex_shape": logp}

    read = await search_systems(session, query, MODEL, 3, features=feats)
    assert [c.system_id for c in read] == ["cone", "flat", "unknown"]
    by_id = {c.system_id: c.score for c in read}
    assert by_id["cone"] == pytest.approx(0.897 + WEIGHT * np.log(0.9), abs=1e-4)
    assert by_id["flat"] == pytest.approx(0.90 + WEIGHT * np.log(0.02), abs=1e-4)
    assert by_id["unknown"] == pytest.approx(0.85 + WEIGHT * np.mean(np.log([0.9, 0.02])), abs=1e-4)
    # both reads add up: a connection read that backs the flat apex's spec strongly wins it back
    probs = np.full(len(CLASSES), 1e-3, np.float32)
    probs[spec_class(flat)] = 1.0
    both = await search_systems(session, query, MODEL, 3, connection=probs, features=feats)
    assert [c.system_id for c in both][:2] == ["flat", "cone"]
    # a read that favours no value changes nothing
    none = await search_systems(session, query, MODEL, 3, features={"flutes": np.log(np.full(5, 0.2))})
    assert [c.system_id for c in none][:2] == ["flat", "cone"]


async def test_the_catalog_search_re_ranks_by_the_count(session):
    """`search_systems` with a count: the system whose line (attributes.lengths) fits it comes first."""
    from raiox.catalog import repository
    from raiox.vision import threads
    from raiox.vision.threads import Turns

    rng = np.random.default_rng(5)
    base = rng.standard_normal(512)
    spec = {"thread": {"pitch_mm": 1.2}, "length_mm": 10.0}
    for system_id, lengths in (("short-line", [8.0, 10.0]), ("long-line", [13.0, 15.0])):
        await repository.upsert_system(session, system_id, "Test Co", system_id, {"lengths": lengths}, spec)
        await add_system(session, system_id, np.stack([base + 0.01 * rng.standard_normal(512) for _ in range(2)]),
                         "raiox-v1")

    query = base / np.linalg.norm(base)
    for length, first in ((15.0, "long-line"), (8.0, "short-line")):
        found = await search_systems(session, query, "raiox-v1", 2,
                                     turns=Turns((length + threads.OFFSET_MM) / 1.2, 9.0))
        assert [c.system_id for c in found][0] == first
        assert all(c.score <= 1.0 for c in found)
