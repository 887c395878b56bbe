"""Object storage behind one small interface: a local folder (default) or S3 / DigitalOcean Spaces."""

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from raiox.kit.errors import NotFound, ServiceUnavailable
from raiox.kit.settings import Settings, get_settings


class Storage(Protocol):
    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...
    async def get(self, key: str) -> bytes: ...
    async def exists(self, key: str) -> bool: ...
    async def delete(self, key: str) -> None: ...  # gone already is fine
    async def check(self) -> None: ...


def content_key(data: bytes, prefix: str = "sha256") -> tuple[str, str]:
    """Content-addressed key: the same bytes always map to the same key (stored once)."""
    digest = hashlib.sha256(data).hexdigest()
    return f"{prefix}/{digest[:2]}/{digest}", digest


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise NotFound(f"invalid storage key: {key}")
        return path

    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Atomic (readers never see a partial object); a folder that cannot be written (read-only, full,
        permissions) is the storage being unavailable, like an unreachable S3: ServiceUnavailable, not OSError."""
        path, tmp = self._path(key), None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise ServiceUnavailable(f"storage folder not writable: {path.parent}: {exc.strerror or exc}") from None

    async def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"object not found: {key}") from None
        except OSError as exc:
            raise ServiceUnavailable(f"storage object unreadable: {key}: {exc.strerror or exc}") from None

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    async def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise ServiceUnavailable(f"storage object not deletable: {key}: {exc.strerror or exc}") from None

    async def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise ServiceUnavailable(f"storage folder not writable: {self.root}")


class S3Storage:
    def __init__(self, bucket: str, prefix: str, settings: Settings) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint or None,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
            aws_secret_access_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30),
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    async def _call(self, fn, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await asyncio.to_thread(fn, Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise NotFound(f"object not found: {kwargs.get('Key')}") from None
            raise ServiceUnavailable(f"object storage error: {exc}") from exc
        except BotoCoreError as exc:
            raise ServiceUnavailable(f"object storage unreachable: {exc}") from exc

    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        await self._call(self.client.put_object, Key=self._key(key), Body=data, ContentType=content_type, ACL="private")

    async def get(self, key: str) -> bytes:
        def read(**kwargs) -> bytes:  # the body is read inside the error handling: a connection cut mid-object
            return self.client.get_object(**kwargs)["Body"].read()  # is an outage (503), not a crash

        return await self._call(read, Key=self._key(key))

    async def exists(self, key: str) -> bool:
        try:
            await self._call(self.client.head_object, Key=self._key(key))
        except NotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        await self._call(self.client.delete_object, Key=self._key(key))  # S3 answers 204 for a missing key too

    async def check(self) -> None:
        try:
            await self._call(self.client.head_bucket)
        except NotFound:  # HEAD on a missing bucket answers 404: storage is unusable, not an object miss
            raise ServiceUnavailable(f"object storage bucket not found: {self.bucket}") from None


def storage_from_url(url: str, settings: Settings) -> Storage:
    parts = urlsplit(url)
    if parts.scheme == "s3":
        return S3Storage(parts.netloc, parts.path, settings)
    return LocalStorage(Path(parts.netloc + parts.path) if parts.netloc else Path(parts.path))


_storage: Storage | None = None


def get_storage() -> Storage:
    global _storage
    if _storage is None:
        settings = get_settings()
        _storage = storage_from_url(settings.resolved_storage_url, settings)
    return _storage
