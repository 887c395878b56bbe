"""`raiox serve`: several server processes on one port; the embedded PostgreSQL stops with it (and with `raiox
admin`)."""

import json
import os
import signal
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
        _wait_healthy(port)
        servers = [p for p in psutil.Process(proc.pid).children(recursive=True) if "python" in p.name().lower()]
        assert len(servers) >= 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _embedded_env(data_dir) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAIOX_")}
    return dict(env, PYTHONPATH=os.pathsep.join(sys.path), RAIOX_DATA_DIR=str(data_dir))


def _postmaster(pgdata) -> psutil.Process | None:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().split()[0])
    return psutil.Process(pid) if psutil.pid_exists(pid) else None


def test_sigterm_stops_the_embedded_postgres(tmp_path):
    """uvicorn ends a SIGTERM (systemd's stop, `kill`) by raising it again, which skipped pgserver's exit hook:
    the embedded PostgreSQL outlived `raiox serve`, and its stale handle kept every later process from stopping it."""
    port, pgdata, err = _free_port(), tmp_path / "pg", tmp_path / "stderr.log"
    with err.open("wb") as sink:  # with RAIOX_LOG_FORMAT=json, every line is JSON from the first one
        proc = subprocess.Popen([sys.executable, "-m", "raiox", "serve", "--port", str(port)],
                                env=_embedded_env(tmp_path) | {"RAIOX_LOG_FORMAT": "json"},
                                stdout=subprocess.DEVNULL, stderr=sink)
    try:
        _wait_healthy(port)
        postmaster = _postmaster(pgdata)
        assert postmaster is not None and postmaster.is_running()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        postmaster.wait(timeout=30)  # raises TimeoutExpired while the server still runs
        assert json.loads((pgdata / ".handle_pids.json").read_text()) == []
        events = [json.loads(line)["event"] for line in err.read_text().splitlines() if line.strip()]
        assert events[0] == "embedded_postgres_ready" and "raiox_started" in events
    finally:
        if proc.poll() is None:
            proc.kill()
        leftover = _postmaster(pgdata)
        if leftover is not None:
            leftover.kill()


def test_sigterm_on_raiox_admin_stops_the_embedded_postgres_and_every_log_line_is_json(tmp_path):
    """`raiox admin` alone on the embedded database (README): its app gave no handle back, so a SIGTERM left the
    PostgreSQL running; and it configured logging only after the database's start, whose line (and any
    `waiting_for_database`) came out in the console format under RAIOX_LOG_FORMAT=json."""
    port, pgdata, err = _free_port(), tmp_path / "pg", tmp_path / "stderr.log"
    with err.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "raiox", "admin", "--port", str(port)],
                                env=_embedded_env(tmp_path) | {"RAIOX_LOG_FORMAT": "json"},
                                stdout=subprocess.DEVNULL, stderr=sink)
    try:
        _wait_healthy(port)
        postmaster = _postmaster(pgdata)
        assert postmaster is not None and postmaster.is_running()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        postmaster.wait(timeout=30)  # raises TimeoutExpired while the server still runs
        assert json.loads((pgdata / ".handle_pids.json").read_text()) == []
        lines = [line for line in err.read_text().splitlines() if line.strip()]
        events = [json.loads(line)["event"] for line in lines if line.startswith("{")]
        assert len(events) == len(lines), lines
        assert events[0] == "embedded_postgres_ready" and "embedded_postgres_released" in events
    finally:
        if proc.poll() is None:
            proc.kill()
        leftover = _postmaster(pgdata)
        if leftover is not None:
            leftover.kill()


def test_a_killed_process_no_longer_pins_the_embedded_postgres(tmp_path):
    from raiox.kit import db

    pgdata = tmp_path / "pg"
    pgdata.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (pgdata / ".handle_pids.json").write_text(json.dumps([dead.pid, os.getpid()]))
    db._forget_dead_handles(pgdata)
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == [os.getpid()]


def _wait_healthy(port: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("raiox serve never answered /healthz")
