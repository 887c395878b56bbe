"""Liveness (`/healthz`) and readiness (`/readyz`: database, storage, model, catalog) probes."""

import asyncio
from typing import Literal, NamedTuple

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.db import get_engine
from raiox.kit.deps import DbSession
from raiox.kit.storage import get_storage

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers", responses={200: {
    "description": "The process serves requests", "content": {"application/json": {"example": {"status": "ok"}}}}})
async def healthz() -> dict:
    """Liveness probe: `{"status": "ok"}` whenever the process serves requests. No token; it checks nothing else
    (no database, storage or model): whether the instance can do its work is `/readyz`."""
    return {"status": "ok"}


async def _check_database() -> None:
    async with get_engine().connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _check_model() -> None:
    """The embedder and the small models beside it load: a configured file that ONNX Runtime cannot open
    (``RAIOX_CONNECTION_MODEL``, ``RAIOX_FEATURE_MODEL``, ``RAIOX_ENDS_MODEL``) makes the deploy not ready
    instead of failing the analysis of every case; so does one that would silently do nothing (a missing file,
    or a feature reader fitted on another embedder's vectors): every answer would lose that step unnoticed."""
    from raiox.vision import connection, ends, features, get_embedder
    from raiox.vision.pipeline import load_readers

    model_id = (await asyncio.to_thread(get_embedder)).model_id
    await asyncio.to_thread(load_readers, model_id)
    for why in (connection.problem(), await asyncio.to_thread(features.problem, model_id), ends.problem()):
        if why:
            raise RuntimeError(why)


EMPTY, MISSING_VECTORS = "empty", "missing_vectors"
# a catalog state that is reported, not a failure: why, for `warnings`
NOT_FAILING = {
    EMPTY: "the catalog holds no reference image: POST /identify answers 503 catalog_missing and cases get no "
           "candidate until one is loaded (`raiox catalog demo` or `raiox catalog import`)",
    MISSING_VECTORS: "the catalog's reference images have no vectors of {model}: POST /identify answers 503 "
                     "catalog_missing until `raiox catalog reindex` is run with this model",
}


class Reserved(NamedTuple):
    """A probe that passes with a reservation: its state (a NOT_FAILING key) and why, for `warnings`."""

    state: str
    why: str


async def _check_catalog(session: AsyncSession) -> str | Reserved:
    """Whether the catalog can answer a search with the configured model: "ok"; "empty" (no reference image) or
    "missing_vectors" (reference images, no vector of any model): reported with its warning (`Reserved`, worded with
    the model id this probe already asked the embedder for), the instance still ready. Raises (not ready) when the
    catalog has vectors but none of this model (the model was switched without `raiox catalog reindex`), so a deploy
    that does this rolls back.

    Why an empty or unembedded catalog does not fail readiness: the webhook and the panel work without it (cases are
    received, stored and reviewed; the catalog is loaded after the first deploy, which waits for /readyz = 200), and
    no rollback would bring vectors back. A catalog of another model's vectors is what a release switch caused."""
    from raiox.catalog.repository import has_embeddings, has_references
    from raiox.vision import get_embedder

    model_id = (await asyncio.to_thread(get_embedder)).model_id
    try:
        anything, ours = await has_embeddings(session, model_id)
        references = anything or ours or await has_references(session)
    except BaseException:  # a probe cut off by its timeout leaves the session mid-statement: end it before the commit
        await session.rollback()
        raise
    if anything and not ours:
        raise RuntimeError(f"the catalog has no vectors of {model_id}: run `raiox catalog reindex` with this model")
    if ours:
        return "ok"
    state = MISSING_VECTORS if references else EMPTY
    return Reserved(state, NOT_FAILING[state].format(model=model_id))


class Readiness(BaseModel):
    """Each dependency's probe: "ok", or "error: <why>" (not ready); the catalog's may also be "empty" (no reference
    image) or "missing_vectors" (reference images without vectors of the configured model), which do not make the
    instance not ready: `warnings` says why (POST /identify answers 503 catalog_missing meanwhile)."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, str]
    warnings: dict[str, str] = Field(default_factory=dict, description="Checks that pass with a reservation, by "
                                     "name: what does not work meanwhile (an empty catalog: POST /identify)")


READINESS = {
    200: {"model": Readiness, "description": "Ready: the database, object storage, model and catalog all answer (an "
          "empty catalog, or one without vectors of the model, is ready: `checks.catalog` says `empty` or "
          "`missing_vectors` and `warnings.catalog` why; POST /identify answers 503 catalog_missing meanwhile)"},
    503: {"model": Readiness, "description": "Not ready: a dependency (database, object storage, model or catalog) "
          "failed its probe; `checks` says which and why. A deploy that gets this rolls back"},
}


@router.get("/readyz", responses=READINESS, summary="Readiness: every dependency answers")
async def readyz(session: AsyncSession = DbSession) -> JSONResponse:
    """Readiness probe (no token): the database, object storage, the models and the catalog are each probed (10 s at
    most each); 200 when all answer, else 503 with `checks` naming which failed and why. Deploys wait for 200 and roll
    back on 503. An empty catalog, or one without vectors of the model, is ready, with a warning."""
    checks = {"database": _check_database, "storage": get_storage().check, "model": _check_model,
              "catalog": lambda: _check_catalog(session)}
    results: dict[str, str] = {}
    warnings: dict[str, str] = {}
    for name, check in checks.items():
        if name == "catalog" and results["database"] != "ok":
            results[name] = "error: database not reachable"
            continue
        try:
            outcome = await asyncio.wait_for(check(), timeout=10)
        except Exception as exc:  # noqa: BLE001 - a probe reports every failure as "not ready"
            results[name] = f"error: {type(exc).__name__}: {exc}"[:300]
            continue
        if isinstance(outcome, Reserved):
            results[name], warnings[name] = outcome
        else:
            results[name] = "ok"
    ready = all(value == "ok" or name in warnings for name, value in results.items())
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": results, "warnings": warnings},
                        status_code=200 if ready else 503)
