"""Liveness (`/healthz`) and readiness (`/readyz`: database, storage, model, catalog) probes."""

import asyncio
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.db import DbSession, get_engine
from raiox.kit.storage import get_storage

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
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


async def _check_catalog(session: AsyncSession) -> None:
    """A catalog with vectors, none of them of the configured model, cannot answer a search (the model was
    switched without `raiox catalog reindex`): not ready, so a deploy that does this rolls back. An empty
    catalog is ready (it is loaded later)."""
    from raiox.catalog.repository import has_embeddings
    from raiox.vision import get_embedder

    model_id = (await asyncio.to_thread(get_embedder)).model_id
    try:
        anything, ours = await has_embeddings(session, model_id)
    except BaseException:  # a probe cut off by its timeout leaves the session mid-statement: end it before the commit
        await session.rollback()
        raise
    if anything and not ours:
        raise RuntimeError(f"the catalog has no vectors of {model_id}: run `raiox catalog reindex` with this model")


class Readiness(BaseModel):
    """Each dependency's probe: "ok", or "error: <why>"."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, str]


READINESS = {
    200: {"model": Readiness, "description": "Ready: the database, object storage, model and catalog all answer"},
    503: {"model": Readiness, "description": "Not ready: a dependency (database, object storage, model or catalog) "
          "failed its probe; `checks` says which and why. A deploy that gets this rolls back"},
}


@router.get("/readyz", responses=READINESS, summary="Readiness: every dependency answers")
async def readyz(session: AsyncSession = DbSession) -> JSONResponse:
    checks = {"database": _check_database, "storage": get_storage().check, "model": _check_model,
              "catalog": lambda: _check_catalog(session)}
    results: dict[str, str] = {}
    for name, check in checks.items():
        if name == "catalog" and results["database"] != "ok":
            results[name] = "error: database not reachable"
            continue
        try:
            await asyncio.wait_for(check(), timeout=10)
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - a probe reports every failure as "not ready"
            results[name] = f"error: {type(exc).__name__}: {exc}"[:300]
    ready = all(value == "ok" for value in results.values())
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": results},
                        status_code=200 if ready else 503)
