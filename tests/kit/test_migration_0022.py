"""Migration 0022 (catalog name key): look-alike systems already in the catalog (same manufacturer + name but for
letter case, accents and spaces) are logged and the unique index is left out, the migration completes; without
look-alikes the index is created and refuses one."""

import logging
import uuid

import psycopg
import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import IntegrityError

from raiox.kit import migrate

INDEX = "uq_implant_systems_name_key"


@pytest.fixture
def fresh_engine(database_url):
    """An engine on a new, empty database of the test server (dropped afterwards)."""
    admin = make_url(database_url).set(database="postgres").render_as_string(hide_password=False)
    name = f"raiox_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = create_engine(make_url(database_url).set(database=name, drivername="postgresql+psycopg"))
    yield engine
    engine.dispose()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def at(engine, revision: str, systems: list[tuple[str, str, str]]) -> None:
    """ENGINE's database migrated to REVISION, holding SYSTEMS (id, manufacturer, name)."""
    with engine.begin() as conn:
        migrate.upgrade(conn, revision)
        for system_id, manufacturer, name in systems:
            conn.execute(text("INSERT INTO implant_systems (id, manufacturer, name, attributes) "
                              "VALUES (:id, :manufacturer, :name, '{}')"),
                         {"id": system_id, "manufacturer": manufacturer, "name": name})


def has_index(engine) -> bool:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": INDEX})


LOOK_ALIKES = [("neo-cm", "Neodent", "Grand Morse"), ("neo-gm", "NEODENT ", "grand\u00a0 mórse"),
               ("str-bl", "Straumann", "Bone Level"), ("str-bl2", "straumann", "BONE LEVEL"),
               ("nob-ac", "Nobel Biocare", "NobelActive")]


def test_look_alikes_are_logged_and_the_index_left_out(fresh_engine, caplog):
    at(fresh_engine, "0021", LOOK_ALIKES)
    caplog.set_level(logging.WARNING, logger="alembic.runtime.migration")
    with fresh_engine.begin() as conn:
        migrate.upgrade(conn, "0022")
        assert migrate.current_heads(conn) == {"0022"}
    warnings = [r.getMessage() for r in caplog.records if r.name == "alembic.runtime.migration"]
    assert ("look-alike catalog systems (same manufacturer + name but for letter case, accents or spaces): "
            "neo-cm (Neodent / Grand Morse), neo-gm (NEODENT  / grand\u00a0 mórse)") in warnings
    assert any(w.endswith("str-bl (Straumann / Bone Level), str-bl2 (straumann / BONE LEVEL)") for w in warnings)
    assert not any("nob-ac" in w for w in warnings)
    assert any(w.startswith(f"index {INDEX} NOT created") for w in warnings)
    assert not has_index(fresh_engine)
    with fresh_engine.connect() as conn:  # nothing changed or lost
        assert conn.scalar(text("SELECT count(*) FROM implant_systems")) == len(LOOK_ALIKES)


def test_without_look_alikes_the_index_is_created_and_refuses_one(fresh_engine, caplog):
    at(fresh_engine, "0021", [LOOK_ALIKES[0], LOOK_ALIKES[2], LOOK_ALIKES[4]])
    caplog.set_level(logging.WARNING, logger="alembic.runtime.migration")
    with fresh_engine.begin() as conn:
        migrate.upgrade(conn, "0022")
    assert not [r for r in caplog.records if r.name == "alembic.runtime.migration"]
    assert has_index(fresh_engine)
    with pytest.raises(IntegrityError, match=INDEX), fresh_engine.begin() as conn:
        conn.execute(text("INSERT INTO implant_systems (id, manufacturer, name, attributes) "
                          "VALUES ('neo-gm', 'NEODENT ', 'grand mórse', '{}')"))
