"""Liveness (`/healthz`) and readiness (`/readyz`: database, storage, model) probes."""

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from raiox.kit.db import get_engine
from raiox.kit.storage import get_storage

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


async def _check_database() -> None:
    async with get_engine().connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _check_model() -> None:
    from raiox.vision import get_embedder

    await asyncio.to_thread(get_embedder)


@router.get("/readyz")
async def readyz() -> JSONResponse:
    checks = {"database": _check_database, "storage": get_storage().check, "model": _check_model}
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), timeout=10)
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - a probe reports every failure as "not ready"
            results[name] = f"error: {type(exc).__name__}: {exc}"[:300]
    ready = all(value == "ok" for value in results.values())
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": results}, status_code=200 if ready else 503)
