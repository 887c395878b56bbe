"""Migration 0016: cases purged before it lose the detail of their failure reason (file names, upload addresses);
the kind of failure stays, and cases not purged keep their reason whole."""

import uuid

import psycopg
from sqlalchemy import create_engine, make_url, text

from raiox.kit import migrate

NAMED = "no usable image (joao-36.jpg: not an image: cannot identify image file)"


def test_cases_purged_before_0016_lose_the_detail_of_their_failure(database_url):
    admin = make_url(database_url).set(database="postgres").render_as_string(hide_password=False)
    name = f"raiox_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(database_url).set(database=name, drivername="postgresql+psycopg")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            migrate.upgrade(conn, "0015")
            for purged, submission in ((True, "s-purged"), (False, "s-kept")):
                conn.execute(text(
                    "INSERT INTO cases (id, jotform_submission_id, source, answers, payload, status, failure_reason,"
                    " purged_at) VALUES (:id, :s, 'webhook', '{}', '{}', 'failed', :r, CASE WHEN :p THEN now() END)"),
                    {"id": uuid.uuid4(), "s": submission, "r": NAMED, "p": purged})
        with engine.begin() as conn:
            migrate.upgrade(conn)
            reasons = dict(conn.execute(text("SELECT jotform_submission_id, failure_reason FROM cases")).all())
        assert reasons == {"s-purged": "no usable image (details removed)", "s-kept": NAMED}
    finally:
        engine.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
