"""Test data for the review and delivery tests: radiograph-like images, systems, cases, users."""

import io
import itertools
import uuid

import numpy as np
from PIL import Image, ImageDraw

from raiox.kit.storage import content_key, get_storage
from raiox.models import (
    Case, CaseImage, CaseRanking, CaseStatus, Fixture, FixtureResult, ImplantSystem, ReferenceEmbedding,
    ReferenceImage, User,
)


def xray_png(seed: int = 0, size: tuple[int, int] = (640, 420), implants: int = 1) -> bytes:
    """A radiograph-like picture: dark jaw with bright threaded implant bodies (deterministic)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    bone = 70 + 45 * np.exp(-((yy - h * 0.55) / (h * 0.3)) ** 2) + rng.normal(0, 9, (h, w))
    image = Image.fromarray(np.clip(bone, 0, 255).astype("uint8"), mode="L")
    draw = ImageDraw.Draw(image)
    for k in range(implants):
        cx, top, bw, bh = w * (k + 1) / (implants + 1), h * 0.22, 34 + 6 * (seed % 3), h * 0.5
        draw.rectangle([cx - bw / 2, top, cx + bw / 2, top + bh], fill=232)
        for t in range(int(bh // 14)):
            y = top + 8 + t * 14
            draw.polygon([(cx - bw / 2 - 6, y), (cx - bw / 2, y - 5), (cx - bw / 2, y + 5)], fill=225)
            draw.polygon([(cx + bw / 2 + 6, y), (cx + bw / 2, y - 5), (cx + bw / 2, y + 5)], fill=225)
        draw.polygon([(cx - bw / 2, top + bh), (cx + bw / 2, top + bh), (cx, top + bh + 24)], fill=232)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def unit_vector(seed: int) -> list[float]:
    v = np.random.default_rng(seed).normal(size=512)
    return (v / np.linalg.norm(v)).astype("float32").tolist()


async def add_system(session, system_id: str, manufacturer: str, name: str, *, seed: int = 1) -> ImplantSystem:
    system = ImplantSystem(id=system_id, manufacturer=manufacturer, name=name, connection="Cone Morse",
                           body_shape="cônico", attributes={"diameters": [3.5, 4.0]})
    session.add(system)
    await session.flush()
    data = xray_png(seed, size=(240, 360))
    key, sha = content_key(data)
    await get_storage().put(key, data, "image/png")
    ref = ReferenceImage(system_id=system_id, storage_key=key, sha256=sha, width=240, height=360, source="import")
    session.add(ref)
    await session.flush()
    session.add(ReferenceEmbedding(reference_image_id=ref.id, system_id=system_id, model_id="raiox-v1",
                                   embedding=unit_vector(seed)))
    await session.flush()
    return system


_FILM_SEEDS = itertools.count(100)  # was hash(submission id) % 50: two cases' films collided ~2 % of runs


async def add_case(session, *, submission_id: str | None = None, status: str = CaseStatus.awaiting_review,
                   candidates: list[tuple[str, float]] = (), email: str | None = "dentista@example.com",
                   name: str = "Dra. Ana Souza", images: int = 1, tooth: str | None = None) -> Case:
    case = Case(jotform_submission_id=submission_id or str(uuid.uuid4().int)[:19], client_name=name,
                client_email=email, client_phone="(11) 98765-4321", status=status, tooth=tooth,
                notes="Implante antigo, sem documentação.",
                answers={"q3_nome": {"first": "Ana", "last": "Souza"}, "q4_email": email or "", "q8_regiao": "36"})
    session.add(case)
    await session.flush()
    for position in range(images):
        data = xray_png(next(_FILM_SEEDS), implants=1 + position % 2)  # every film its own bytes: no chance sha256 twin
        key, sha = content_key(data)
        await get_storage().put(key, data, "image/png")
        image = CaseImage(case_id=case.id, position=position, source_url=f"https://www.jotform.com/uploads/x/{position}.png",
                          filename=f"raio-x-{position + 1}.png", storage_key=key, sha256=sha, size_bytes=len(data),
                          content_type="image/png", width=640, height=420, status="processed")
        session.add(image)
        await session.flush()
        read = [0.02, 0.03, 0.01, 0.05, 0.04, 0.72, 0.05, 0.04, 0.04] if position == 0 else None  # conical 11.5
        body = {"apex_shape": [0.03, 0.02, 0.95], "profile": [0.9, 0.05, 0.03, 0.01, 0.01],  # cone apex, V thread
                "collar": [0.5, 0.3, 0.1, 0.1]} if position == 0 else None  # the collar is not sure: not shown
        fixture = Fixture(case_image_id=image.id, index=0, box=[[300, 90], [340, 90], [340, 300], [300, 300]],
                          confidence=0.93, model_id="raiox-v1", embedding=unit_vector(7 + position), connection=read,
                          features=body, thread_turns=11.8 if position == 0 else None)
        session.add(fixture)
        await session.flush()
        for rank, (system_id, score) in enumerate(candidates, start=1):
            session.add(FixtureResult(fixture_id=fixture.id, rank=rank, system_id=system_id,
                                      score=score - 0.01 * position))
    for rank, (system_id, score) in enumerate(candidates, start=1):
        session.add(CaseRanking(case_id=case.id, rank=rank, system_id=system_id, score=score, evidence={}))
    await session.flush()
    return case


async def add_user(session, email: str, password: str, role: str = "reviewer") -> User:
    from raiox.review.accounts import hash_password

    user = User(email=email, password_hash=hash_password(password), role=role)
    session.add(user)
    await session.flush()
    return user


async def add_demo_systems(session, count: int = 4):
    """Demo catalog systems (raiox.synth) with one rendered reference image each."""
    from raiox.synth import demo_catalog, render_reference, to_png

    chosen = [demo_catalog()[i] for i in (0, 5, 12, 40, 77, 101)[:count]]
    for n, demo in enumerate(chosen):
        system = ImplantSystem(id=demo.id, manufacturer=demo.manufacturer, name=demo.name, spec=demo.spec,
                               attributes=demo.attributes, connection=demo.attributes.get("connection"))
        session.add(system)
        await session.flush()
        data = to_png(render_reference(demo.spec, seed=n))
        key, sha = content_key(data)
        await get_storage().put(key, data, "image/png")
        ref = ReferenceImage(system_id=demo.id, storage_key=key, sha256=sha, source="demo")
        session.add(ref)
        await session.flush()
        session.add(ReferenceEmbedding(reference_image_id=ref.id, system_id=demo.id, model_id="raiox-v1",
                                       embedding=unit_vector(n)))
    await session.flush()
    return chosen


async def add_demo_case(session, systems, scores, *, submission_id: str, seed: int = 4) -> Case:
    """A case whose X-ray is a rendered scene of the first system, ranked as SCORES says."""
    from raiox.synth import render_scene, to_png

    case = await add_case(session, submission_id=submission_id, images=0)
    scene = render_scene([systems[0].spec], seed=seed)
    data = to_png(scene.image)
    key, sha = content_key(data)
    await get_storage().put(key, data, "image/png")
    height, width = scene.image.shape[:2]
    image = CaseImage(case_id=case.id, position=0, source_url="https://www.jotform.com/uploads/x/rx.png",
                      filename="radiografia-36.png", storage_key=key, sha256=sha, size_bytes=len(data),
                      content_type="image/png", width=width, height=height, status="processed")
    session.add(image)
    await session.flush()
    fixture = Fixture(case_image_id=image.id, index=0, box=np.asarray(scene.boxes[0]).tolist(), confidence=0.96,
                      model_id="raiox-v1", embedding=unit_vector(11))
    session.add(fixture)
    await session.flush()
    for rank, (system, score) in enumerate(zip(systems, scores, strict=False), start=1):
        session.add(FixtureResult(fixture_id=fixture.id, rank=rank, system_id=system.id, score=score))
        session.add(CaseRanking(case_id=case.id, rank=rank, system_id=system.id, score=score, evidence={}))
    await session.flush()
    return case


async def settle_jobs(session) -> None:
    """Mark the deferred jobs done, as a worker would have (tests that call `deliver` themselves)."""
    from sqlalchemy import text

    await session.execute(text("UPDATE procrastinate_jobs SET status = 'succeeded' WHERE status IN ('todo', 'doing')"))


async def add_scene_film(session, case, scene) -> CaseImage:
    """A rendered scene (`raiox.synth.render_scene`) as the case's second analysed film, on which the analysis found
    nothing."""
    from raiox.synth import to_png

    data = to_png(scene.image)
    key, sha = content_key(data)
    await get_storage().put(key, data, "image/png")
    height, width = scene.image.shape[:2]
    image = CaseImage(case_id=case.id, position=1, source_url="https://www.jotform.com/uploads/x/rx2.png",
                      filename="rx2.png", storage_key=key, sha256=sha, width=width, height=height, status="processed")
    session.add(image)
    await session.flush()
    return image


async def reindex_as(session, model_id: str) -> None:
    """Every catalog vector copied under MODEL_ID, as `raiox catalog reindex` with that model would leave the
    catalog (the vectors themselves do not matter to the tests that use it)."""
    from sqlalchemy import insert, literal, select

    await session.execute(insert(ReferenceEmbedding).from_select(
        ["reference_image_id", "system_id", "model_id", "embedding"],
        select(ReferenceEmbedding.reference_image_id, ReferenceEmbedding.system_id, literal(model_id),
               ReferenceEmbedding.embedding)))
