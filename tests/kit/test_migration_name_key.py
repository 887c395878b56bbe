"""Migrations 0022 and 0023 (catalog name key): look-alike systems already in the catalog (same manufacturer + name
but for letter case, accents and spaces) are logged and the unique index is left out, the migration completes;
without look-alikes the index is created and refuses one. 0023's key is computed by the application, whatever the
database's locale."""

import logging
import uuid

import psycopg
import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import IntegrityError

from raiox.kit import migrate

INDEX = "uq_implant_systems_name_key"


@pytest.fixture
def fresh_engine(database_url, request):
    """An engine on a new, empty database of the test server (dropped afterwards); its LC_CTYPE "C" when the test is
    parametrized so (indirect), where PostgreSQL's lower() folds ASCII letters only."""
    admin = make_url(database_url).set(database="postgres").render_as_string(hide_password=False)
    name = f"raiox_mig_{uuid.uuid4().hex[:10]}"
    locale = " TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'" if getattr(request, "param", "") else ""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{locale}')
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


def migration_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "alembic.runtime.migration" and r.levelno >= logging.WARNING]


LOOK_ALIKES = [("neo-cm", "Neodent", "Grand Morse"), ("neo-gm", "NEODENT ", "grand\u00a0 mórse"),
               ("str-bl", "Straumann", "Bone Level"), ("str-bl2", "straumann", "BONE LEVEL"),
               ("nob-ac", "Nobel Biocare", "NobelActive")]


def test_look_alikes_are_logged_and_the_index_left_out(fresh_engine, caplog):
    at(fresh_engine, "0021", LOOK_ALIKES)
    caplog.set_level(logging.WARNING, logger="alembic.runtime.migration")
    with fresh_engine.begin() as conn:
        migrate.upgrade(conn, "0022")
        assert migrate.current_heads(conn) == {"0022"}
    warnings = migration_warnings(caplog)
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
    assert migration_warnings(caplog) == []
    assert has_index(fresh_engine)
    with pytest.raises(IntegrityError, match=INDEX), fresh_engine.begin() as conn:
        conn.execute(text("INSERT INTO implant_systems (id, manufacturer, name, attributes) "
                          "VALUES ('neo-gm', 'NEODENT ', 'grand mórse', '{}')"))


def migration_0023():
    import importlib

    return importlib.import_module("raiox.migrations.versions.0023_system_name_key_columns")


def test_the_migration_computes_the_key_the_model_does():
    from raiox.models.catalog import name_key

    samples = ["Neodent", " grand\u00a0\u2003 MÓRSE\t", "Conexão", "ØSTER", "Straße", "İzmir", "ΣΑΣ", "Łódź",
               "Zero\u200bwidth\ufeff", "ǅemal", "ﬁne", "Ångström"]
    assert [migration_0023().key(text) for text in samples] == [name_key(text) for text in samples]
    assert [name_key(text) for text in samples[:6]] == ["neodent", "grand morse", "conexao", "øster", "strasse",
                                                         "izmir"]


@pytest.mark.parametrize("fresh_engine", ["C"], indirect=True)
def test_0023_keys_every_system_and_finds_look_alikes_the_database_locale_missed(fresh_engine, caplog):
    """In a database whose LC_CTYPE is "C", 0022's lower() leaves "Ø" and "ø" as they are: Øster and øSTER got past
    its index.
    0023 computes the key in Python: they are look-alikes, logged, and its index is left out."""
    systems = [("ost-a", "Øster", "Implant"), ("ost-b", "øSTER", "IMPLANT"), ("neo-cm", "Neodent", "Grand Morse")]
    at(fresh_engine, "0022", systems)
    assert has_index(fresh_engine)  # 0022 saw no look-alike
    caplog.set_level(logging.WARNING, logger="alembic.runtime.migration")
    with fresh_engine.begin() as conn:
        migrate.upgrade(conn, "0023")
        keys = conn.execute(text("SELECT id, manufacturer_key, name_key FROM implant_systems ORDER BY id")).all()
    assert [tuple(row) for row in keys] == [("neo-cm", "neodent", "grand morse"), ("ost-a", "øster", "implant"),
                                            ("ost-b", "øster", "implant")]
    warnings = migration_warnings(caplog)
    assert any(w.endswith("ost-a (Øster / Implant), ost-b (øSTER / IMPLANT)") for w in warnings), warnings
    assert any(w.startswith(f"index {INDEX} NOT created") for w in warnings)
    assert not has_index(fresh_engine)


@pytest.mark.parametrize("fresh_engine", ["C"], indirect=True)
def test_at_head_the_index_refuses_a_look_alike_whatever_the_locale(fresh_engine):
    """0023 without look-alikes builds the index on the stored keys; a system saved through the model gets its keys
    (`ImplantSystem._keyed`), so a look-alike only Unicode case folding tells apart is refused by the database, in a
    "C" database too."""
    from sqlalchemy.orm import Session

    from raiox.models import ImplantSystem

    at(fresh_engine, "0022", [("neo-cm", "Neodent", "Grand Morse")])
    with fresh_engine.begin() as conn:
        migrate.upgrade(conn)
    assert has_index(fresh_engine)
    with Session(fresh_engine) as session:
        session.add(ImplantSystem(id="ost-a", manufacturer="Øster", name="Implant", attributes={}))
        session.commit()
        session.add(ImplantSystem(id="ost-b", manufacturer="øSTER ", name="implant", attributes={}))
        with pytest.raises(IntegrityError, match=INDEX):
            session.commit()


def test_0023_downgrades_to_0022s_index(fresh_engine):
    at(fresh_engine, "0021", [("neo-cm", "Neodent", "Grand Morse")])
    with fresh_engine.begin() as conn:
        migrate.upgrade(conn, "0023")
        from alembic import command

        command.downgrade(migrate.alembic_config(conn), "0022")
        columns = conn.scalars(text("SELECT column_name FROM information_schema.columns "
                                    "WHERE table_name = 'implant_systems' AND column_name LIKE '%_key'")).all()
        definition = conn.scalar(text("SELECT pg_get_indexdef(CAST(:name AS regclass))"), {"name": INDEX})
    assert columns == [] and "lower(" in definition
