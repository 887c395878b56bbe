"""`raiox serve --workers N` starts several server processes on one port."""

import os
import socket
import subprocess
import sys
import time

import httpx
import psutil


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_with_two_worker_processes(database_url):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "raiox", "serve", "--port", str(port), "--workers", "2", "--no-worker"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise AssertionError("raiox serve --workers 2 never answered /healthz")
        servers = [p for p in psutil.Process(proc.pid).children(recursive=True) if "python" in p.name().lower()]
        assert len(servers) >= 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)
