"""kit.storage.S3Storage against moto's standalone S3 server on 127.0.0.1 (a real HTTP endpoint)."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from moto.server import ThreadedMotoServer

from raiox.kit.errors import NotFound, ServiceUnavailable
from raiox.kit.settings import Settings
from raiox.kit.storage import S3Storage, content_key, storage_from_url

BUCKET = "raiox-test"


@pytest.fixture(scope="module")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                 aws_secret_access_key="test").create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def _settings(endpoint: str, region: str = "us-east-1") -> Settings:
    return Settings(s3_endpoint=endpoint, s3_region=region, s3_access_key="test", s3_secret_key="test",
                    storage_url=f"s3://{BUCKET}/cases", _env_file=None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_put_get_exists_check_round_trip(s3_endpoint):
    storage = storage_from_url(f"s3://{BUCKET}/cases", _settings(s3_endpoint))
    assert isinstance(storage, S3Storage)
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10
    key, digest = content_key(data)
    await storage.check()
    assert not await storage.exists(key)
    await storage.put(key, data, "image/png")
    assert await storage.exists(key)
    assert await storage.get(key) == data
    head = storage.client.head_object(Bucket=BUCKET, Key=f"cases/{key}")  # the prefix is applied
    assert head["ContentType"] == "image/png" and head["ContentLength"] == len(data)
    await storage.put(key, data, "image/png")  # content-addressed: writing again is harmless
    assert await storage.get(key) == data and digest in key
    await storage.delete(key)  # (data retention)
    assert not await storage.exists(key)
    await storage.delete(key)  # gone already: fine


async def test_missing_key_is_not_found(s3_endpoint):
    storage = storage_from_url(f"s3://{BUCKET}", _settings(s3_endpoint))
    with pytest.raises(NotFound):
        await storage.get("sha256/00/does-not-exist")
    assert await storage.exists("sha256/00/does-not-exist") is False


async def test_missing_bucket_fails_the_readiness_check(s3_endpoint):
    storage = storage_from_url("s3://no-such-bucket", _settings(s3_endpoint))
    with pytest.raises(ServiceUnavailable, match="no-such-bucket"):
        await storage.check()


async def test_server_down_is_service_unavailable():
    storage = storage_from_url(f"s3://{BUCKET}", _settings(f"http://127.0.0.1:{_free_port()}"))
    start = time.monotonic()
    for call in (storage.check(), storage.get("k"), storage.put("k", b"x"), storage.exists("k")):
        with pytest.raises(ServiceUnavailable):
            await call
    assert time.monotonic() - start < 60


class _CutMidObject(BaseHTTPRequestHandler):
    """An S3 endpoint whose connection drops in the middle of an object's body."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"\x89PNG" + b"x" * 100)
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True


async def test_a_connection_cut_in_the_middle_of_an_object_is_service_unavailable():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CutMidObject)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        storage = storage_from_url(f"s3://{BUCKET}", _settings(f"http://127.0.0.1:{server.server_address[1]}"))
        with pytest.raises(ServiceUnavailable, match="object storage unreachable"):
            await storage.get("sha256/ab/abc")
    finally:
        server.shutdown()
        server.server_close()


def test_spaces_endpoint_and_region():
    settings = _settings("https://nyc3.digitaloceanspaces.com", region="nyc3")
    storage = storage_from_url("s3://raiox-prod/images", settings)
    assert storage.client.meta.endpoint_url == "https://nyc3.digitaloceanspaces.com"
    assert storage.client.meta.region_name == "nyc3"
    assert (storage.bucket, storage.prefix) == ("raiox-prod", "images")
