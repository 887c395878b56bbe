"""Prometheus metrics: import the counters from here (one registry for the whole process).

    from raiox.kit.metrics import WEBHOOKS, JOBS
    WEBHOOKS.labels(outcome="accepted").inc()        # accepted | duplicate | rejected | invalid
    JOBS.labels(task="process_case", outcome="succeeded").inc()

`raiox_jobs_total{task,outcome}` outcomes by task: process_case succeeded | retried | failed; deliver_result
delivered | delivery_failed (the status it leaves the case in) | skipped (nothing to deliver) | error (an
unexpected exception: the job retries); reconcile_submissions and ingest_submission succeeded | error
(`with counting(task):`); reconcile_submissions also submission_refused (one per submission the database refused
in a run, which went on with the others: the next run tries it again) and submission_skipped (one per listed item
with an id or form id the webhook would refuse, or of another form, in each run: never sent to the database).
ingest_submission also submission_refused (a webhook delivery verification refused for good: Jotform's
401/403/404 for it while the API reads the form, or another form's submission; not retried).

HTTP requests are counted and timed by `install(app)` (label `route` is the route template, never
the raw path, so ids do not explode the series; label `method` a standard method or OTHER; webhook
deliveries show up there too, by status).
Catalog size, job queue (`raiox_job_queue{task,status}`: succeeded / failed / todo / doing...) and
case states are gauges refreshed from the database on every scrape of `GET /metrics`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector, ProcessCollector,
    generate_latest,
)

if TYPE_CHECKING:  # (annotations only: a `raiox` command's audited write counts here without importing FastAPI)
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

HTTP_REQUESTS = Counter(
    "raiox_http_requests_total", "HTTP requests by route and status", ["method", "route", "status"], registry=REGISTRY
)
HTTP_LATENCY = Histogram(
    "raiox_http_request_duration_seconds", "HTTP request latency", ["method", "route"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WEBHOOKS = Counter("raiox_webhooks_total", "Jotform webhook deliveries by outcome", ["outcome"], registry=REGISTRY)
JOBS = Counter("raiox_jobs_total", "Background jobs by task and outcome", ["task", "outcome"], registry=REGISTRY)
REVIEW_ACTIONS = Counter(
    "raiox_review_actions_total", "Audit entries written, by action: every audited write (cases, catalog, tokens, "
    "panel users, sign-ins and refused ones, commands, retention), not only review decisions; e.g. case.approve, "
    "catalog.import, auth.login_failed", ["action"], registry=REGISTRY
)
IDENTIFICATIONS = Counter(
    "raiox_identifications_total", "Images identified (POST /identify): ok | rejected (a bad upload) | busy (every "
    "analysis slot and waiting place taken: 503, try later) | error (ours)",
    ["outcome"], registry=REGISTRY
)
IDENTIFY_WAITING = Gauge(
    "raiox_identify_waiting", "Images waiting for an analysis slot (RAIOX_IDENTIFY_CONCURRENCY)", registry=REGISTRY
)
CATALOG_SYSTEMS = Gauge("raiox_catalog_systems", "Implant systems in the catalog", ["state"], registry=REGISTRY)
CATALOG_REFERENCES = Gauge("raiox_catalog_reference_images", "Reference images in the catalog", registry=REGISTRY)
CATALOG_EMBEDDINGS = Gauge("raiox_catalog_embeddings", "Reference embeddings per model", ["model"], registry=REGISTRY)
JOB_STATES = Gauge("raiox_job_queue", "Jobs in the queue by task and status (procrastinate)", ["task", "status"],
                   registry=REGISTRY)
CASE_STATES = Gauge("raiox_cases", "Cases by status", ["status"], registry=REGISTRY)
# label `method`: any other method a client makes up counts as OTHER (one series, however many names are sent)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request by route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            matched = getattr(scope.get("route"), "path", None)  # a mounted app's template: under its mount path
            route = f"{scope.get('root_path') or ''}{matched}" if matched else _mount_path(scope) or "unmatched"
            method = scope.get("method", "GET") if scope.get("method", "GET") in METHODS else "OTHER"
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - start)


def _mount_path(scope: Scope) -> str | None:
    root = scope.get("root_path") or ""
    return f"{root}/*" if root else None


async def _counts(session, sql: str) -> list[tuple]:
    from sqlalchemy import text

    return [tuple(row) for row in (await session.execute(text(sql))).all()]


async def refresh_gauges(session) -> None:
    """Database-backed gauges, refreshed on every scrape: catalog size, job outcomes, case states."""
    await refresh_catalog_gauges(session)
    JOB_STATES.clear()
    for task, status, count in await _counts(
        session, "SELECT task_name, status::text, count(*) FROM procrastinate_jobs GROUP BY 1, 2"
    ):
        JOB_STATES.labels(task, status).set(count)
    CASE_STATES.clear()
    for status, count in await _counts(session, "SELECT status, count(*) FROM cases GROUP BY 1"):
        CASE_STATES.labels(status).set(count)


async def refresh_catalog_gauges(session) -> None:
    from raiox.catalog.repository import catalog_size

    size = await catalog_size(session)
    CATALOG_SYSTEMS.labels("active").set(size["active_systems"])
    CATALOG_SYSTEMS.labels("inactive").set(size["systems"] - size["active_systems"])
    CATALOG_REFERENCES.set(size["reference_images"])
    CATALOG_EMBEDDINGS.clear()
    for key, count in size.items():
        if key.startswith("embeddings:"):
            CATALOG_EMBEDDINGS.labels(key.split(":", 1)[1]).set(count)


@contextlib.contextmanager
def counting(task: str) -> Iterator[None]:
    """Count the job TASK run in this block in raiox_jobs_total: `succeeded`, or `error` (re-raised)."""
    try:
        yield
    except BaseException:
        JOBS.labels(task=task, outcome="error").inc()
        raise
    JOBS.labels(task=task, outcome="succeeded").inc()


def exposition() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def install(app: FastAPI) -> None:
    app.add_middleware(MetricsMiddleware)


__all__ = [
    "CATALOG_EMBEDDINGS", "CATALOG_REFERENCES", "CATALOG_SYSTEMS", "HTTP_LATENCY", "HTTP_REQUESTS",
    "CASE_STATES", "IDENTIFICATIONS", "JOBS", "JOB_STATES", "REGISTRY", "WEBHOOKS", "counting", "exposition", "install",
    "refresh_catalog_gauges", "refresh_gauges",
]
