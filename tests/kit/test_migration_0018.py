"""Migration 0018: a reference whose object is stored under the content key of its own sha256 (the file as given,
as every store before metadata stripping left it) is not known to be metadata-free; one stored under another key
holds `raiox.vision.metadata_free`'s copy and is."""

import hashlib
import uuid

import psycopg
from sqlalchemy import create_engine, make_url, text

from raiox.kit import migrate


def test_references_stored_under_their_own_sha256_are_left_to_the_scrub(database_url):
    admin = make_url(database_url).set(database="postgres").render_as_string(hide_password=False)
    name = f"raiox_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(database_url).set(database=name, drivername="postgresql+psycopg")
    engine = create_engine(url)
    legacy_sha, copied_sha, copy_sha = (hashlib.sha256(data).hexdigest() for data in (b"file", b"photo", b"copy"))
    try:
        with engine.begin() as conn:
            migrate.upgrade(conn, "0017")
            conn.execute(text("INSERT INTO implant_systems (id, manufacturer, name, attributes) "
                              "VALUES ('acme', 'Acme', 'Cone', '{}')"))
            for origin, sha, key in (("legacy.jpg", legacy_sha, f"sha256/{legacy_sha[:2]}/{legacy_sha}"),
                                     ("copied.jpg", copied_sha, f"sha256/{copy_sha[:2]}/{copy_sha}")):
                conn.execute(text("INSERT INTO reference_images (id, system_id, storage_key, sha256, source, origin) "
                                  "VALUES (:id, 'acme', :key, :sha, 'import', :origin)"),
                             {"id": uuid.uuid4(), "key": key, "sha": sha, "origin": origin})
        with engine.begin() as conn:
            migrate.upgrade(conn)
            flags = dict(conn.execute(text("SELECT origin, metadata_free FROM reference_images")).all())
            pending = conn.execute(text("SELECT count(*) FROM reference_images WHERE replaced_key IS NOT NULL"))
            assert pending.scalar_one() == 0
        assert flags == {"legacy.jpg": False, "copied.jpg": True}
    finally:
        engine.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
