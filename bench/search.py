#!/usr/bin/env python
"""Catalog search benchmark: pgvector HNSW vs exact scan vs FAISS on clustered 512-d embeddings.

    python bench/search.py --n 100000                  # ~10 min on 2 cores
    nohup python bench/search.py --n 1000000 > /tmp/bench-search-1m.log 2>&1 &

Data: `n` unit vectors in the real schema (implant_systems / reference_images / reference_embeddings,
built by the real migrations) of a separate embedded PostgreSQL (`--pgdata`, default /tmp/bench-pg).
Embeddings are clustered like real ones: systems in look-alike groups (group centre + system
offset), each reference a noisy view of its system (within-system cosine ~0.65, look-alike systems
~0.4, others ~0). Queries are fresh noisy views of random systems (not in the table). Ground truth
is exact top-10 by cosine (numpy). The index is the product's partial HNSW index
(`raiox.catalog.vector_index.create_index_sql`) on the benchmark's model id.

Resumable: rows are bulk-loaded with binary COPY in committed chunks (a re-run continues after the
last chunk), the index build time is kept in the state file, the ground truth and the FAISS index
are cached under /tmp; finished phases are skipped unless --redo PHASE.
"""

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from pathlib import Path

import numpy as np

MODEL = "bench-clustered"
DIM = 512
K = 10
REFS_PER_SYSTEM = 50
GROUP_SIZE = 8
SYSTEM_SPREAD = 0.8  # system offset from its look-alike group centre
VIEW_SPREAD = 0.75  # reference / query noise around the system centre


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="reference vectors")
    parser.add_argument("--pgdata", default="/tmp/bench-pg")
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=128)
    parser.add_argument("--ef-search", default="40,64,100,200,400")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--exact-queries", type=int, default=20, help="queries timed with the exact scan")
    parser.add_argument("--product-queries", type=int, default=200, help="queries through search_systems")
    parser.add_argument("--chunk", type=int, default=20_000)
    parser.add_argument("--shared-buffers", default="3GB")
    parser.add_argument("--maintenance-work-mem", default="6GB")
    parser.add_argument("--workers", type=int, default=1, help="max_parallel_maintenance_workers for the build")
    parser.add_argument("--no-faiss", action="store_true")
    parser.add_argument("--redo", action="append", default=[], help="phase to run again (pg, exact, faiss, product)")
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--out", default=None, help="results JSON (default bench/results/search-<n>.json)")
    return parser.parse_args()


# ---------------------------------------------------------------- data
def system_centres(args) -> np.ndarray:
    n_systems = max(1, args.n // REFS_PER_SYSTEM)
    rng = np.random.default_rng([args.seed, 0])
    groups = rng.standard_normal(((n_systems + GROUP_SIZE - 1) // GROUP_SIZE, DIM), dtype=np.float32)
    offsets = rng.standard_normal((n_systems, DIM), dtype=np.float32) * SYSTEM_SPREAD
    return groups[np.arange(n_systems) // GROUP_SIZE] + offsets


def views(centres: np.ndarray, systems: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    vectors = centres[systems] + rng.standard_normal((len(systems), DIM), dtype=np.float32) * VIEW_SPREAD
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def chunk(args, centres: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows [start, stop) — deterministic, so a resumed load and the ground truth see the same data."""
    start, stop = index * args.chunk, min(args.n, (index + 1) * args.chunk)
    ids = np.arange(start, stop)
    systems = ids % len(centres)
    return ids + 1, systems, views(centres, systems, np.random.default_rng([args.seed, 1, index]))


def queries(args, centres: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng([args.seed, 2])
    return views(centres, rng.integers(0, len(centres), args.queries), rng)


def n_chunks(args) -> int:
    return (args.n + args.chunk - 1) // args.chunk


def ground_truth(args, centres: np.ndarray, q: np.ndarray) -> np.ndarray:
    path = Path(f"/tmp/bench-search-{args.n}-{args.seed}-{args.queries}-gt.npy")
    if path.exists():
        return np.load(path)
    best_ids = np.zeros((len(q), 0), dtype=np.int64)
    best_sims = np.zeros((len(q), 0), dtype=np.float32)
    for i in range(n_chunks(args)):
        ids, _, vectors = chunk(args, centres, i)
        sims = np.concatenate([best_sims, q @ vectors.T], axis=1)
        all_ids = np.concatenate([best_ids, np.broadcast_to(ids, (len(q), len(ids)))], axis=1)
        top = np.argsort(-sims, axis=1)[:, :K]
        best_sims, best_ids = np.take_along_axis(sims, top, 1), np.take_along_axis(all_ids, top, 1)
    np.save(path, best_ids)
    return best_ids


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / K for f, t in zip(found, truth, strict=True)]))


def latency(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"p50_ms": round(1000 * statistics.median(ordered), 3),
            "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
            "mean_ms": round(1000 * statistics.fmean(ordered), 3)}


# ---------------------------------------------------------------- PostgreSQL
def start_postgres(args) -> str:
    import pgserver
    import psycopg

    Path(args.pgdata).mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(args.pgdata)
    wanted = {"shared_buffers": args.shared_buffers, "max_parallel_maintenance_workers": str(args.workers)}
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        current = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in wanted}
        for name, value in wanted.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    if current["shared_buffers"] != args.shared_buffers:
        server.cleanup()  # stop; the next handle starts it with the new shared_buffers
        server = pgserver.get_server(args.pgdata)
    name = f"bench_{args.n}"
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    url = server.get_uri(name)
    from sqlalchemy import create_engine

    from raiox.kit import migrate

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        migrate.upgrade(conn)
    engine.dispose()
    return url


def load(conn, args, centres: np.ndarray) -> None:
    from pgvector.psycopg import register_vector

    register_vector(conn)
    if not conn.execute("SELECT count(*) FROM implant_systems").fetchone()[0]:
        with conn.cursor().copy("COPY implant_systems (id, manufacturer, name, manufacturer_key, name_key, "
                                "attributes) FROM STDIN") as copy:
            for s in range(len(centres)):
                copy.write_row((f"bench-{s:06d}", "Bench", f"System {s:06d}", "bench", f"system {s:06d}", "{}"))
        conn.commit()
    done = conn.execute("SELECT count(*) FROM reference_embeddings WHERE model_id = %s", (MODEL,)).fetchone()[0]
    start = time.perf_counter()
    for i in range(n_chunks(args)):
        if min(args.n, (i + 1) * args.chunk) <= done:
            continue  # committed by an earlier run (chunks commit atomically)
        ids, systems, vectors = chunk(args, centres, i)
        with conn.cursor().copy("COPY reference_images (id, system_id, storage_key, sha256, source) "
                                "FROM STDIN") as copy:
            for row_id, s in zip(ids.tolist(), systems.tolist(), strict=True):
                copy.write_row((str(uuid.UUID(int=row_id)), f"bench-{s:06d}", f"bench/{row_id}", f"{row_id:064x}",
                                "bench"))
        sql = ("COPY reference_embeddings (id, reference_image_id, system_id, model_id, embedding) "
               "FROM STDIN (FORMAT BINARY)")
        with conn.cursor().copy(sql) as copy:
            copy.set_types(["int8", "uuid", "varchar", "varchar", "vector"])
            for row_id, s, vector in zip(ids.tolist(), systems.tolist(), vectors, strict=True):
                copy.write_row((row_id, uuid.UUID(int=row_id), f"bench-{s:06d}", MODEL, vector))
        conn.commit()
        print(f"  loaded chunk {i + 1}/{n_chunks(args)} ({time.perf_counter() - start:.0f} s)", flush=True)
    conn.execute("ANALYZE reference_embeddings")
    conn.commit()


def build_index(conn, args, state: dict) -> dict:
    from raiox.catalog.vector_index import create_index_sql, index_name

    key = f"m{args.m}_efc{args.ef_construction}"
    name = index_name(MODEL)
    definition = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (name,)).fetchone()
    params = f"m='{args.m}', ef_construction='{args.ef_construction}'"
    if definition and params not in definition[0]:
        conn.execute(f'DROP INDEX "{name}"')  # another parameter set: rebuild
        conn.commit()
        definition = None
    builds = state.setdefault("builds", {})
    if definition is None:  # an index with these parameters already there is reused, whatever the results file
        conn.execute(f"SET maintenance_work_mem = '{args.maintenance_work_mem}'")
        print(f"  building HNSW {key} ...", flush=True)
        start = time.perf_counter()
        conn.execute(create_index_sql(MODEL, m=args.m, ef_construction=args.ef_construction))
        conn.commit()
        builds[key] = {"build_s": round(time.perf_counter() - start, 1)}
    builds.setdefault(key, {})
    size = conn.execute("SELECT pg_relation_size(%s::regclass)", (f'"{name}"',)).fetchone()[0]
    table = conn.execute("SELECT pg_total_relation_size('reference_embeddings')").fetchone()[0]
    builds[key].update(index_mb=round(size / 2**20, 1), table_total_mb=round(table / 2**20, 1))
    conn.commit()
    return builds[key]


KNN = f"SELECT id FROM reference_embeddings WHERE model_id = '{MODEL}' ORDER BY embedding <=> %s LIMIT {K}"


def run_queries(conn, q: np.ndarray, prepare: bool = True) -> tuple[list[list[int]], list[float]]:
    found, times = [], []
    for vector in q:
        start = time.perf_counter()
        rows = conn.execute(KNN, (vector,), prepare=prepare).fetchall()
        times.append(time.perf_counter() - start)
        found.append([r[0] for r in rows])
    return found, times


def server_time(conn, q: np.ndarray) -> float:
    """Median execution time inside PostgreSQL (EXPLAIN ANALYZE): no client round trip, no wait
    for the backend to be scheduled — the fairer figure on a shared, loaded machine."""
    times = []
    for vector in q:
        plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + KNN, (vector,)).fetchone()[0]
        times.append(plan[0]["Execution Time"])
    return round(statistics.median(times), 3)


def measure_hnsw(conn, args, q: np.ndarray, truth: np.ndarray) -> list[dict]:
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + KNN, (q[0],)).fetchall())
    assert "hnsw" in plan, plan
    results = []
    for ef in [int(v) for v in args.ef_search.split(",")]:
        conn.execute(f"SET hnsw.ef_search = {ef}")
        run_queries(conn, q[: min(50, len(q))])  # warm-up
        found, times = run_queries(conn, q)
        results.append({"ef_search": ef, "recall@10": round(recall(found, truth), 4), **latency(times),
                        "server_p50_ms": server_time(conn, q[:100]), "loadavg_1m": round(os.getloadavg()[0], 1)})
        print(f"  pgvector hnsw ef_search={ef}: {results[-1]}", flush=True)
    return results


def measure_exact(conn, args, q: np.ndarray, truth: np.ndarray) -> dict:
    conn.execute("SET enable_indexscan = off")
    conn.execute("SET max_parallel_workers_per_gather = 0")
    count = min(args.exact_queries, len(q))
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + KNN, (q[0],)).fetchall())
    assert "hnsw" not in plan, plan
    found, times = run_queries(conn, q[:count], prepare=False)  # a prepared plan would keep the index
    server = server_time(conn, q[: min(3, count)])
    conn.execute("RESET enable_indexscan")
    result = {"queries": count, "recall@10": round(recall(found, truth[:count]), 4), **latency(times),
              "server_p50_ms": server, "loadavg_1m": round(os.getloadavg()[0], 1)}
    print(f"  pgvector exact scan: {result}", flush=True)
    return result


# ---------------------------------------------------------------- FAISS
def measure_faiss(args, centres: np.ndarray, q: np.ndarray, truth: np.ndarray) -> dict:
    import faiss

    faiss.omp_set_num_threads(2)
    path = Path(f"/tmp/bench-faiss-{args.n}-{args.seed}-m{args.m}-efc{args.ef_construction}.index")
    build_s = None
    if path.exists():
        index = faiss.read_index(str(path))
    else:
        index = faiss.IndexHNSWFlat(DIM, args.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = args.ef_construction
        start = time.perf_counter()
        for i in range(n_chunks(args)):
            index.add(chunk(args, centres, i)[2])
        build_s = round(time.perf_counter() - start, 1)
        faiss.write_index(index, str(path))
        path.with_suffix(".build").write_text(str(build_s))
    build_s = build_s or float(path.with_suffix(".build").read_text())
    faiss.omp_set_num_threads(1)  # one query at a time, like one API request
    results = []
    for ef in [int(v) for v in args.ef_search.split(",")]:
        index.hnsw.efSearch = ef
        found, times = [], []
        for vector in q:
            start = time.perf_counter()
            _, ids = index.search(vector[None], K)
            times.append(time.perf_counter() - start)
            found.append([int(i) + 1 for i in ids[0]])
        results.append({"ef_search": ef, "recall@10": round(recall(found, truth), 4), **latency(times)})
        print(f"  faiss hnsw efSearch={ef}: {results[-1]}", flush=True)
    del index
    flat = faiss.IndexFlatIP(DIM)
    for i in range(n_chunks(args)):
        flat.add(chunk(args, centres, i)[2])
    times = []
    for vector in q[: min(100, len(q))]:
        start = time.perf_counter()
        flat.search(vector[None], K)
        times.append(time.perf_counter() - start)
    exact = latency(times)
    print(f"  faiss flat (exact): {exact}", flush=True)
    return {"build_s": build_s, "hnsw": results, "flat": exact}


# ---------------------------------------------------------------- the product's search_systems
async def measure_product(url: str, args, q: np.ndarray) -> dict:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from raiox.catalog import search

    engine = create_async_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    times, hits, checked = [], [], min(args.exact_queries, len(q))
    pools, pool_of_best = [], search.best_reference_systems

    async def counted(*a, **kw):  # how many pools (HNSW rounds + re-scores) a query needed
        pools.append(1)
        return await pool_of_best(*a, **kw)

    search.best_reference_systems = counted
    async with AsyncSession(engine) as session:
        for vector in q[: min(20, len(q))]:
            await search.search_systems(session, vector, MODEL, 5)  # warm-up
        pools.clear()
        for vector in q[: args.product_queries]:
            start = time.perf_counter()
            await search.search_systems(session, vector, MODEL, 5)
            times.append(time.perf_counter() - start)
        pools_per_query = len(pools) / max(1, len(times))
        for vector in q[:checked]:
            approx = [c.system_id for c in await search.search_systems(session, vector, MODEL, 5)]
            exact = [c.system_id for c in await search.exact_search(session, vector, MODEL, 5)]
            hits.append(len(set(approx) & set(exact)) / 5)
    async with AsyncSession(engine) as session:
        first_fetch = next(search._fetch_sizes(5, await search._refs_per_system(session)))
    result = {"top_k": 5, "min_ef_search": search.MIN_EF_SEARCH, "first_fetch": first_fetch,
              "system_recall@5": round(float(np.mean(hits)), 4), "recall_queries": checked,
              "pools_per_query": round(pools_per_query, 2), **latency(times)}
    search.best_reference_systems = pool_of_best
    await engine.dispose()
    print(f"  search_systems: {result}", flush=True)
    return result


def main() -> None:
    args = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    import psycopg

    out = Path(args.out or f"bench/results/search-{args.n}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    state = json.loads(out.read_text()) if out.exists() else {}
    state.update(n=args.n, dim=DIM, systems=args.n // REFS_PER_SYSTEM, queries=args.queries, cpu_count=os.cpu_count())

    def save() -> None:
        out.write_text(json.dumps(state, indent=2) + "\n")

    def todo(phase: str, key: str | None = None) -> bool:
        return phase in args.redo or (key or phase) not in state

    centres = system_centres(args)
    q = queries(args, centres)
    print(f"[{args.n}] postgres at {args.pgdata}", flush=True)
    url = start_postgres(args)
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        load(conn, args, centres)
        state.setdefault("load_s", round(time.perf_counter() - start, 1))
        print(f"[{args.n}] ground truth", flush=True)
        truth = ground_truth(args, centres, q)
        key = f"m{args.m}_efc{args.ef_construction}"
        state["index"] = build_index(conn, args, state)
        save()
        from pgvector.psycopg import register_vector

        register_vector(conn)
        if todo("pg", f"hnsw_{key}"):
            state[f"hnsw_{key}"] = measure_hnsw(conn, args, q, truth)
            save()
        if todo("exact"):
            state["exact"] = measure_exact(conn, args, q, truth)
            save()
    if not args.no_faiss and todo("faiss", f"faiss_{key}"):
        state[f"faiss_{key}"] = measure_faiss(args, centres, q, truth)
        save()
    if todo("product", f"product_{key}"):
        state[f"product_{key}"] = asyncio.run(measure_product(url, args, q))
        save()
    print(json.dumps(state, indent=2), flush=True)


if __name__ == "__main__":
    main()
