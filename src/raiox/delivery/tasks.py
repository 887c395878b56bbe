"""Delivery jobs (procrastinate): `deliver_result` writes an approved/rejected case back to the dentist."""

import uuid

from raiox.delivery import service
from raiox.kit.jobs import app


@app.task(name=service.TASK, queue="default")
async def deliver_result(case_id: str) -> str:
    return await service.deliver(uuid.UUID(case_id))
