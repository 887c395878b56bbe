"""Reference images uploaded in the panel go through the catalog's own importer: stored
content-addressed, embedded with the current model (most confident fixture, else the whole image,
like `raiox.vision.embed_reference`), skipped with a reason when unusable.

An uploaded file is known by its place in the upload and its size (``label``), never by its file name, wherever it is
kept: the reference's origin, the import report the audit records, the logs. A film's file name often is the
patient's ("joao_silva_rx.jpg"); it only helps decode the file and is shown back to the admin who sent it
(``named``)."""

from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.settings import get_settings
from raiox.kit.storage import get_storage
from raiox.models import ImplantSystem


def label(index: int, size: int) -> str:
    """The INDEX-th file (from 1) of an upload, of SIZE bytes: "upload/2 (48213 bytes)"."""
    return f"upload/{index} ({size} bytes)"


async def add_references(session: AsyncSession, system: ImplantSystem, uploads: list[tuple[str, str, bytes]]):
    """UPLOADS: (``label``, the file's own name, its bytes) of each file. The import report names them by label."""
    from raiox.catalog.service import Importer
    from raiox.catalog.sources import ImportItem
    from raiox.vision import get_embedder

    importer = Importer(get_storage(), get_embedder(), whole_image=True,
                        decode_slots=get_settings().identify_concurrency)  # decoded as many at once as /identify
    items = [ImportItem(system_id=system.id, manufacturer=system.manufacturer, system=system.name, origin=origin,
                        load=lambda data=data: data, source="upload", name=name)
             for origin, name, data in uploads]
    await importer.import_batch(session, items)
    return importer.report


def named(report, names: dict[str, str]):
    """REPORT as the admin who uploaded the files reads it: each label (in an origin, or in a reason such as
    "duplicate of upload/1 (48213 bytes)") replaced by the file's own name from NAMES (label -> name)."""
    from raiox.catalog.sources import Skip

    def shown(text: str) -> str:
        for known, name in names.items():
            text = text.replace(known, name)
        return text

    return replace(report, skipped=[Skip(shown(s.origin), shown(s.reason)) for s in report.skipped])
