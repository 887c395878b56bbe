"""`raiox catalog scrub-references`: references stored before metadata stripping (the file itself, its DICOM patient
and EXIF GPS included) get their metadata-free copy, keep their sha256, box and vectors; dry run, rerun, failures."""

import asyncio
import hashlib
import io
import json
import uuid

import numpy as np
import psycopg
import pytest

SCRUB = ("catalog", "scrub-references")
ACTOR = "cli:raiox catalog scrub-references"


def sql(database_url: str, query: str, *params) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        cursor = conn.execute(query, params or None)
        return cursor.fetchall() if cursor.description else []


def _storage():
    from raiox.kit.storage import get_storage

    return get_storage()


def _get(key: str) -> bytes:
    return asyncio.run(_storage().get(key))


def _exists(key: str) -> bool:
    return asyncio.run(_storage().exists(key))


def _films(demo_pngs) -> dict[str, bytes]:
    """A phone photo of a film (EXIF: author, camera serial, GPS; turned by its orientation) and a DICOM export naming
    the patient, the clinic and the sensor."""
    from fakes.films import dicom_with_patient, jpeg_with_exif
    from PIL import Image

    first, second = (np.asarray(Image.open(io.BytesIO(png)).convert("L")) for png in demo_pngs["demo-001"])
    return {"foto.jpg": jpeg_with_exif(first, orientation=8), "filme.dcm": dicom_with_patient(second)}


def _import_legacy(tmp_path, cli, database_url, files: dict[str, bytes]) -> dict[str, str]:
    """Import FILES, then make their references what a store before commit 710be27 left: the file itself under its
    own content key, not flagged metadata-free (its copy gone). The references' ids -> file name."""
    from raiox.kit.storage import content_key

    folder = tmp_path / "Acme" / "Cone 3.5"
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    result = cli("catalog", "import", str(tmp_path), "--whole-image")
    assert result.exit_code == 0 and f"{len(files)} added" in result.output, result.output
    names = {}
    for ref_id, origin, key, flagged in sql(database_url, "SELECT id, origin, storage_key, metadata_free "
                                                          "FROM reference_images"):
        assert flagged  # a store since migration 0018 says its object is metadata-free
        name = origin.rsplit("/", 1)[-1]
        old, _ = content_key(files[name])
        asyncio.run(_storage().put(old, files[name]))
        if key != old:
            asyncio.run(_storage().delete(key))
        sql(database_url, "UPDATE reference_images SET storage_key = %s, metadata_free = false WHERE id = %s", old,
            ref_id)
        names[str(ref_id)] = name
    return names


def _state(database_url) -> dict:
    """Every reference's row and vectors."""
    refs = sql(database_url, "SELECT id::text, storage_key, sha256, box::text, metadata_free, replaced_key, width, "
                             "height FROM reference_images")
    vectors = sql(database_url, "SELECT reference_image_id::text, model_id, embedding::text FROM reference_embeddings")
    return {"refs": sorted(refs), "vectors": sorted(vectors)}


def _out(result) -> str:
    return " ".join(result.output.split())


def _audit(database_url) -> list[tuple]:
    return sql(database_url, "SELECT actor, target, details FROM audit_log WHERE action = 'catalog.reference_scrub'")


def _check_scrubbed(database_url, files: dict[str, bytes], names: dict[str, str], before: dict) -> None:
    """Each reference stores a copy without the file's metadata, reading as the file's pixels; sha256, size, box and
    vectors as they were; the file's object deleted; each change audited."""
    from fakes.films import carries_personal_data

    from raiox.kit.storage import content_key
    from raiox.vision import read_image

    after = _state(database_url)
    assert after["vectors"] == before["vectors"]
    old_rows = {row[0]: row for row in before["refs"]}
    for ref_id, key, sha256, box, flagged, replaced, width, height in after["refs"]:
        name, old = names[ref_id], old_rows[ref_id]
        assert (sha256, box, width, height) == (old[2], old[3], old[6], old[7])
        assert sha256 == hashlib.sha256(files[name]).hexdigest()  # still the file's: a re-import recognises it
        assert flagged and replaced is None and key != old[1]
        stored = _get(key)
        assert not carries_personal_data(stored), name
        assert np.array_equal(read_image(stored, name), read_image(files[name], name))
        assert not _exists(content_key(files[name])[0])
    audit = {d["reference_id"]: (actor, target, d) for actor, target, d in _audit(database_url)}
    assert set(audit) == set(names)
    for ref_id, (actor, target, details) in audit.items():
        assert (actor, target) == (ACTOR, "acme-cone-3-5")
        assert details["replaced_key"] == old_rows[ref_id][1] and details["sha256"] == old_rows[ref_id][2]


def test_references_with_exif_gps_and_a_dicom_patient_are_scrubbed_once(tmp_path, demo_pngs, cli, database_url,
                                                                          committed):
    from fakes.films import carries_personal_data

    files = _films(demo_pngs)
    names = _import_legacy(tmp_path, cli, database_url, files)
    before = _state(database_url)
    assert all(carries_personal_data(_get(row[1])) for row in before["refs"])

    dry = cli(*SCRUB, "--dry-run")
    assert dry.exit_code == 0 and "would scrub 2, 0 already clean, 0 failed" in _out(dry), dry.output
    assert _state(database_url) == before and _audit(database_url) == []
    assert all(carries_personal_data(_get(row[1])) for row in before["refs"])

    result = cli(*SCRUB)
    assert result.exit_code == 0, result.output
    assert "2 scrubbed, 0 already clean, 0 failed, 2 replaced objects deleted" in _out(result)
    _check_scrubbed(database_url, files, names, before)

    scrubbed = _state(database_url)
    again = cli(*SCRUB)
    assert again.exit_code == 0 and "0 scrubbed, 0 already clean, 0 failed" in _out(again), again.output
    assert _state(database_url) == scrubbed and len(_audit(database_url)) == 2

    def vectors() -> dict:
        return {ref: np.array(json.loads(text)) for ref, _, text in _state(database_url)["vectors"]}

    embedded = vectors()
    assert "2 embedded" in _out(cli("catalog", "reindex", "--force"))  # from the copies: the same vectors
    assert all(np.allclose(vectors()[ref], vector, atol=1e-5) for ref, vector in embedded.items())
    reimport = _out(cli("catalog", "import", str(tmp_path), "--whole-image"))
    assert "0 added" in reimport and "2 already embedded" in reimport


def test_an_object_a_case_still_uses_stays_and_a_clean_one_is_only_flagged(tmp_path, demo_pngs, cli, database_url,
                                                                             committed):
    """A reference added from a case before "add to catalog" stored its own copy shares the case's film: the
    reference gets its copy, the case keeps its film (the purge deletes it). A stored object that is its own
    metadata-free copy byte for byte is left as it is."""
    from raiox.kit.storage import content_key
    from raiox.vision import metadata_free

    files = _films(demo_pngs)
    clean, _ = metadata_free(demo_pngs["demo-002"][0], "limpa.png")
    files["limpa.png"] = clean
    names = _import_legacy(tmp_path, cli, database_url, files)
    dicom_key = content_key(files["filme.dcm"])[0]
    case_id = uuid.uuid4()
    sql(database_url, "INSERT INTO cases (id, jotform_submission_id, source, answers, payload, status) "
                      "VALUES (%s, 's-1', 'webhook', '{}', '{}', 'delivered')", case_id)
    sql(database_url, "INSERT INTO case_images (id, case_id, position, source_url, filename, storage_key, sha256, "
                      "status) VALUES (%s, %s, 0, 'https://x/filme.dcm', 'filme.dcm', %s, %s, 'stored')",
        uuid.uuid4(), case_id, dicom_key, hashlib.sha256(files["filme.dcm"]).hexdigest())
    sql(database_url, "UPDATE reference_images SET source = 'case' WHERE storage_key = %s", dicom_key)

    result = cli(*SCRUB)
    assert result.exit_code == 0, result.output
    out = _out(result)
    assert "2 scrubbed, 1 already clean, 0 failed, 1 replaced objects deleted, 1 kept" in out, out
    assert _get(dicom_key) == files["filme.dcm"]  # the case's film, as it was sent
    rows = {names[i]: (key, flagged) for i, key, flagged in sql(database_url, "SELECT id::text, storage_key, "
                                                                              "metadata_free FROM reference_images")}
    assert rows["limpa.png"] == (content_key(clean)[0], True) and _get(rows["limpa.png"][0]) == clean
    assert rows["filme.dcm"][0] != dicom_key and all(flagged for _, flagged in rows.values())
    assert {d["origin"].rsplit("/", 1)[-1] for _, _, d in _audit(database_url)} == {"foto.jpg", "filme.dcm"}
    assert "0 scrubbed, 0 already clean, 0 failed" in _out(cli(*SCRUB))


def test_a_storage_outage_midway_leaves_every_reference_readable(tmp_path, demo_pngs, cli, database_url, committed,
                                                                  monkeypatch):
    """The copy of the second reference cannot be written: the run stops (exit 1), that reference still points at
    its own object, whole; the first one is scrubbed. Later its old object cannot be deleted after the commit: the
    reference points at its copy, the deletion stays pending and the next run does it."""
    from raiox.kit.errors import ServiceUnavailable
    from raiox.kit.storage import LocalStorage

    files = _films(demo_pngs)
    names = _import_legacy(tmp_path, cli, database_url, files)
    before = _state(database_url)
    put, calls = LocalStorage.put, []

    async def failing_put(self, key, data, content_type="application/octet-stream"):
        calls.append(key)
        if len(calls) == 2:
            raise ServiceUnavailable("storage folder not writable: disk full")
        await put(self, key, data, content_type)

    monkeypatch.setattr(LocalStorage, "put", failing_put)
    result = cli(*SCRUB)
    assert result.exit_code == 1, result.output
    out = _out(result)
    assert "1 scrubbed, 0 already clean, 1 failed" in out and "disk full" in out and "stopped" in out, out
    rows = {i: (key, flagged, replaced) for i, key, flagged, replaced in sql(
        database_url, "SELECT id::text, storage_key, metadata_free, replaced_key FROM reference_images")}
    old = {row[0]: row[1] for row in before["refs"]}
    left = [i for i, (key, flagged, _) in rows.items() if not flagged]
    assert len(left) == 1 and rows[left[0]][0] == old[left[0]]
    assert _get(old[left[0]]) == files[names[left[0]]]  # its own object, whole
    done = next(i for i in rows if i != left[0])
    assert rows[done][1] and rows[done][2] is None and not _exists(old[done])

    async def failing_delete(self, key):
        raise ServiceUnavailable("storage object not deletable: read-only file system")

    monkeypatch.setattr(LocalStorage, "put", put)
    monkeypatch.setattr(LocalStorage, "delete", failing_delete)
    result = cli(*SCRUB)
    assert result.exit_code == 1 and "read-only file system" in _out(result), result.output
    key, flagged, replaced = sql(database_url, "SELECT storage_key, metadata_free, replaced_key FROM reference_images "
                                               "WHERE id = %s", uuid.UUID(left[0]))[0]
    assert flagged and replaced == old[left[0]] and key != replaced and _exists(replaced) and _get(key)
    monkeypatch.undo()
    dry = cli(*SCRUB, "--dry-run")
    assert "would scrub 0, 0 already clean, 0 failed, 1 replaced objects to delete" in _out(dry), dry.output
    result = cli(*SCRUB)
    assert result.exit_code == 0 and "0 scrubbed, 0 already clean, 0 failed, 1 replaced objects deleted" in \
        _out(result), result.output
    _check_scrubbed(database_url, files, names, before)


def test_unusable_references_are_reported_and_left_as_they_are(tmp_path, demo_pngs, cli, database_url, committed,
                                                                monkeypatch):
    """A copy whose pixels would differ, a copy that does not read back whole from storage, an object lost from
    storage: each failed with its reason (exit 1), its reference unchanged; a rerun scrubs what it can."""
    from raiox import vision
    from raiox.kit.storage import LocalStorage

    files = _films(demo_pngs)
    files["b.png"] = demo_pngs["demo-002"][0]
    names = _import_legacy(tmp_path, cli, database_url, files)
    by_name = {name: ref_id for ref_id, name in names.items()}
    old = {row[0]: row[1] for row in _state(database_url)["refs"]}
    asyncio.run(_storage().delete(old[by_name["b.png"]]))
    real = vision.metadata_free

    def shifted(data, filename=None, **kwargs):
        clean, content_type = real(data, filename, **kwargs)
        if filename and filename.endswith(".jpg"):  # a copy that would not read as the same pixels
            from PIL import Image

            im = Image.open(io.BytesIO(clean))
            out = io.BytesIO()
            im.point(lambda v: min(v + 1, 255)).save(out, "PNG")
            return out.getvalue(), content_type
        return clean, content_type

    put = LocalStorage.put

    async def truncating_put(self, key, data, content_type="application/octet-stream"):
        await put(self, key, data[:-100] if content_type == "application/dicom" else data, content_type)

    monkeypatch.setattr(vision, "metadata_free", shifted)
    monkeypatch.setattr(LocalStorage, "put", truncating_put)
    before = _state(database_url)
    result = cli(*SCRUB)
    assert result.exit_code == 1, result.output
    out = _out(result)
    assert "0 scrubbed, 0 already clean, 3 failed" in out, out
    assert "foto.jpg): its metadata-free copy would not read back as the same pixels" in out
    assert "filme.dcm): its copy sha256/" in out and "did not read back whole from object storage" in out
    assert f"stored object {old[by_name['b.png']]} is missing" in out
    assert _state(database_url) == before and _audit(database_url) == []
    assert _get(old[by_name["foto.jpg"]]) == files["foto.jpg"]
    assert _get(old[by_name["filme.dcm"]]) == files["filme.dcm"]

    monkeypatch.undo()
    result = cli(*SCRUB)
    assert result.exit_code == 1 and "2 scrubbed, 0 already clean, 1 failed" in _out(result), result.output
    rows = dict(sql(database_url, "SELECT id::text, storage_key FROM reference_images"))
    assert rows[by_name["b.png"]] == old[by_name["b.png"]]
    assert all(rows[by_name[name]] != old[by_name[name]] for name in ("foto.jpg", "filme.dcm"))


S3_BUCKET = "raiox-scrub"


@pytest.fixture
def s3_storage(monkeypatch):
    """Object storage on moto's S3 server (a real HTTP endpoint) for the rest of the test."""
    import boto3
    from moto.server import ThreadedMotoServer

    from raiox.kit import storage
    from raiox.kit.settings import get_settings

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
    client.create_bucket(Bucket=S3_BUCKET)
    for name, value in {"STORAGE_URL": f"s3://{S3_BUCKET}/refs", "S3_ENDPOINT": endpoint, "S3_ACCESS_KEY": "test",
                        "S3_SECRET_KEY": "test", "S3_REGION": "us-east-1"}.items():
        monkeypatch.setenv(f"RAIOX_{name}", value)
    get_settings.cache_clear()
    storage._storage = None
    yield client
    monkeypatch.undo()
    get_settings.cache_clear()
    storage._storage = None
    server.stop()


def test_references_on_s3_are_scrubbed(tmp_path, demo_pngs, cli, database_url, committed, s3_storage):
    from raiox.kit.storage import S3Storage

    assert isinstance(_storage(), S3Storage)
    files = _films(demo_pngs)
    names = _import_legacy(tmp_path, cli, database_url, files)
    before = _state(database_url)
    listed = {o["Key"] for o in s3_storage.list_objects_v2(Bucket=S3_BUCKET)["Contents"]}
    assert listed == {f"refs/{row[1]}" for row in before["refs"]}

    result = cli(*SCRUB)
    assert result.exit_code == 0 and "2 scrubbed, 0 already clean, 0 failed, 2 replaced objects deleted" in \
        _out(result), result.output
    _check_scrubbed(database_url, files, names, before)
    types = {}
    for _, key, *_ in _state(database_url)["refs"]:
        types[key] = s3_storage.head_object(Bucket=S3_BUCKET, Key=f"refs/{key}")["ContentType"]
    assert sorted(types.values()) == ["application/dicom", "image/png"]
    listed = {o["Key"] for o in s3_storage.list_objects_v2(Bucket=S3_BUCKET)["Contents"]}
    assert listed == {f"refs/{key}" for key in types}  # the files' objects are gone, nothing else left
    assert "0 scrubbed, 0 already clean, 0 failed" in _out(cli(*SCRUB))
