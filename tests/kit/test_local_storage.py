"""The local storage folder: a folder that cannot be written is storage unavailable (503), like an unreachable S3."""

import pytest

from raiox.kit.errors import NotFound, ServiceUnavailable
from raiox.kit.storage import LocalStorage


async def test_round_trip_and_missing_object(tmp_path):
    storage = LocalStorage(tmp_path)
    await storage.put("sha256/ab/abc", b"data")
    assert await storage.get("sha256/ab/abc") == b"data" and await storage.exists("sha256/ab/abc")
    with pytest.raises(NotFound):
        await storage.get("sha256/ab/missing")
    await storage.delete("sha256/ab/abc")
    assert not await storage.exists("sha256/ab/abc")
    await storage.delete("sha256/ab/abc")  # gone already: fine


async def test_an_unwritable_folder_is_unavailable_and_leaves_no_temporary_file(tmp_path):
    """(A file where the key's folder should be fails for root too, unlike a read-only mode.)"""
    (tmp_path / "sha256").write_bytes(b"not a folder")
    storage = LocalStorage(tmp_path)
    with pytest.raises(ServiceUnavailable, match="storage folder not writable"):
        await storage.put("sha256/ab/abc", b"data")
    (tmp_path / "sha256").unlink()
    (tmp_path / "sha256" / "ab" / "abc").mkdir(parents=True)  # a folder where the object should be
    with pytest.raises(ServiceUnavailable):
        await storage.put("sha256/ab/abc", b"data")
    assert [p.name for p in (tmp_path / "sha256" / "ab").iterdir()] == ["abc"]  # the temporary file is gone
    with pytest.raises(ServiceUnavailable, match="unreadable"):
        await storage.get("sha256/ab/abc")
