"""Reference images uploaded in the panel go through the catalog's own importer: stored
content-addressed, embedded with the current model (most confident fixture, else the whole image,
like `raiox.vision.embed_reference`), skipped with a reason when unusable."""

from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.settings import get_settings
from raiox.kit.storage import get_storage
from raiox.models import ImplantSystem


async def add_references(session: AsyncSession, system: ImplantSystem, uploads: list[tuple[str, bytes]]):
    from raiox.catalog.service import Importer
    from raiox.catalog.sources import ImportItem
    from raiox.vision import get_embedder

    importer = Importer(get_storage(), get_embedder(), whole_image=True,
                        decode_slots=get_settings().identify_concurrency)  # decoded as many at once as /identify
    items = [ImportItem(system_id=system.id, manufacturer=system.manufacturer, system=system.name,
                        origin=f"upload/{name}", load=lambda data=data: data, source="upload")
             for name, data in uploads]
    await importer.import_batch(session, items)
    return importer.report
