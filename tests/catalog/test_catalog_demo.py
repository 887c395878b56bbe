"""`raiox catalog demo`, `raiox identify`, `raiox catalog reindex` (model switch, never mixing models)."""

import hashlib
import json

import jsonschema
import numpy as np
import psycopg


def sql(database_url: str, query: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query).fetchall()


def _closest_mean(database_url: str, reference, system_id: str, model_id: str | None = None) -> float:
    """Mean similarity of the system's SCORE_REFERENCES references closest to the stored reference with these bytes."""
    from raiox.catalog.search import SCORE_REFERENCES

    digest = hashlib.sha256(reference.read_bytes()).hexdigest()
    model = f"AND x.model_id = '{model_id}'" if model_id else ""
    rows = sql(database_url, f"""
        SELECT avg(1 - d) FROM (
            SELECT e.embedding <=> q.embedding AS d FROM reference_embeddings e, (
                SELECT x.embedding, x.model_id FROM reference_embeddings x
                JOIN reference_images r ON r.id = x.reference_image_id WHERE r.sha256 = '{digest}' {model}) q
            WHERE e.system_id = '{system_id}' AND e.model_id = q.model_id """
                             f"""ORDER BY d LIMIT {SCORE_REFERENCES}) nearest""")
    return float(rows[0][0])


def _check_shape(payload: dict, top_k: int) -> None:
    assert set(payload) == {"implants"} and payload["implants"]
    for implant in payload["implants"]:
        assert set(implant) == {"box", "confidence", "candidates", "connection", "features", "thread_turns"}
        turns = implant["thread_turns"]
        assert turns is None or 2.2 <= turns <= 34  # length / pitch, within the count's range
        read = implant["connection"]
        assert read is None or (len(read) == 9 and abs(sum(read.values()) - 1) < 1e-2)
        feats = implant["features"]
        assert feats is None or all(abs(sum(values.values()) - 1) < 1e-2 for values in feats.values())
        assert len(implant["box"]) == 4 and all(len(point) == 2 for point in implant["box"])
        assert 0 <= implant["confidence"] <= 1
        assert 1 <= len(implant["candidates"]) <= top_k
        for candidate in implant["candidates"]:
            assert set(candidate) == {"system", "manufacturer", "name", "score", "differs_from_first"}
        assert implant["candidates"][0]["differs_from_first"] is None  # the first is not compared with itself
        scores = [c["score"] for c in implant["candidates"]]
        assert scores == sorted(scores, reverse=True)


def test_demo_refuses_a_selection_that_names_no_known_system_and_loads_nothing(cli, monkeypatch, tmp_path):
    """`--systems ""` (an unset shell variable) used to load all 144 demo systems: a selection naming no system, or
    an unknown one, is refused (one line, exit 2) before the database or the embedder is touched."""
    from raiox.catalog import cli as catalog_cli

    def untouched(*_args, **_kwargs):
        raise AssertionError("nothing may be loaded")

    monkeypatch.setattr(catalog_cli, "run_db", untouched)
    monkeypatch.setattr(catalog_cli, "_import", untouched)
    specs = tmp_path / "specs.json"
    for selection in ("", "   ", " , ,"):
        result = cli("catalog", "demo", "--systems", selection, "--export-specs", str(specs))
        assert result.exit_code == 2, result.output
        assert result.stderr.strip() == "--systems names no demo system: give comma-separated ids (demo-001 to " \
                                        "demo-144)"
    unknown = cli("catalog", "demo", "--systems", "demo-001,nope-1,demo-999", "--export-specs", str(specs))
    assert unknown.exit_code == 2
    assert unknown.stderr.strip() == "unknown demo system id(s): nope-1, demo-999 (known: demo-001 to demo-144)"
    assert not specs.exists()  # refused before anything was written either
    chosen = catalog_cli._demo_systems(None, " demo-002 ,demo-001,demo-002,")
    assert [d.id for d in chosen] == ["demo-002", "demo-001"]  # blanks trimmed, order kept, a repeat once


def test_demo_loads_once_exports_valid_specs_and_identifies_its_references(
    tmp_path, demo_pngs, cli, database_url, committed
):
    from raiox.synth import SPEC_SCHEMA

    specs_file = tmp_path / "specs.json"
    result = cli("catalog", "demo", "--if-empty", "--systems", "demo-001,demo-002,demo-003", "--refs", "2",
                 "--restored", "1", "--export-specs", str(specs_file))
    assert result.exit_code == 0, result.output
    assert "18 added" in result.output  # per system: 2 bare references + the base size under 4 restorations
    specs = json.loads(specs_file.read_text())
    assert [s["id"] for s in specs] == ["demo-001", "demo-002", "demo-003"]
    for entry in specs:
        assert set(entry) == {"id", "manufacturer", "name", "spec"}
        jsonschema.validate(entry["spec"], SPEC_SCHEMA)
    rows = sql(database_url, "SELECT id, spec IS NOT NULL, (SELECT count(*) FROM reference_images r "
                             "WHERE r.system_id = s.id AND r.source = 'demo') FROM implant_systems s ORDER BY id")
    assert rows == [("demo-001", True, 6), ("demo-002", True, 6), ("demo-003", True, 6)]
    origins = sorted(o for (o,) in sql(database_url,
                                       "SELECT origin FROM reference_images WHERE system_id = 'demo-002'"))
    assert origins == sorted(f"demo:demo-002#{tag}.png"
                             for tag in ("0", "1", "0-cover", "0-healing", "0-abutment", "0-crown"))

    again = cli("catalog", "demo", "--if-empty", "--limit", "5")
    assert again.exit_code == 0 and "already has 3 systems" in again.output
    audit = sql(database_url, "SELECT actor, (details->>'added')::int, jsonb_array_length(details->'images'), "
                              "details->'complete' FROM audit_log WHERE action = 'catalog.import'")
    assert audit == [("cli:raiox catalog demo", 18, 18, True)]  # the whole load one entry, not one per batch
    assert sql(database_url, "SELECT count(*) FROM implant_systems") == [(3,)]

    image = tmp_path / "ref.png"
    image.write_bytes(demo_pngs["demo-002"][1])  # the very bytes of a stored reference
    out = cli("identify", str(image), "--top-k", "2", "--json")
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout.strip().splitlines()[-1])
    _check_shape(payload, 2)
    xs, ys = zip(*payload["implants"][0]["box"], strict=True)
    boxed = cli("identify", str(image), "--top-k", "2", "--json", "--box", f"{min(xs)},{min(ys)},{max(xs)},{max(ys)}")
    manual = json.loads(boxed.stdout.strip().splitlines()[-1])["implants"]
    assert len(manual) == 1 and manual[0]["confidence"] == 1.0  # the given box, not the localiser's
    assert manual[0]["candidates"][0]["system"] == payload["implants"][0]["candidates"][0]["system"]
    bad = cli("identify", str(image), "--box", "1,2,3")
    assert bad.exit_code == 2 and "--box takes four numbers x0,y0,x1,y1" in " ".join(bad.output.split())
    tiny = cli("identify", str(image), "--box", "0,0,1,1")  # one line, not a traceback
    assert tiny.exit_code == 2 and "Traceback" not in tiny.output and "under 8" in tiny.output
    best = payload["implants"][0]["candidates"][0]
    runner_up = payload["implants"][0]["candidates"][1]  # an apex sibling (demo-001..003 form G01-apex)
    assert (runner_up["differs_from_first"]
            and {d["field"].split(".")[0] for d in runner_up["differs_from_first"]} == {"apex"})
    from raiox.synth import demo_catalog

    specs_by_id = {s.id: s.spec for s in demo_catalog()}
    for d in runner_up["differs_from_first"]:
        part, key = d["field"].split(".")
        assert specs_by_id[runner_up["system"]][part].get(key, 0) == d["value"] != d["first"]
    # the score is the mean similarity of the system's closest references (this one, 1.0, and its nearest others)
    # plus the connection reader's bonus for the connection the system's demo spec names, and the feature
    # reader's for the apex, thread, collar and taper it names, and the thread count's for its line's lengths
    from raiox.synth import demo_catalog
    from raiox.vision import connection, features, threads
    from raiox.vision.attributes import HEADS

    assert best["system"] == "demo-002" and best["manufacturer"]
    read = payload["implants"][0]["connection"]
    system = next(s for s in demo_catalog() if s.id == "demo-002")
    spec = system.spec
    kind = connection.CLASSES[connection.spec_class(spec)]
    bonus = connection.WEIGHT * np.log(read[kind] + connection.FLOOR) if read else 0.0
    feats = payload["implants"][0].get("features")
    if features.model_path() is not None:  # the shipped reader reads the default embedder's vectors
        assert all(features.spec_value(spec, name) is not None for name in feats)  # no pool mean involved
        logp = {name: np.log([feats[name][str(v).lower()] for v in HEADS[name][0]]) for name in feats}
        bonus += features.bonus(logp, [spec])[0]
    turns = payload["implants"][0]["thread_turns"]
    line = threads.line_of(spec, system.attributes)
    assert line is not None and len(line.lengths_mm) > 1  # the demo stores its line's lengths
    bonus += threads.bonus(threads.Turns(turns, 0.0), [line])[0] if turns else 0.0
    assert 0.5 < best["score"] < 0.999
    assert abs(best["score"] - (_closest_mean(database_url, image, "demo-002") + bonus)) < 1e-3

    table = cli("identify", str(image))
    assert table.exit_code == 0 and "demo-002" in table.stdout and "Implant 1" in table.stdout
    assert f"connection read {max(read, key=read.get)}" in table.stdout
    if feats:
        apex = feats["apex_shape"]
        assert f"apex_shape {max(apex, key=apex.get)}" in table.stdout
    # a clean reference of the line's second size: the count reads its length over pitch
    from raiox.synth import line_size

    length = line_size(system, 1)["length_mm"]
    assert turns and abs(np.log(turns * spec["thread"]["pitch_mm"] / (length + threads.OFFSET_MM))) < 0.1
    assert f"threads counted: length = {turns:.1f} x pitch" in table.stdout
    assert "#2 differs from #1 in: apex." in table.stdout


def test_demo_if_empty_finishes_a_load_cut_short_and_leaves_a_finished_one_alone(
    cli, database_url, committed, monkeypatch
):
    """The first `make run` loads the demo catalog for minutes; a Ctrl+C then left some systems, and every later
    `make run` (`--if-empty`) said "catalog already has N systems" and served that partial catalog for good. A load
    cut short is finished by the next `--if-empty`; one that ended is left alone, even after a reference was removed."""
    from raiox.catalog.service import Importer

    import_batch, batches = Importer.import_batch, []

    async def interrupted(self, session, items):
        batches.append(len(items))
        if len(batches) == 3:
            raise KeyboardInterrupt  # Ctrl+C in the third batch: the first two are committed
        await import_batch(self, session, items)

    args = ("catalog", "demo", "--if-empty", "--systems", "demo-001,demo-002", "--refs", "2", "--restored", "0")
    monkeypatch.setattr(Importer, "import_batch", interrupted)
    cut = cli(*args, "--batch-size", "1")
    assert cut.exit_code == 130 and "interrupted" in cut.output
    monkeypatch.setattr(Importer, "import_batch", import_batch)
    assert sql(database_url, "SELECT count(*) FROM reference_images WHERE source = 'demo'") == [(2,)]

    resumed = cli(*args)
    assert resumed.exit_code == 0, resumed.output
    assert "demo catalog load was cut short (1 systems, 2 of 4 references): finishing it" in resumed.output
    assert resumed.stdout.startswith("demo: 2 added,"), resumed.output  # what was stored is not stored twice
    assert sql(database_url, "SELECT system_id, count(*) FROM reference_images GROUP BY 1 ORDER BY 1") == [
        ("demo-001", 2), ("demo-002", 2)]
    assert sql(database_url, "SELECT (details->>'added')::int, details->'complete' FROM audit_log "
                             "WHERE action = 'catalog.import' ORDER BY created_at") == [(2, False), (2, True)]

    with psycopg.connect(database_url) as conn:  # the operator removed one reference
        conn.execute("DELETE FROM reference_images WHERE origin = 'demo:demo-002#1.png'")
    again = cli(*args)
    assert again.exit_code == 0 and again.stdout == "catalog already has 2 systems: demo not loaded\n", again.output
    assert sql(database_url, "SELECT count(*) FROM reference_images") == [(3,)]


def test_identify_against_a_catalog_without_vectors_of_the_model_says_so(tmp_path, demo_pngs, cli, database_url,
                                                                          committed):
    image = tmp_path / "ref.png"
    image.write_bytes(demo_pngs["demo-002"][1])
    result = cli("identify", str(image), "--json")  # an empty catalog: every search would come back empty
    assert result.exit_code == 1 and result.stdout.strip() == "", result.output
    assert "the catalog has no vectors of" in result.stderr and "raiox catalog demo" in result.stderr


def test_identify_rejects_a_file_that_is_not_an_image(tmp_path, cli, database_url):
    page = tmp_path / "login.png"
    page.write_text("<!DOCTYPE html><html><body>Jotform login</body></html>")
    result = cli("identify", str(page), "--json")
    assert result.exit_code == 1 and "login.png" in result.output and result.stdout.strip() == ""


def test_identify_refuses_an_image_over_the_configured_pixel_cap(tmp_path, demo_pngs, cli, database_url, configure):
    image = tmp_path / "big.png"
    image.write_bytes(demo_pngs["demo-001"][0])
    configure(MAX_PIXELS="10000")  # the render is far larger; the built-in cap is 60 MP
    result = cli("identify", str(image), "--json")
    assert result.exit_code == 1 and result.stdout.strip() == "", result.output
    assert "big.png: image too large" in " ".join(result.stderr.split()) and "(limit 10000)" in result.stderr


def test_reindex_switches_model_and_search_never_mixes_models(tmp_path, demo_pngs, cli, database_url, committed,
                                                              use_embedder):
    from raiox.vision.interim import build_interim

    first = use_embedder("raiox-v0")
    assert "4 added" in cli("catalog", "demo", "--systems", "demo-001,demo-002", "--refs", "2",
                            "--restored", "0").output
    image = tmp_path / "ref.png"
    image.write_bytes(demo_pngs["demo-001"][0])

    other = use_embedder(f"onnx:{build_interim(tmp_path / 'alt.onnx', seed=5)}")
    assert other.model_id != first.model_id
    before = cli("identify", str(image), "--json")  # no vectors of this model yet: no answer, and why
    assert before.exit_code == 1 and before.stdout.strip() == "" and "run `raiox catalog reindex`" in before.stderr

    result = cli("catalog", "reindex", "--batch-size", "3")
    assert result.exit_code == 0 and "4 embedded" in result.output, result.output
    per_model = dict(sql(database_url, "SELECT model_id, count(*) FROM reference_embeddings GROUP BY model_id"))
    assert per_model == {first.model_id: 4, other.model_id: 4}
    index = sql(database_url, "SELECT indexdef FROM pg_indexes WHERE indexname LIKE 'ix_refemb_hnsw_onnx_alt%'")
    assert len(index) == 1 and "hnsw" in index[0][0]

    after = json.loads(cli("identify", str(image), "--json").stdout.strip().splitlines()[-1])
    scores = {c["system"]: c["score"] for c in after["implants"][0]["candidates"]}
    assert set(scores) == {"demo-001", "demo-002"}
    # demo-001's score comes from the new model's vectors only: its reference identical to the query and the other
    # (plus the thread count's bonus for its line's lengths, which reads no vectors; the connection reader is sure)
    from raiox.synth import demo_catalog
    from raiox.vision import threads

    system = next(s for s in demo_catalog() if s.id == "demo-001")
    turns = after["implants"][0]["thread_turns"]
    count = (threads.bonus(threads.Turns(turns, 0.0), [threads.line_of(system.spec, system.attributes)])[0] if turns
             else 0.0)
    assert abs(scores["demo-001"] - _closest_mean(database_url, image, "demo-001", other.model_id) - count) < 1e-3
    assert "0 embedded" in cli("catalog", "reindex").output  # nothing left to do: resumable, idempotent

    pruned = cli("catalog", "reindex", "--prune")
    assert "4 old embeddings pruned" in pruned.output
    assert dict(sql(database_url, "SELECT model_id, count(*) FROM reference_embeddings GROUP BY model_id")) == {
        other.model_id: 4}
    audit = sql(database_url, "SELECT action, target, details->'embedded', details->'pruned', "
                              "jsonb_array_length(details->'images') FROM audit_log "
                              "WHERE action IN ('catalog.reindex', 'catalog.prune') ORDER BY id")
    assert audit == [("catalog.reindex", other.model_id, 4, None, 4),  # batches of 3 and 1, one entry; reruns none
                     ("catalog.prune", other.model_id, None, 4, None)]


def _vectors(database_url: str) -> dict[str, np.ndarray]:
    return {str(image_id): np.array(json.loads(vector), dtype=np.float32) for image_id, vector in sql(
        database_url, "SELECT reference_image_id, embedding::text FROM reference_embeddings")}


def test_reindex_relocate_places_boxes_of_an_older_localiser_again(cli, database_url, committed):
    from raiox.vision.detect import localiser_id

    assert "4 added" in cli("catalog", "demo", "--systems", "demo-001,demo-002", "--refs", "2",
                            "--restored", "0").output
    rows = sql(database_url, "SELECT id::text, box FROM reference_images ORDER BY id")
    assert {r[0] for r in sql(database_url, "SELECT located_by FROM reference_images")} == {localiser_id()}
    imported, vectors = {image_id: np.array(box) for image_id, box in rows}, _vectors(database_url)
    (old, reviewed, lost, current) = [image_id for image_id, _ in rows]
    shifted = imported[old] + 0.12 * (imported[old][2] - imported[old][1])  # 12 % of the length towards the apex
    corner = [[0, 0], [24, 0], [24, 48], [0, 48]]  # no fixture there
    with psycopg.connect(database_url) as conn:  # boxes as an older localiser left them
        conn.execute("UPDATE reference_images SET box = %s, located_by = NULL WHERE id = %s",
                     (json.dumps(shifted.tolist()), old))
        conn.execute("UPDATE reference_images SET box = %s, located_by = NULL, source = 'case' WHERE id = %s",
                     (json.dumps(shifted.tolist()), reviewed))
        conn.execute("UPDATE reference_images SET box = %s, located_by = 'locator-v0' WHERE id = %s",
                     (json.dumps(corner), lost))
        conn.execute("UPDATE reference_embeddings SET embedding = (SELECT embedding FROM reference_embeddings "
                     "WHERE reference_image_id = %s) WHERE reference_image_id = %s", (current, old))  # its old crop's
    assert "0 embedded" in cli("catalog", "reindex").output  # a plain reindex never looks at boxes
    stats = json.loads(cli("catalog", "stats").stdout)
    assert {k: v for k, v in stats.items() if k.startswith("boxes:")} == {
        "boxes:unknown": 1, "boxes:locator-v0": 1, f"boxes:{localiser_id()}": 1}  # the case reference left out

    result = cli("catalog", "reindex", "--relocate", "--batch-size", "3")
    assert result.exit_code == 0 and "2 embedded" in result.output and "1 relocated" in result.output, result.output
    assert "stored box kept for 1" in result.output and "no fixture there" in result.output
    after = {image_id: (np.array(box), by) for image_id, box, by in sql(
        database_url, "SELECT id::text, box, located_by FROM reference_images")}
    assert np.allclose(after[old][0], imported[old], atol=1e-3) and after[old][1] == localiser_id()
    assert np.allclose(after[reviewed][0], shifted) and after[reviewed][1] is None  # a case's reviewed box stays
    assert np.allclose(after[lost][0], corner) and after[lost][1] == localiser_id()  # checked once, kept, reported
    now = _vectors(database_url)
    assert np.allclose(now[old], vectors[old], atol=1e-5)  # embedded from the relocated box again
    assert np.allclose(now[current], vectors[current]) and np.allclose(now[reviewed], vectors[reviewed])
    assert not np.allclose(now[lost], vectors[lost], atol=1e-3)  # now the corner's crop
    assert "0 embedded" in cli("catalog", "reindex", "--relocate").output  # resumable: nothing stale is left
    assert json.loads(cli("catalog", "stats").stdout)[f"boxes:{localiser_id()}"] == 3
