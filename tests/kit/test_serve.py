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
import pytest
import psutil

from fakes.embedded import copy_data_dir, embedded_env, postgres_processes


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


def _postmaster(pgdata) -> psutil.Process | None:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().split()[0])
    return psutil.Process(pid) if psutil.pid_exists(pid) else None


def test_sigterm_stops_the_embedded_postgres(tmp_path, migrated_data_dir):
    """uvicorn ends a SIGTERM (systemd's stop, `kill`) by raising it again, which skipped pgserver's exit hook:
    the embedded PostgreSQL outlived `raiox serve`, and its stale handle kept every later process from stopping it."""
    copy_data_dir(migrated_data_dir, tmp_path)  # (what a fresh data dir's initdb and migrations do: other tests)
    port, pgdata, err = _free_port(), tmp_path / "pg", tmp_path / "stderr.log"
    with err.open("wb") as sink:  # with RAIOX_LOG_FORMAT=json, every line is JSON from the first one
        proc = subprocess.Popen([sys.executable, "-m", "raiox", "serve", "--port", str(port)],
                                env=embedded_env(tmp_path) | {"RAIOX_LOG_FORMAT": "json"},
                                stdout=subprocess.DEVNULL, stderr=sink)
    try:
        _wait_healthy(port)
        postmaster = _postmaster(pgdata)
        assert postmaster is not None and postmaster.is_running()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0  # uvicorn raises the SIGTERM again once the app is down: that was 143
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


def test_sigterm_on_raiox_admin_stops_the_embedded_postgres_and_every_log_line_is_json(tmp_path, migrated_data_dir):
    """`raiox admin` alone on the embedded database (README): its app gave no handle back, so a SIGTERM left the
    PostgreSQL running; and it configured logging only after the database's start, whose line (and any
    `waiting_for_database`) came out in the console format under RAIOX_LOG_FORMAT=json."""
    copy_data_dir(migrated_data_dir, tmp_path)  # (what a fresh data dir's initdb and migrations do: other tests)
    port, pgdata, err = _free_port(), tmp_path / "pg", tmp_path / "stderr.log"
    with err.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "raiox", "admin", "--port", str(port)],
                                env=embedded_env(tmp_path) | {"RAIOX_LOG_FORMAT": "json"},
                                stdout=subprocess.DEVNULL, stderr=sink)
    try:
        _wait_healthy(port)
        postmaster = _postmaster(pgdata)
        assert postmaster is not None and postmaster.is_running()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0  # uvicorn raises the SIGTERM again once the app is down: that was 143
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
        time.sleep(0.05)
    raise AssertionError("raiox serve never answered /healthz")


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def _stop_while_starting(command: str, data_dir, sig: signal.Signals, ready) -> list[dict]:
    """Starts `raiox COMMAND` on the embedded database under DATA_DIR, sends SIG as soon as READY(port, stderr text,
    pid) holds, and checks it exits 0 leaving no PostgreSQL of its data dir running; its stderr lines (JSON)."""
    port, pgdata = _free_port(), (data_dir / "pg").resolve()
    err = data_dir / f"stderr-{command}-{sig.name}-{ready.__name__}.log"
    args = [command] if command == "worker" else [command, "--port", str(port)]
    with err.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "raiox", *args],  # (PYTHONFAULTHANDLER: `_stuck`'s stacks)
                                env=embedded_env(data_dir) | {"RAIOX_LOG_FORMAT": "json", "PYTHONFAULTHANDLER": "1"},
                                stdout=subprocess.DEVNULL, stderr=sink)
    try:
        deadline = time.monotonic() + 120
        while not ready(port, err.read_text(), proc.pid):
            assert proc.poll() is None, err.read_text()
            if time.monotonic() > deadline:
                raise AssertionError(_stuck(proc, err, f"never {ready.__name__} in 120 s"))
            time.sleep(0.02)
        proc.send_signal(sig)
        try:
            assert proc.wait(timeout=60) == 0, err.read_text()
        except subprocess.TimeoutExpired:
            raise AssertionError(_stuck(proc, err, f"still running 60 s after its {sig.name}")) from None
        psutil.wait_procs(postgres_processes(pgdata), timeout=10)
        assert postgres_processes(pgdata) == [], err.read_text()
        lines = [json.loads(line) for line in err.read_text().splitlines()]  # every line JSON, the first included
        assert all({"event", "level", "timestamp"} <= set(line) for line in lines), lines
        return lines
    finally:
        if proc.poll() is None:
            proc.kill()
        for leftover in postgres_processes(pgdata):
            leftover.kill()


def _stuck(proc: subprocess.Popen, err, what: str) -> str:
    """WHAT, and the stuck process's stderr ending with where each of its threads was: SIGABRT makes Python's
    faulthandler (PYTHONFAULTHANDLER=1) print every thread's stack, then the process dies."""
    holders = _pgserver_lock_holders()  # (before the abort: the stuck process may be one)
    proc.send_signal(signal.SIGABRT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    return f"{what} (pid {proc.pid}; pgserver's machine-wide lock held by {holders}): {err.read_text()}"


def _pgserver_lock_holders() -> list[str]:
    """The processes holding pgserver's lock (one file for every data dir of the machine, held while a server inits,
    starts or stops, and by each process's exit hook): a process waiting on it waits for all of them."""
    from pgserver.postgres_server import PostgresServer

    try:
        inode = os.stat(PostgresServer.lock_path).st_ino
        lines = open("/proc/locks").read().splitlines()
    except OSError as exc:
        return [f"unknown ({exc})"]
    held = [line.replace(" -> ", " ").split() for line in lines]  # ("->": a waiter's, blocked on a lock)
    pids = {int(fields[4]) for fields in held if len(fields) > 5 and fields[5].endswith(f":{inode}")}
    holders = []
    for pid in sorted(pids):
        try:
            holders.append(f"{pid} {' '.join(psutil.Process(pid).cmdline())[:200]}")
        except psutil.Error:
            holders.append(str(pid))
    return holders


def _stops_at_every_point(phases: list[list[tuple]]) -> list[list[dict]]:
    """Each phase of PHASES, a list of `_stop_while_starting` calls (COMMAND, DATA DIR, SIG, READY) made in turn, run
    beside the others: each start-up is its own process on its own data dir, none waits for another's (one after the
    other they left the second core idle: the suite runs in one process). The calls' stderr lines, in order."""
    from concurrent.futures import ThreadPoolExecutor

    def run(phase):
        return [_stop_while_starting(*call) for call in phase]

    with ThreadPoolExecutor(max_workers=len(phases)) as pool:
        futures = [pool.submit(run, phase) for phase in phases]
        return [lines for future in futures for lines in future.result()]


def test_sigterm_or_ctrl_c_while_starting_stops_the_embedded_postgres_and_exits_0(tmp_path, migrated_data_dir):
    """SIGTERM in the first seconds of `raiox serve` / `raiox admin` (a systemd stop, a restart) killed the process
    outright: the embedded PostgreSQL it had started ran on until the next raiox command. Each start-up phase now
    gives it back, for SIGTERM as for Ctrl+C, and the command exits 0 as a started server does."""
    fresh = tmp_path / "fresh"
    fresh.mkdir()

    def booting(_port, _text, _pid):  # initdb's or pg_ctl's postgres at work: cut there, initdb left a broken data dir
        return (fresh / "pg" / "postmaster.pid").exists()

    def migrating(_port, text, _pid):
        return "Running upgrade" in text

    def loading_models(port, _text, _pid):  # the port is bound before the models load, the database after them
        return _accepts(port)

    def database_ready(_port, text, _pid):
        return "embedded_postgres_ready" in text

    def app_starting(_port, text, _pid):
        return "Started server process" in text

    def migrated(name):  # the phases after the migrations: a copy of a migrated data dir (no initdb, no migration)
        return copy_data_dir(migrated_data_dir, tmp_path / name)

    lines = _stops_at_every_point([
        # a fresh data dir: initdb first; then the migrations on the data dir that start-up left
        [("serve", fresh, signal.SIGTERM, booting), ("serve", fresh, signal.SIGINT, migrating)],
        # (the models load in about 0.6 s: a loaded machine may signal later; ONNX Runtime made it exit 2 there)
        [("serve", migrated("models"), signal.SIGTERM, loading_models)],
        [("serve", migrated("ready"), signal.SIGTERM, database_ready)],
        [("serve", migrated("app"), signal.SIGINT, app_starting)],
        [("admin", migrated("admin-ready"), signal.SIGTERM, database_ready)],
        [("admin", migrated("admin-app"), signal.SIGINT, app_starting)],
    ])
    assert any(line["event"].startswith("Running upgrade") and line["level"] == "info" for line in lines[1])


def test_sigterm_or_ctrl_c_on_raiox_worker_at_any_point_stops_the_embedded_postgres_and_exits_0(tmp_path,
                                                                                                  migrated_data_dir):
    """`raiox worker` had no such care: a SIGTERM while it started (systemd's stop or restart) killed it outright,
    and the embedded PostgreSQL it had started ran on. A started worker's SIGTERM is procrastinate's graceful stop
    (tests/intake/test_intake_worker_kill.py: the jobs running finish), then the database's."""
    fresh = tmp_path / "fresh"
    fresh.mkdir()

    def booting(_port, _text, _pid):
        return (fresh / "pg" / "postmaster.pid").exists()

    def migrating(_port, text, _pid):
        return "Running upgrade" in text

    def loading_models(_port, _text, pid):  # the models load before the database starts
        return any("onnxruntime" in m.path for m in psutil.Process(pid).memory_maps())

    def database_ready(_port, text, _pid):
        return "embedded_postgres_ready" in text

    def tasks_registering(_port, text, _pid):  # our line just before procrastinate's App and tasks are built
        return "worker_starting" in text

    def started(_port, text, _pid):
        return "Starting worker on all queues" in text

    def migrated(name):
        return copy_data_dir(migrated_data_dir, tmp_path / name)

    lines = _stops_at_every_point([
        [("worker", fresh, signal.SIGTERM, booting), ("worker", fresh, signal.SIGINT, migrating)],  # initdb first
        [("worker", migrated("models"), signal.SIGTERM, loading_models)],
        [("worker", migrated("ready"), signal.SIGTERM, database_ready)],
        [("worker", migrated("tasks"), signal.SIGINT, tasks_registering)],
        [("worker", migrated("started"), signal.SIGTERM, started)],
    ])
    assert any(line["event"] == "stopped_while_starting" for line in lines[1]), lines[1]
    assert "embedded_postgres_released" in [line["event"] for line in lines[-1]], lines[-1]
    assert "Adding tasks from blueprint" not in [line["event"] for line in lines[-1]], lines[-1]  # DEBUG: not at INFO


def test_a_stop_signal_swallowed_by_a_finalizer_still_stops_the_start_up(capsys):
    """A Ctrl+C or SIGTERM whose KeyboardInterrupt Python raised inside a finalizer (SQLAlchemy's weakref callback
    while `raiox serve` imported the app, under load) was printed as "Exception ignored" and dropped: the start-up
    went on and uvicorn then served for ever (the SIGINT of the test above, not answered in 60 s). The stop now still
    ends the start-up, exit 0."""
    import weakref

    import typer

    from raiox.cli import stopping_cleanly

    class Collected:
        pass

    reached_the_server = False
    with pytest.raises(typer.Exit) as stopped:
        with stopping_cleanly():
            doomed = Collected()
            ref = weakref.ref(doomed, lambda _ref: signal.raise_signal(signal.SIGINT))  # the signal, in a finalizer
            del doomed
            assert ref() is None
            for _ in range(50):  # the rest of the start-up, then uvicorn's loop
                time.sleep(0.1)
            reached_the_server = True
    assert stopped.value.exit_code == 0 and not reached_the_server
    captured = capsys.readouterr()
    assert "stop_signal_swallowed" in captured.out + captured.err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_stop_signal_raised_in_a_c_extensions_callback_stops_the_start_up_and_its_log_stays_json(database_url,
                                                                                                      capsys):
    """A Ctrl+C while the migrations ran landed in psycopg's notice handler, a callback of its C extension, which
    printed the KeyboardInterrupt as a bare traceback (lines that are not JSON, in a RAIOX_LOG_FORMAT=json stream: the
    worker test of every start-up point failed 1 run in about 60 under load) and dropped it, as a finalizer does. It
    is now logged once, `stop_signal_swallowed`, and signalled again: the start-up stops, exit 0."""
    import psycopg
    import typer

    from raiox.cli import stopping_cleanly

    reached_the_worker = False
    with pytest.raises(typer.Exit) as stopped:
        with stopping_cleanly(), psycopg.connect(database_url) as conn:
            conn.add_notice_handler(lambda _diag: signal.raise_signal(signal.SIGINT))  # the signal, in the callback
            conn.execute("DO $$ BEGIN RAISE NOTICE 'extension \"vector\" already exists, skipping'; END $$")
            for _ in range(50):  # the rest of the start-up, then the worker
                time.sleep(0.1)
            reached_the_worker = True
    assert stopped.value.exit_code == 0 and not reached_the_worker
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err, captured.err
    assert (captured.out + captured.err).count("stop_signal_swallowed") == 1, captured.err
    assert "inside='<lambda> (" in captured.out + captured.err, captured.out  # where it landed (psycopg's own there)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler and sys.excepthook is sys.__excepthook__


def test_a_started_workers_stop_now_ends_it_even_inside_a_finalizer_and_when_its_clean_up_fails(tmp_path):
    """`stopping_now`'s handler raises nothing into the code it interrupts (it ends the process: nothing for a finalizer
    to swallow, unlike `stopping_cleanly`'s KeyboardInterrupt). But an error of its clean-up (the embedded PostgreSQL's
    stop) raised there, and inside a finalizer that error was dropped as "Exception ignored": the worker went on with
    both signals ignored, never to stop. It now exits 1 whatever the clean-up raised."""
    script = tmp_path / "worker.py"
    script.write_text(
        "import signal, time, weakref\n"
        "from raiox.kit import db\n"
        "from raiox.kit.logging import configure_logging\n"
        "configure_logging('json', 'INFO')\n"
        "def broken():\n"
        "    raise OSError('pg_ctl: no such file')\n"
        "db.stop_embedded = broken\n"
        "from raiox.cli import stopping_now\n"
        "class Collected:\n"
        "    pass\n"
        "with stopping_now():\n"
        "    doomed = Collected()\n"
        "    ref = weakref.ref(doomed, lambda _ref: signal.raise_signal(signal.SIGTERM))  # the second stop, there\n"
        "    del doomed\n"
        "    time.sleep(3)  # the jobs running\n"
        "    print('went on', flush=True)\n")
    done = subprocess.run([sys.executable, str(script)], env=embedded_env(tmp_path), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "went on" not in done.stdout, done.stdout + done.stderr
    events = [json.loads(line)["event"] for line in done.stderr.splitlines() if line.startswith("{")]
    assert events[-2:] == ["worker_stopped_now", "worker_stop_failed"], done.stderr



_WRITING_A_LINE = """
import contextlib, signal, sys, time, weakref
import typer
from raiox.kit.logging import configure_logging, get_logger
from raiox.cli import stopping_cleanly, stopping_now
configure_logging("json", "INFO")
real = sys.stderr

class Collected:
    pass

class Signalling:  # sys.stderr, signalling SIGTERM while structlog writes the first line
    fired = False
    def write(self, text):
        written = real.write(text)
        if not Signalling.fired:
            Signalling.fired = True
            if {in_a_finalizer}:
                doomed = Collected()
                ref = weakref.ref(doomed, lambda _ref: signal.raise_signal(signal.SIGTERM))
                del doomed
            else:
                signal.raise_signal(signal.SIGTERM)
        return written
    def flush(self):
        real.flush()

try:
    with stopping_cleanly(), {stopping}():
        sys.stderr = Signalling()
        get_logger("raiox.jobs").info("job_line")
        sys.stderr = real
        for _ in range(30):  # the start-up going on, or the jobs running
            time.sleep(0.1)
        print("went on", flush=True)
except typer.Exit as stopped:  # (`raiox worker` is a command: Typer makes it its exit status)
    sys.exit(stopped.exit_code)
"""


@pytest.mark.parametrize("stopping, in_a_finalizer, stop_event", [
    ("stopping_now", False, "worker_stopped_now"),  # a started worker's stop (its second: procrastinate has the first)
    ("contextlib.nullcontext", True, "stop_signal_swallowed"),  # starting: the KeyboardInterrupt a finalizer swallowed
])
def test_a_stop_signal_while_the_worker_writes_a_log_line_still_stops_it(tmp_path, stopping, in_a_finalizer,
                                                                         stop_event):
    """structlog's logger held a lock (not reentrant) while it wrote a line; `stopping_now`'s handler, or
    `_redelivering_swallowed`'s hook for a KeyboardInterrupt that a finalizer swallowed, interrupting the main thread
    there logged their own line and waited on that lock for ever, SIGINT and SIGTERM ignored by then: the worker never
    stopped. Each line is now written whole without a lock, and the stop goes on: exit 0."""
    script = tmp_path / "worker.py"
    script.write_text(_WRITING_A_LINE.format(stopping=stopping, in_a_finalizer=in_a_finalizer))
    done = subprocess.run([sys.executable, str(script)], env=embedded_env(tmp_path), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "went on" not in done.stdout, done.stdout + done.stderr
    events = [json.loads(line)["event"] for line in done.stderr.splitlines() if line.startswith("{")]
    assert events[0] == "job_line" and stop_event in events, done.stderr
