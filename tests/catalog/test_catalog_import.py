"""`raiox catalog import`: folder and CSV sources, idempotent re-runs, resume, broken files reported."""

import http.server
import os
import threading
from functools import partial

import numpy as np
import psycopg
import pytest
from fakes.db import until_blocked


def _blank_png() -> bytes:
    """A film without an implant: a soft gradient (one grey level would be refused as blank)."""
    from raiox.synth import to_png

    return to_png(np.tile(np.linspace(0.25, 0.45, 120, dtype=np.float32), (200, 1)))


def _make_tree(root, demo_pngs) -> None:
    a, b = demo_pngs["demo-001"], demo_pngs["demo-002"]
    (root / "Acme" / "Cone 3.5").mkdir(parents=True)
    (root / "Acme" / "Cone 3.5" / "a.png").write_bytes(a[0])
    (root / "Acme" / "Cone 3.5" / "b.png").write_bytes(a[1])
    (root / "Acme" / "Cone 3.5" / "b-copy.png").write_bytes(a[1])  # duplicate bytes
    (root / "Acme" / "Cone 3.5" / "attributes.json").write_text('{"connection": "morse taper", "diameters": [3.5]}')
    (root / "Bêta Implantes" / "Hex").mkdir(parents=True)
    (root / "Bêta Implantes" / "Hex" / "x.png").write_bytes(b[0])
    (root / "Bêta Implantes" / "Hex" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (root / "Bêta Implantes" / "Hex" / "notes.txt").write_text("hello")
    (root / "Bêta Implantes" / "Hex" / "empty.png").write_bytes(_blank_png())
    (root / "Acme" / "loose.png").write_bytes(a[0])  # not in MANUFACTURER/SYSTEM/


def sql(database_url: str, query: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query).fetchall()


def _audit(database_url: str, action: str) -> list[tuple]:
    """(actor, added, embedded, images named) of each ACTION entry: one per batch that wrote something."""
    return sql(database_url, "SELECT actor, (details->>'added')::int, (details->>'embedded')::int, "
                             f"jsonb_array_length(details->'images') FROM audit_log WHERE action = '{action}' "
                             "ORDER BY id")


def counts(database_url: str) -> tuple[int, int, int]:
    return sql(database_url, "SELECT (SELECT count(*) FROM implant_systems), (SELECT count(*) FROM reference_images),"
                             " (SELECT count(*) FROM reference_embeddings)")[0]


def test_folder_import_reports_skips_and_is_idempotent(tmp_path, demo_pngs, cli, database_url, committed):
    _make_tree(tmp_path, demo_pngs)
    result = cli("catalog", "import", str(tmp_path), "--batch-size", "2")
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "3 added" in out and "5 skipped" in out
    # the summary is the command's result, on stdout, one line; what was skipped (and the progress) on stderr
    assert result.stdout == "import: 3 added, 0 embedded (stored before), 0 already embedded, 5 skipped\n"
    said = " ".join(result.stderr.split())
    for reason in ("Acme/Cone 3.5/b.png: duplicate of Acme/Cone 3.5/b-copy.png", "broken.jpg: not a usable image",
                   "notes.txt: unsupported file type .txt", "empty.png: no fixture found",
                   "loose.png: not in a MANUFACTURER/SYSTEM/ folder"):
        assert reason in said, reason
    assert counts(database_url) == (2, 3, 3)
    systems = {row[0]: row[1:]
               for row in sql(database_url, "SELECT id, manufacturer, connection, attributes FROM implant_systems")}
    assert systems["acme-cone-3-5"][1] == "morse taper" and systems["acme-cone-3-5"][2]["diameters"] == [3.5]
    assert systems["beta-implantes-hex"][0] == "Bêta Implantes"
    audit = _audit(database_url, "catalog.import")  # one entry for the whole run (its batches of 2 brought it up)
    assert audit == [("cli:raiox catalog import", 3, 0, 3)]
    assert sql(database_url, "SELECT details->'skipped_count', details->'complete', (details->'batches')::int >= 2 "
                             "FROM audit_log WHERE action = 'catalog.import'") == [(5, True, True)]

    again = cli("catalog", "import", str(tmp_path))
    assert "0 added" in again.output and "3 already embedded" in " ".join(again.output.split())
    assert counts(database_url) == (2, 3, 3)
    assert _audit(database_url, "catalog.import") == audit  # nothing written, nothing audited
    missing = cli("catalog", "import", str(tmp_path / "nowhere"))
    assert missing.exit_code != 0 and "nowhere: no such file or folder" in " ".join(missing.output.split())


def test_whole_image_option_embeds_images_without_fixture(tmp_path, cli, database_url, committed):
    from raiox.synth import to_png

    (tmp_path / "Acme" / "Blank").mkdir(parents=True)
    (tmp_path / "Acme" / "Blank" / "empty.png").write_bytes(_blank_png())
    (tmp_path / "Acme" / "Blank" / "flat.png").write_bytes(to_png(np.zeros((200, 120), dtype=np.float32)))
    first = " ".join(cli("catalog", "import", str(tmp_path)).output.split())
    assert "empty.png: no fixture found" in first and "flat.png: not a usable image: image is blank" in first
    result = cli("catalog", "import", str(tmp_path), "--whole-image")
    assert "1 added" in result.output and "1 skipped" in result.output  # no image of one grey, even whole
    assert sql(database_url, "SELECT box, located_by FROM reference_images") == [(None, None)]
    assert "0 embedded" in cli("catalog", "reindex", "--relocate").output  # no box: nothing to locate again


async def test_interrupted_import_resumes_where_it_stopped(tmp_path, demo_pngs, database_url, committed):
    from raiox.catalog.runner import run_import
    from raiox.catalog.service import Importer
    from raiox.catalog.sources import from_folder
    from raiox.kit.db import get_sessionmaker
    from raiox.kit.storage import get_storage
    from raiox.vision import get_embedder

    for sid, pngs in demo_pngs.items():
        (tmp_path / "Demo" / sid).mkdir(parents=True)
        for i, png in enumerate(pngs):
            (tmp_path / "Demo" / sid / f"{i}.png").write_bytes(png)
    items = list(from_folder(tmp_path))
    assert len(items) == 6

    def crash(_n):
        raise KeyboardInterrupt  # the operator hits Ctrl-C after the first batch

    with pytest.raises(KeyboardInterrupt):
        await run_import(get_sessionmaker(), Importer(get_storage(), get_embedder()), items, 2, crash)
    assert counts(database_url) == (1, 2, 2)  # the finished batch is kept
    entry = "SELECT (details->>'added')::int, jsonb_array_length(details->'images'), details->'complete' " \
            "FROM audit_log WHERE action = 'catalog.import' ORDER BY id"
    assert sql(database_url, entry) == [(2, 2, False)]  # its audit too: the run did not end
    report = await run_import(get_sessionmaker(), Importer(get_storage(), get_embedder()), items, 2)
    assert (report.added, report.already, report.skipped) == (4, 2, [])
    assert counts(database_url) == (3, 6, 6)
    assert sql(database_url, entry) == [(2, 2, False), (4, 4, True)]  # one entry per run, each what it wrote


async def test_a_batch_is_read_in_parallel_and_the_first_copy_is_kept(demo_pngs, database_url, committed):
    """Items of a batch load at the same time (a slow download does not hold up the rest), yet reports and
    duplicates follow the items' order: the first of two identical images is kept, even when it arrives last."""
    from raiox.catalog.runner import run_import
    from raiox.catalog.service import Importer
    from raiox.catalog.sources import ImportItem
    from raiox.kit.db import get_sessionmaker
    from raiox.kit.storage import get_storage
    from raiox.vision import get_embedder

    png = demo_pngs["demo-001"][0]
    second_started = threading.Event()

    def slow_first() -> bytes:
        assert second_started.wait(10), "the second item was not loaded while the first was still loading"
        return png

    def second() -> bytes:
        second_started.set()
        return png

    items = [ImportItem("acme-a", "Acme", "A", "first.png", slow_first),
             ImportItem("acme-a", "Acme", "A", "second.png", second)]
    report = await run_import(get_sessionmaker(), Importer(get_storage(), get_embedder()), items, 2)
    assert report.added == 1
    assert [(skip.origin, skip.reason) for skip in report.skipped] == [("second.png", "duplicate of first.png")]
    assert sql(database_url, "SELECT origin FROM reference_images") == [("first.png",)]


@pytest.fixture
def http_files(tmp_path):
    """A plain HTTP server on 127.0.0.1 serving tmp_path/www (image URLs in a manifest)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_csv_manifest_with_paths_urls_and_attributes(tmp_path, http_files, demo_pngs, cli, database_url, committed):
    www, base = http_files
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "one.png").write_bytes(demo_pngs["demo-001"][0])
    (www / "two.png").write_bytes(demo_pngs["demo-002"][0])
    manifest = tmp_path / "catalog.csv"
    manifest.write_text(
        "manufacturer,system,attributes,image\n"
        'Acme,Cone,"connection=morse taper; diameters=3.5,4.0; platform_mm=2.9",img/one.png\n'
        f'Acme,Hex,"{{""connection"": ""external hex""}}",{base}/two.png\n'
        f"Acme,Hex,,{base}/missing.png\n"
        "Acme,Hex,broken-attributes,img/one.png\n"
        ",Hex,,img/one.png\n"
        "Acme,Cone,,img/none.png\n"
        "Acme,Other,,img/one.png\n"
    )
    result = cli("catalog", "import", str(manifest))
    out = " ".join(result.output.split())
    assert result.exit_code == 0 and "2 added" in out and "5 skipped" in out, result.output
    assert "404" in out and "bad attributes" in out and "row needs manufacturer" in out
    assert f"catalog.csv:4 ({base}/missing.png): unreadable" in out  # the report names the manifest row
    assert "catalog.csv:8 (" in out and "duplicate of catalog.csv:2 (" in out
    assert "no such file" in out
    rows = dict(sql(database_url, "SELECT id, attributes FROM implant_systems"))
    assert rows["acme-cone"] == {"connection": "morse taper", "diameters": "3.5,4.0", "platform_mm": 2.9}
    assert rows["acme-hex"] == {"connection": "external hex"}


def test_manifest_without_required_columns_is_a_clear_error(tmp_path, cli, database_url):
    manifest = tmp_path / "bad.csv"
    manifest.write_text("maker,model,file\nA,B,c.png\n")
    result = cli("catalog", "import", str(manifest))
    assert result.exit_code == 2 and "missing column(s): manufacturer, system" in result.output


def test_names_the_catalog_cannot_hold_skip_their_rows_and_the_import_goes_on(tmp_path, demo_pngs, cli,
                                                                              database_url, committed):
    """A name too long for its column, a control character or a folder named in another encoding failed the whole
    batch in the database (the good rows of it lost); each is now a reported skip."""
    (tmp_path / "one.png").write_bytes(demo_pngs["demo-001"][0])
    manifest = tmp_path / "m.csv"
    manifest.write_text("manufacturer,system,image\n"
                        f"{'A' * 201},Long,one.png\nAcme,{'S' * 301},one.png\nAcme,Bell\x07,one.png\n"
                        "Acme,Fine,one.png\n")
    result = cli("catalog", "import", str(manifest))
    out = " ".join(result.output.split())
    assert result.exit_code == 0 and "1 added" in out and "3 skipped" in out, result.output
    for reason in ("m.csv:2: manufacturer longer than 200 characters", "m.csv:3: system name longer than 300",
                   "m.csv:4: system name holds a control character"):
        assert reason in out, reason
    assert [r[0] for r in sql(database_url, "SELECT id FROM implant_systems")] == ["acme-fine"]

    tree = tmp_path / "tree"
    (tree / "Acme" / "Good").mkdir(parents=True)
    (tree / "Acme" / "Good" / "a.png").write_bytes(demo_pngs["demo-002"][0])
    latin = tree / os.fsdecode(b"Jo\xe3o") / "Linha"  # a folder named in Latin-1, not UTF-8
    latin.mkdir(parents=True)
    (latin / "b.png").write_bytes(demo_pngs["demo-003"][0])
    result = cli("catalog", "import", str(tree))
    out = " ".join(result.output.split())
    assert result.exit_code == 0 and "1 added" in out and "1 skipped" in out, result.output
    assert "Jo\\xe3o/Linha/b.png: manufacturer is not UTF-8 text" in out


def test_an_import_does_not_create_a_look_alike_of_another_system(tmp_path, demo_pngs, cli, database_url, committed):
    """A row or folder naming a system the catalog has under another id (a panel's "neo-cm"), as typed or but for
    letter case, accents and spaces, is skipped saying which system it looks like: before, the exact pair failed the
    batch in the database and a look-alike became a second system splitting the references."""
    sql(database_url, "INSERT INTO implant_systems (id, manufacturer, name, manufacturer_key, name_key, attributes) "
                      "VALUES ('neo-cm', 'Neodent', 'Grand Morse', 'neodent', 'grand morse', '{}') RETURNING id")
    for name, (demo, index) in {"one": ("demo-001", 0), "two": ("demo-001", 1), "three": ("demo-002", 0)}.items():
        (tmp_path / f"{name}.png").write_bytes(demo_pngs[demo][index])
    manifest = tmp_path / "m.csv"
    manifest.write_text("manufacturer,system,image\nNEODENT,grand  mórse,one.png\nNeodent,Grand Morse,two.png\n"
                        "Acme,Fine,three.png\n", encoding="utf-8")
    result = cli("catalog", "import", str(manifest))
    out = " ".join(result.output.split())
    assert result.exit_code == 0 and "1 added" in out and "2 skipped" in out, result.output
    assert ("m.csv:2 (" in out and "system NEODENT grand mórse (neodent-grand-morse) would be a look-alike of "
            "Neodent Grand Morse (neo-cm)") in out
    assert "system Neodent Grand Morse (neodent-grand-morse) would be a look-alike of" in out
    assert sorted(r[0] for r in sql(database_url, "SELECT id FROM implant_systems")) == ["acme-fine", "neo-cm"]


async def test_a_look_alike_saved_meanwhile_is_a_clear_conflict_not_a_database_error(committed):
    """The database is the final guard (unique index on the normalised names): a system created past the check
    (another writer in between) is a Conflict naming it, in English."""
    from raiox.catalog import repository
    from raiox.kit.db import session_scope
    from raiox.kit.errors import Conflict

    async with session_scope() as session:
        await repository.upsert_system(session, "neo-cm", "Neodent", "Grand Morse", {})
    async with session_scope() as session:
        with pytest.raises(Conflict, match="system neodent-gm: another catalog system is already called "
                                           "neodent grand  morse"):
            await repository.upsert_system(session, "neodent-gm", "neodent", "grand  morse", {})


async def test_two_imports_of_one_system_at_once_merge_not_fail(committed, database_url):
    """Two imports (or demo loads) creating the same system id at once: the second insert waits on the first's
    uncommitted row and, once it is committed, merges into it (ON CONFLICT on the id), never a primary-key error."""
    import asyncio

    from raiox.catalog import repository
    from raiox.kit.db import session_scope

    async with await psycopg.AsyncConnection.connect(database_url) as first:
        await first.execute("INSERT INTO implant_systems (id, manufacturer, name, manufacturer_key, name_key, "
                            "attributes) VALUES ('acme-fine', 'Acme', 'Fine', 'acme', 'fine', "
                            "'{\"connection\": \"hex\"}')")

        async def second() -> None:
            async with session_scope() as session:
                await repository.upsert_system(session, "acme-fine", "Acme", "Fine", {"diameters": [3.5]})

        save = asyncio.create_task(second())
        await until_blocked(database_url, "the second insert")
        await first.commit()
        await save
    assert sql(database_url, "SELECT attributes FROM implant_systems") == [({"connection": "hex", "diameters": [3.5]},)]


@pytest.mark.parametrize(("content", "says"), [
    (b"manufacturer,system,image\nAcme,Fine,one.png\nAcme,B\xe9ta,two.png\n", "m.csv: not UTF-8 text (byte"),
    (b"manufacturer,system,image\nAcme,Fine," + b"x" * 200_000 + b"\n", "m.csv: line 2: field larger than"),
])
def test_a_manifest_that_cannot_be_read_is_a_clear_error_naming_it(tmp_path, cli, database_url, content, says):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(content)
    result = cli("catalog", "import", str(manifest))
    assert result.exit_code == 2 and says in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output


def test_attribute_parsing():
    from raiox.catalog.sources import parse_attributes, slugify

    assert parse_attributes("a=1; b=x y; c=2.5") == {"a": 1, "b": "x y", "c": 2.5}
    assert parse_attributes("connection=hex,diameters=3.5,4.0") == {"connection": "hex", "diameters": "3.5,4.0"}
    assert parse_attributes('{"a": [1, 2]}') == {"a": [1, 2]}
    assert parse_attributes("") == {}
    with pytest.raises(ValueError):
        parse_attributes("[1, 2]")
    assert slugify("Conexão", "Torque Tite 4.1") == "conexao-torque-tite-4-1"


def test_a_system_folder_or_manifest_row_may_carry_a_validated_spec(tmp_path):
    import json

    from raiox.catalog.sources import Skip, from_folder, from_manifest
    from raiox.synth import demo_catalog

    spec = next(s.spec for s in demo_catalog() if s.spec["connection"]["kind"] == "conical")
    good, bad = tmp_path / "tree" / "Acme" / "Cone", tmp_path / "tree" / "Acme" / "Broken"
    for folder in (good, bad):
        folder.mkdir(parents=True)
        (folder / "a.png").write_bytes(b"png bytes are read later")
    (good / "spec.json").write_text(json.dumps(spec))
    (bad / "spec.json").write_text(json.dumps({**spec, "diameter_mm": "wide"}))
    found = {item.origin: item for item in from_folder(tmp_path / "tree")}
    assert set(found) == {"Acme/Broken/a.png", "Acme/Cone/a.png"}  # spec.json itself is not an image to import
    assert found["Acme/Cone/a.png"].spec == spec
    assert isinstance(found["Acme/Broken/a.png"], Skip) and "bad spec.json" in found["Acme/Broken/a.png"].reason
    assert "diameter_mm" in found["Acme/Broken/a.png"].reason or "wide" in found["Acme/Broken/a.png"].reason

    manifest = tmp_path / "m.csv"
    (tmp_path / "x.png").write_bytes(b"png")
    manifest.write_text("manufacturer,system,image,spec\n"
                        f"Acme,Cone,x.png,\"{json.dumps(spec).replace(chr(34), chr(34) * 2)}\"\n"
                        "Acme,Plain,x.png,\n"
                        "Acme,Bad,x.png,[1]\n")
    rows = list(from_manifest(manifest))
    assert rows[0].spec == spec and rows[1].spec is None
    assert isinstance(rows[2], Skip) and "bad spec: a spec must be a JSON object" in rows[2].reason


def test_bad_attributes_skip_their_rows_and_the_import_goes_on(tmp_path, demo_pngs, cli, database_url, committed):
    """jsonb refuses NaN and infinities, and attributes must be an object: such rows are reported, not fatal."""
    tree = tmp_path / "tree"
    for system, attributes in {"Good": '{"connection": "hex"}', "Nan": '{"x": NaN}', "List": "[1, 2]",
                               "Text": '"hello"', "Deep": '{"sizes": [3.5, Infinity]}'}.items():
        (tree / "Acme" / system).mkdir(parents=True)
        (tree / "Acme" / system / "a.png").write_bytes(demo_pngs["demo-001"][0])  # one image: the first read is kept
        (tree / "Acme" / system / "attributes.json").write_text(attributes)
    result = cli("catalog", "import", str(tree))
    out = " ".join(result.output.split())
    assert result.exit_code == 0 and "1 added" in out and "4 skipped" in out, result.output
    for system in ("Nan", "List", "Text", "Deep"):
        assert f"Acme/{system}/a.png: bad attributes.json" in out, system
    assert "sizes[1]: not a finite number (inf)" in out and "must be a JSON object, not list" in out

    (tmp_path / "one.png").write_bytes(demo_pngs["demo-002"][0])
    manifest = tmp_path / "m.csv"
    manifest.write_text("manufacturer,system,attributes,image\n"
                        "Acme,Nan,x=nan,one.png\nAcme,Inf,x=inf,one.png\n"
                        'Acme,Big,"{""big"": 1e400}",one.png\nAcme,Fine,x=1.5,one.png\n')
    result = cli("catalog", "import", str(manifest))
    out = " ".join(result.output.split())
    assert result.exit_code == 0 and "1 added" in out and "3 skipped" in out, result.output
    for reason in ("m.csv:2: bad attributes: x: not a finite number (nan)",
                   "m.csv:3: bad attributes: x: not a finite number (inf)",
                   "m.csv:4: bad attributes: big: not a finite number (inf)"):
        assert reason in out, reason
    assert dict(sql(database_url, "SELECT id, attributes FROM implant_systems")) == {
        "acme-good": {"connection": "hex"}, "acme-fine": {"x": 1.5}}


def test_attributes_must_be_a_storable_json_object():
    from raiox.catalog.sources import parse_attributes

    for raw in ("x=nan", "x=inf; y=1", '{"x": NaN}', '{"big": 1e400}', '{"a": {"b": [1, -Infinity]}}',
                '{"a": "\\u0000"}'):
        with pytest.raises(ValueError):
            parse_attributes(raw)
    assert parse_attributes('{"a": {"b": [1, 2.5, "nan"]}}') == {"a": {"b": [1, 2.5, "nan"]}}


def test_import_refuses_images_over_the_configured_pixel_cap(tmp_path, demo_pngs, cli, database_url, committed,
                                                              configure):
    (tmp_path / "Acme" / "Cone").mkdir(parents=True)
    (tmp_path / "Acme" / "Cone" / "big.png").write_bytes(demo_pngs["demo-001"][0])
    configure(MAX_PIXELS="10000")
    result = cli("catalog", "import", str(tmp_path))
    out = " ".join(result.output.split())
    assert result.exit_code == 0 and "0 added" in out and "big.png: not a usable image: image too large" in out, out


def test_references_are_listed_and_removed_from_the_cli(tmp_path, demo_pngs, cli, database_url, committed):
    import asyncio

    from raiox.kit.storage import get_storage

    _make_tree(tmp_path, demo_pngs)
    folder = tmp_path / "Acme" / "Cone 3.5"
    long_name = "periapical [2024] " + "x" * 100 + ".png"  # longer than a piped 80-column table: not folded
    (folder / "a.png").rename(folder / long_name)
    assert cli("catalog", "import", str(tmp_path)).exit_code == 0
    listed = cli("catalog", "references", "acme-cone-3-5")
    rows = sql(database_url, "SELECT id, storage_key FROM reference_images WHERE system_id = 'acme-cone-3-5' "
                             "ORDER BY created_at, id")
    assert listed.exit_code == 0 and "2 reference image(s)" in listed.output
    assert all(str(ref_id) in listed.output for ref_id, _ in rows)
    (long_id,) = sql(database_url, f"SELECT id FROM reference_images WHERE origin LIKE '%{'x' * 100}.png'")[0]
    assert any(str(long_id) in line and long_name in line for line in listed.stdout.splitlines()), listed.stdout
    unknown = cli("catalog", "references", "acme-nothing")
    assert unknown.exit_code == 1 and "no system 'acme-nothing'" in unknown.output

    (gone, key), (kept, _) = rows
    other = sql(database_url, "SELECT id FROM reference_images WHERE system_id = 'beta-implantes-hex'")[0][0]
    for args, code, says in ((["acme-cone-3-5", str(gone), str(other), "--yes"], 1, f"no reference image {other}"),
                             (["acme-cone-3-5", "not-an-id", "--yes"], 2, "not a reference id"),
                             (["acme-cone-3-5", str(gone)], 1, "Remove 1 reference image(s)")):  # not confirmed
        refused = cli("catalog", "remove-reference", *args)
        assert refused.exit_code == code and says in " ".join(refused.output.split()), refused.output
    assert counts(database_url) == (2, 3, 3)  # nothing removed by any of them

    removed = cli("catalog", "remove-reference", "acme-cone-3-5", str(gone), str(gone), "--yes")  # twice: once
    assert removed.exit_code == 0 and removed.output.count(f"removed {gone} (import: ") == 1, removed.output
    assert counts(database_url) == (2, 2, 2)
    assert [r[0] for r in sql(database_url, "SELECT id FROM reference_images WHERE system_id = 'acme-cone-3-5'")] \
        == [kept]
    assert not asyncio.run(get_storage().exists(key))  # its stored image went with it
    audit = sql(database_url, "SELECT actor, target, details FROM audit_log "
                              "WHERE action = 'catalog.reference_remove'")
    assert [(a, t, d["object_deleted"]) for a, t, d in audit] == [
        ("cli:raiox catalog remove-reference", "acme-cone-3-5", True)]


def test_imported_references_are_stored_without_the_files_metadata(tmp_path, demo_pngs, cli, database_url,
                                                                     committed):
    """A catalog photo or DICOM export may carry a patient's name, a clinic, a camera serial, a GPS position: the
    catalog stores a copy without any of it, whose pixels are the ones embedded (reindexing it gives the same
    vectors), and a second import still knows the files."""
    import asyncio
    import hashlib
    import io
    import json

    from fakes.films import carries_personal_data, dicom_with_patient, jpeg_with_exif
    from PIL import Image

    from raiox.kit.storage import get_storage
    from raiox.vision import read_image

    first, second = (np.asarray(Image.open(io.BytesIO(png)).convert("L")) for png in demo_pngs["demo-001"])
    files = {"foto.jpg": jpeg_with_exif(first, orientation=8), "filme.dcm": dicom_with_patient(second)}
    folder = tmp_path / "Acme" / "Cone 3.5"
    folder.mkdir(parents=True)
    for name, data in files.items():
        assert carries_personal_data(data)
        (folder / name).write_bytes(data)
    result = cli("catalog", "import", str(tmp_path), "--whole-image")
    assert result.exit_code == 0 and "2 added" in result.output, result.output
    rows = sql(database_url, "SELECT origin, storage_key, sha256 FROM reference_images")
    assert _audit(database_url, "catalog.import") == [("cli:raiox catalog import", 2, 0, 2)]
    assert sorted(origin for origin, _, _ in rows) == ["Acme/Cone 3.5/filme.dcm", "Acme/Cone 3.5/foto.jpg"]
    for origin, key, sha256 in rows:
        name = origin.rsplit("/", 1)[-1]
        stored = asyncio.run(get_storage().get(key))
        assert not carries_personal_data(stored), origin
        assert sha256 == hashlib.sha256(files[name]).hexdigest()  # the file's identity, as before
        assert np.array_equal(read_image(stored, name), read_image(files[name], name))

    def vectors() -> dict:
        return {ref: np.array(json.loads(text)) for ref, text in
                sql(database_url, "SELECT reference_image_id::text, embedding::text FROM reference_embeddings")}

    imported = vectors()
    assert len(imported) == 2
    assert "2 embedded" in " ".join(cli("catalog", "reindex", "--force").output.split())
    assert _audit(database_url, "catalog.reindex") == [("cli:raiox catalog reindex", 0, 2, 2)]
    reindexed = vectors()
    assert all(np.allclose(reindexed[ref], vector, atol=1e-5) for ref, vector in imported.items())
    again = " ".join(cli("catalog", "import", str(tmp_path), "--whole-image").output.split())
    assert "0 added" in again and "2 already embedded" in again
