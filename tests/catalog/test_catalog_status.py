"""`raiox catalog status` (is the catalog ready for a model? exit 3 when not) and what `raiox catalog reindex` does
about it (the deploy runs the one, then the other: docs/operations.md, "How a deploy works"), on the real database."""

import json

import psycopg

from raiox.catalog.cli import NOT_READY


def _sql(database_url: str, query: str, *params) -> list[tuple]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        cursor = conn.execute(query, params or None)
        return cursor.fetchall() if cursor.description else []


def _status(cli, *args: str) -> tuple[int, dict, str]:
    result = cli("catalog", "status", *args)
    return result.exit_code, json.loads(result.stdout), " ".join(result.stderr.split())


def _interim(tmp_path, seed: int) -> str:
    from raiox.vision.interim import build_interim

    return f"onnx:{build_interim(tmp_path / f'model-{seed}.onnx', seed=seed)}"


def test_status_says_which_model_the_catalog_lacks_and_reindex_fills_it_in(tmp_path, cli, database_url, committed,
                                                                             use_embedder):
    first = use_embedder("raiox-v0")
    assert "4 added" in cli("catalog", "demo", "--systems", "demo-001,demo-002", "--refs", "2",
                            "--restored", "0").output
    code, ready, said = _status(cli)
    assert code == 0, said
    assert ready == {"model_id": first.model_id, "references": 4, "embedded": 4, "missing": 0, "vector_index": True,
                     "ready": True}
    assert f"catalog ready for {first.model_id}: 4 reference images" in said

    other = _interim(tmp_path, seed=31)
    code, missing, said = _status(cli, "--embedder", other)
    assert code == NOT_READY == 3, said
    model_id = missing["model_id"]
    assert model_id.startswith("onnx:model-31.onnx#") and model_id != first.model_id
    assert missing == {"model_id": model_id, "references": 4, "embedded": 0, "missing": 4, "vector_index": False,
                       "ready": False}
    assert (f"catalog not ready for {model_id}: 4 of 4 reference images lack its vector and its vector index is "
            "missing; run `raiox catalog reindex`") in said

    # one reference's vector of the configured model gone: that model is not ready either
    _sql(database_url, "DELETE FROM reference_embeddings WHERE id = (SELECT min(id) FROM "
         "reference_embeddings WHERE model_id = %s)", first.model_id)
    code, partial, said = _status(cli)
    assert code == NOT_READY and (partial["embedded"], partial["missing"], partial["vector_index"]) == (3, 1, True)
    assert "1 of 4 reference images lack its vector; run" in said

    result = cli("catalog", "reindex", "--embedder", other, "--batch-size", "3")
    assert result.exit_code == 0 and "4 embedded" in result.output, result.output
    # not a terminal (a deploy's log): progress as lines, the first when it starts, the last when it is done
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"reindexing ({model_id}): ")]
    assert lines[0].startswith(f"reindexing ({model_id}): 0/4, 0%, 0:00:0")
    assert lines[-1].startswith(f"reindexing ({model_id}): 4/4, 100%, ") and "left" not in lines[-1]
    code, after, said = _status(cli, "--embedder", other)
    assert code == 0 and after["ready"] and after["embedded"] == 4, said
    assert (_status(cli)[0], _status(cli)[1]["missing"]) == (NOT_READY, 1)  # --embedder touched no other model

    assert "1 embedded" in cli("catalog", "reindex").output  # only what is missing: the configured model's one
    assert _status(cli)[0] == 0
    assert "0 embedded" in cli("catalog", "reindex", "--embedder", other).output


def test_reindex_of_an_empty_catalog_creates_the_models_vector_index(tmp_path, cli, database_url, committed):
    """The app role (the services', `raiox catalog import` on the host) cannot create an index; the deploy's
    reindex, as the migration role, creates the model's before any reference is loaded."""
    spec = _interim(tmp_path, seed=32)
    code, empty, said = _status(cli, "--embedder", spec)
    assert code == NOT_READY and (empty["references"], empty["missing"], empty["vector_index"]) == (0, 0, False)
    assert "catalog not ready" in said and "its vector index is missing" in said and "lack" not in said
    result = cli("catalog", "reindex", "--embedder", spec)
    assert result.exit_code == 0 and "0 embedded" in result.output, result.output
    code, now, said = _status(cli, "--embedder", spec)
    assert code == 0 and now["vector_index"] and now["references"] == 0, said


def test_reindex_that_can_read_no_reference_fails(tmp_path, cli, database_url, committed, use_embedder, configure,
                                                   monkeypatch):
    """Object storage the reindex cannot read (a host whose env file lacks the storage settings): every reference is
    skipped, and the run fails instead of leaving the model with an empty catalog; one reference skipped among
    others is a warning."""
    from raiox.kit import storage

    use_embedder("raiox-v0")
    assert "4 added" in cli("catalog", "demo", "--systems", "demo-001,demo-002", "--refs", "2",
                            "--restored", "0").output
    spec = _interim(tmp_path, seed=33)
    configure(STORAGE_URL=f"file://{tmp_path / 'empty-storage'}")
    monkeypatch.setattr(storage, "_storage", None)
    result = cli("catalog", "reindex", "--embedder", spec)
    said = " ".join(result.stderr.split())
    assert result.exit_code == 1, result.output
    assert "skipped 4:" in said and "cannot re-read" in said
    assert "no reference image of the catalog (4) has a vector of onnx:model-33.onnx#" in said
    assert "check the object storage settings (RAIOX_STORAGE_URL, RAIOX_S3_*)" in said
    assert _status(cli, "--embedder", spec)[1]["missing"] == 4

    monkeypatch.undo()  # the real storage again, less one reference's stored image
    use_embedder("raiox-v0")
    key = _sql(database_url, "SELECT storage_key FROM reference_images ORDER BY id LIMIT 1")[0][0]
    monkeypatch.setattr(storage, "_storage", None)
    moved = storage.get_storage()
    monkeypatch.setattr(moved, "get", _missing_one(moved.get, key))
    result = cli("catalog", "reindex", "--embedder", spec)
    said = " ".join(result.stderr.split())
    assert result.exit_code == 0 and "skipped 1:" in said, result.output  # what was skipped, on stderr ...
    assert result.stdout.startswith("reindex: 0 added, 3 embedded"), result.output  # ... the summary on stdout
    assert f"1 of 4 reference images still lack a vector of {_status(cli, '--embedder', spec)[1]['model_id']}" in said


def _missing_one(get, key: str):
    async def wrapped(wanted: str) -> bytes:
        if wanted == key:
            raise FileNotFoundError(f"no stored object {wanted}")
        return await get(wanted)

    return wrapped
