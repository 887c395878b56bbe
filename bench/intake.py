"""Intake benchmark against a real `raiox serve` (uvicorn) process on 127.0.0.1.

1. Webhook rate: N concurrent keep-alive clients post real multipart Jotform webhooks (unique
   submissions, 3 upload URLs each) for D seconds against `raiox serve --no-worker`; reports accepted
   webhooks/s and p50/p90/p99/max latency. The client is a minimal raw-socket HTTP/1.1 loop so that it
   takes as little of the shared CPU as possible.
2. Time to review: against `raiox serve` (worker in-process, idle), a 3-image case (synthetic
   radiographs served by the fake Jotform upload host) is posted and GET /cases/{id} polled until
   `awaiting_review`; the first case (cold: model load) is reported apart from the warm ones.

Each phase runs on its own throw-away embedded PostgreSQL (pgserver) under a temporary RAIOX_DATA_DIR
(so the thousands of cases queued by phase 1 do not keep phase 2's worker busy). Bounded: stops by
itself. Usage:

    PYTHONPATH=src python bench/intake.py [--clients 32] [--duration 10] [--cases 5]
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from fakes.jotform import FORM_ID, FakeJotform, multipart_body, webhook_fields  # noqa: E402

SECRET = "bench-webhook-secret"
API_KEY = "bench-jotform-key"
BOUNDARY = "------------------------d74496d66958873e"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def raiox(env: dict, *args: str, check: bool = True) -> str:
    """Run a raiox command; its stdout."""
    result = subprocess.run([sys.executable, "-m", "raiox", *args], env=env, capture_output=True, text=True,
                            timeout=900)
    if check and result.returncode != 0:
        raise SystemExit(f"raiox {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its waited-for children), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def postgres_pids(data_dir: Path) -> list[int]:
    """The embedded postmaster under DATA_DIR and its backends."""
    procs = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            procs[int(entry.name)] = (cmdline, ppid)
    master = [pid for pid, (cmd, _) in procs.items() if str(data_dir) in cmd and "postgres" in cmd]
    return master + [pid for pid, (_, ppid) in procs.items() if ppid in master]


def stop_embedded_postgres(root: Path) -> None:
    """SIGTERM the embedded postmasters this bench started under ROOT (pgserver leaves them running)."""
    import signal

    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"-D" in cmdline and str(root).encode() in b" ".join(cmdline) and cmdline[0].endswith(b"postgres"):
                os.kill(int(entry.name), signal.SIGTERM)


def start_server(env: dict, port: int, worker: bool) -> subprocess.Popen:
    args = [sys.executable, "-m", "raiox", "serve", "--port", str(port), "--workers",
            str(env.get("BENCH_WORKERS", "1"))]
    args += [] if worker else ["--no-worker"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=open(env["BENCH_LOG"], "ab"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
        if proc.poll() is not None:
            raise SystemExit(f"raiox serve exited ({proc.returncode}); see {env['BENCH_LOG']}")
    proc.kill()
    raise SystemExit("raiox serve did not become healthy in 120 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def webhook_template(jotform: FakeJotform, files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """A webhook body for a stored submission, and its submission id (to substitute per request)."""
    content = jotform.add_submission(FORM_ID, files={"radiografias": files})
    fields = webhook_fields(content, webhook_url=f"https://api.example/webhooks/jotform?token={SECRET}")
    return multipart_body(fields, BOUNDARY), content["id"]


def http_request(port: int, body: bytes) -> bytes:
    if not body:  # calibration: the cheapest route of the same app (GET /healthz)
        return f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    head = (f"POST /webhooks/jotform?token={SECRET} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return int(status_line.split()[1])


async def client(port: int, template: bytes, sid: str, counter: list[int], deadline: float,
                 latencies: list[float], statuses: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            counter[0] += 1
            new_sid = str(counter[0])
            request = http_request(port, template.replace(sid.encode(), new_sid.encode()) if template else b"")
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status = await read_response(reader)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


SUBMISSIONS = [int(time.time() * 1000) % 10**12 * 10**6]  # unique submission ids across loads and runs


async def load(port: int, template: bytes, sid: str, clients: int, seconds: float) -> dict:
    counter, latencies, statuses = SUBMISSIONS, [], {}
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    await asyncio.gather(*[client(port, template, sid, counter, deadline, latencies, statuses)
                           for _ in range(clients)])
    elapsed = time.perf_counter() - started
    ms = [x * 1000 for x in latencies]
    return {"clients": clients, "seconds": round(elapsed, 2), "requests": len(ms), "statuses": statuses,
            "accepted_per_s": round(statuses.get(200, 0) / elapsed, 1),
            "p50_ms": round(percentile(ms, 50), 2), "p90_ms": round(percentile(ms, 90), 2),
            "p99_ms": round(percentile(ms, 99), 2), "max_ms": round(max(ms), 2)}


def time_to_review(port: int, token: str, jotform: FakeJotform, files, timeout: float = 120) -> float:
    body, _sid = webhook_template(jotform, files)
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        started = time.perf_counter()
        response = http.post(f"/webhooks/jotform?token={SECRET}", content=body, headers=headers)
        response.raise_for_status()
        case_id = response.json()["case_id"]
        while time.perf_counter() - started < timeout:
            got = http.get(f"/cases/{case_id}", headers={"Authorization": f"Bearer {token}"})
            if got.status_code != 200:
                raise SystemExit(f"GET /cases/{case_id}: {got.status_code} {got.text}")
            case = got.json()
            if case["status"] in ("awaiting_review", "failed"):
                elapsed = time.perf_counter() - started
                if case["status"] != "awaiting_review":
                    raise SystemExit(f"case failed: {case['failure_reason']}")
                return elapsed
            time.sleep(0.01)
    raise SystemExit("case not ready in time")


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="raiox-bench-intake-"))
    try:
        run(tmp)
    finally:
        stop_embedded_postgres(tmp)
        time.sleep(2)
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp: Path) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of sustained load")
    parser.add_argument("--cases", type=int, default=5, help="warm 3-image cases timed to awaiting_review")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--skip-cases", action="store_true", help="only measure the webhook rate")
    parser.add_argument("--catalog-systems", type=int, default=24, help="demo systems loaded for the search")
    parser.add_argument("--workers", type=int, default=1, help="`raiox serve --workers N` server processes")
    args = parser.parse_args()

    from raiox.synth import demo_catalog, render_scene, to_png

    jotform = FakeJotform(api_key=API_KEY).start()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), RAIOX_DATA_DIR=str(tmp / "webhooks"),
               RAIOX_LOG_FORMAT="json", RAIOX_WEBHOOK_SECRET=SECRET, RAIOX_JOTFORM_API_KEY=API_KEY,
               RAIOX_JOTFORM_API_URL=jotform.url, RAIOX_JOTFORM_UPLOAD_HOSTS=jotform.url,
               RAIOX_JOTFORM_FORM_ID=FORM_ID, OMP_NUM_THREADS="1", RAIOX_DATABASE_URL="",
               BENCH_LOG=str(tmp / "serve.log"), BENCH_WORKERS=str(args.workers))
    env_cases = dict(env, RAIOX_DATA_DIR=str(tmp / "cases"))
    systems = demo_catalog()
    print(f"setup in {tmp}: migrate, demo catalog ({args.catalog_systems} systems), token", file=sys.stderr)
    raiox(env, "db", "upgrade")
    if not args.skip_cases:
        raiox(env_cases, "db", "upgrade")
        raiox(env_cases, "catalog", "demo", "--limit", str(args.catalog_systems), "--refs", "1", "--restored", "0")
        token = raiox(env_cases, "tokens", "create", "bench").strip().splitlines()[-1].strip()
    files = [(f"radiografia {i + 1}; vista, {i}.png", to_png(render_scene([systems[i * 5].spec], seed=i).image))
             for i in range(3)]
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    template, sid = webhook_template(jotform, files)
    results: dict = {"host": {"cpus": os.cpu_count(), "loadavg_before": load_before}}
    server = start_server(env, args.port, worker=False)
    try:
        asyncio.run(load(args.port, template, sid, 8, 2.0))  # warm-up (connections, caches)
        before = cpu_seconds(server.pid)
        floor = asyncio.run(load(args.port, b"", sid, args.clients, min(args.duration, 5.0)))
        floor["serve_cpu_ms_per_request"] = round((cpu_seconds(server.pid) - before) * 1000 / floor["requests"], 2)
        results["healthz_calibration"] = floor
        pg = postgres_pids(tmp / "webhooks")
        before = cpu_seconds(server.pid), sum(cpu_seconds(p) for p in pg)
        results["webhooks"] = asyncio.run(load(args.port, template, sid, args.clients, args.duration))
        after = cpu_seconds(server.pid), sum(cpu_seconds(p) for p in pg)
        accepted = max(1, results["webhooks"]["statuses"].get(200, 0))
        results["webhooks"]["serve_cpu_ms_per_webhook"] = round((after[0] - before[0]) * 1000 / accepted, 2)
        results["webhooks"]["postgres_cpu_ms_per_webhook"] = round((after[1] - before[1]) * 1000 / accepted, 2)
        print(json.dumps(results["webhooks"]), file=sys.stderr)
    finally:
        stop_server(server)
    results["host"]["loadavg_after_load"] = Path("/proc/loadavg").read_text().split()[:3]
    if args.skip_cases:
        jotform.stop()
        print(json.dumps(results, indent=2))
        return
    server = start_server(env_cases, args.port, worker=True)
    try:
        cold = time_to_review(args.port, token, jotform, files)
        warm = [time_to_review(args.port, token, jotform, files) for _ in range(args.cases)]
    finally:
        stop_server(server)
        jotform.stop()
    results["case_3_images"] = {"cold_s": round(cold, 3), "warm_runs": len(warm),
                                "warm_median_s": round(statistics.median(warm), 3), "warm_max_s": round(max(warm), 3)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
