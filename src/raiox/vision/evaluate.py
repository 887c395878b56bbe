"""`raiox vision eval`: retrieval and localisation on the demo catalog (held out from training).

Gallery: the references ``raiox catalog demo`` stores per demo system (``raiox.synth.reference_plan``:
bare fixtures at the line's sizes, and the first sizes under a restoration), located like catalog
references.
Queries: unseen renders under hard conditions, each through ``locate`` (a query whose fixture is
not found counts as a miss). Methods: the configured embedder and two baselines on the same crops
(raw pixels, HOG). Results are a dict and a Markdown section for docs/benchmarks.md.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from datetime import datetime, timezone

import numpy as np

from raiox.vision import connection, ends, features, threads
from raiox.vision.canonical import CROP_H, CROP_W, canonical_crop
from raiox.vision.conditions import hard_conditions
from raiox.vision.datagen import UnreadableData, load_npz, save_npz
from raiox.vision.detect import box_iou, locate, reverse_box
from raiox.vision.embedders import crop_size, fit_crop, get_embedder, l2_normalise
from raiox.vision.ranking import (ENDS_SURE, ORIENTATION_MARGIN, RERANK_POOL, checks_orientation, rank, system_scores,
                                  turn_over)

CONDITIONS = ("angulation", "noise", "blur", "occlusion", "combined")
RENDER_ITEM = 2  # version of render_item's draws (part of every cache fingerprint)


@dataclass
class EvalConfig:
    gallery_per_system: int | None = None  # as `raiox catalog demo` (None: one per line size, at least 6)
    restored_sizes: int | None = None  # as `raiox catalog demo --restored` (None: its default)
    queries_per_system: int = 5  # single-implant queries, one per condition
    scenes: int = 40  # multi-implant scenes (2-3 fixtures)
    seed: int = 7000
    embedder: str | None = None
    limit_systems: int | None = None


def _crop_of(image: np.ndarray, box, size: tuple[int, int]) -> np.ndarray:
    return canonical_crop(image, box, size)


def match(found, truth, threshold: float = 0.5) -> list[tuple[int, int]]:
    """Greedy one-to-one matches (detection index, truth index) with IoU >= threshold."""
    pairs = sorted(((box_iou(d.box, t), i, j) for i, d in enumerate(found) for j, t in enumerate(truth)), reverse=True)
    used_d, used_t, out = set(), set(), []
    for iou, i, j in pairs:
        if iou >= threshold and i not in used_d and j not in used_t:
            used_d.add(i), used_t.add(j), out.append((i, j))
    return out


def platform_ok(det_box: np.ndarray, truth: np.ndarray) -> bool:
    top = det_box[:2].mean(0)
    return np.hypot(*(top - truth[:2].mean(0))) < np.hypot(*(top - truth[2:].mean(0)))


def eval_items(cfg: EvalConfig, systems: list) -> list[tuple[str, list[int], str]]:
    """(key, system indices, condition) of every render, system by system, multi scenes last."""
    from raiox.synth import reference_plan

    rng = np.random.default_rng(cfg.seed)
    items = []
    for si in range(len(systems)):
        refs = reference_plan(systems[si], cfg.gallery_per_system, cfg.restored_sizes)
        items += [(f"g{si:03d}-{ref.tag}", [si], "reference") for ref in refs]
        items += [(f"q{si:03d}-{q}", [si], CONDITIONS[(si + q) % len(CONDITIONS)])
                  for q in range(cfg.queries_per_system)]
    for k in range(cfg.scenes):
        size = min(int(rng.integers(2, 4)), len(systems))  # 2 systems (--limit 2): scenes of both
        members = [int(i) for i in rng.choice(len(systems), size=size, replace=False)]
        items.append((f"m{k:03d}", members, "multi"))
    return items


def _gallery_ref(key: str):
    """The demo reference a gallery key names: "g012-3" (bare, size 3) or "g012-1-crown" (restored)."""
    from raiox.synth.catalog import Reference

    return Reference.from_tag(key.split("-", 1)[1])


def render_item(key: str, members: list[int], cond: str, systems: list, cfg: EvalConfig):
    """Image (float32), ground-truth boxes and system index per box of one evaluation render."""
    from raiox.synth import render_reference_scene, render_scene

    if cond == "reference":
        ref = _gallery_ref(key)
        rng = np.random.default_rng([cfg.seed, *map(ord, key)])
        sc = render_reference_scene(line_size(systems[members[0]], ref.size, rng) if ref.size
                                    else systems[members[0]].spec,
                                    seed=cfg.seed + ref.seed, prosthesis=ref.prosthesis)
    else:
        specs, rng = query_draws(key, members, systems, cfg)
        sc = render_scene(specs, seed=int(rng.integers(2**31)),
                          conditions=hard_conditions("combined" if cond == "multi" else cond, rng))
    return sc.image, [np.asarray(b) for b in sc.boxes], [members[i] for i in sc.indices]


def query_draws(key: str, members: list[int], systems: list, cfg: EvalConfig) -> tuple[list[dict], np.random.Generator]:
    """The specs (each member system at a random size of its line) a query render ``key`` draws first, and the
    generator its scene and conditions are then drawn from."""
    rng = np.random.default_rng([cfg.seed, *map(ord, key)])
    return [line_size(systems[i], None, rng) for i in members], rng


@lru_cache(maxsize=4)
def renderer_digest(*modules: str) -> str:
    """Digest of the code a render comes out of: the ``raiox.synth`` package (renderer, catalog, line
    sizes), the evaluation's condition draws (``raiox.vision.conditions``) and any further ``modules`` a
    caller draws from (the localiser's scenes: ``raiox.vision.specdraw``). Any edit there makes every
    cached render stale, since the same seed then draws another scene; training-only draws
    (``raiox.vision.synthbridge``) are left out, so editing them re-renders nothing."""
    import importlib

    import raiox.synth

    synth = Path(raiox.synth.__file__).parent
    files = sorted(synth.glob("*.py")) + [synth / "spec.schema.json"]
    files += [Path(importlib.import_module(m).__file__) for m in ("raiox.vision.conditions", *modules)]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode() + f.read_bytes())
    return digest.hexdigest()[:16]


def fingerprint(key: str, members: list[int], cond: str, systems: list, cfg: EvalConfig) -> str:
    """What a cached render was made from (the spec at the reference's size, or the member systems'
    specs and line sizes, the condition, the seed and the renderer's code, ``renderer_digest``): a
    render cached from anything else is stale. Edit ``render_item`` -> bump ``RENDER_ITEM``."""
    if cond == "reference":
        what = [line_size(systems[members[0]], _gallery_ref(key).size, np.random.default_rng(0))]
    else:
        what = [[systems[i].spec, systems[i].attributes.get("diameters"), systems[i].attributes.get("lengths")]
                for i in members]
    blob = json.dumps([key, cond, cfg.seed, what, renderer_digest(), RENDER_ITEM], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_or_render(item, systems, cfg: EvalConfig, cache: Path | None, render: bool = True):
    key, members, cond = item
    path = cache / f"{key}.npz" if cache else None
    fp = fingerprint(key, members, cond, systems, cfg)
    try:  # a damaged render is rendered again, like a stale one
        d = load_npz(path) if path is not None and path.exists() else None
    except UnreadableData:
        d = None
    if d is not None:
        if "fingerprint" in d and str(d["fingerprint"]) == fp:
            return d["image"].astype(np.float32) / 65535, list(d["boxes"]), list(d["labels"])
    if not render:
        return None
    image, boxes, labels = render_item(key, members, cond, systems, cfg)
    if path is not None:
        cache.mkdir(parents=True, exist_ok=True)
        save_npz(path, image=(image * 65535).round().astype(np.uint16), boxes=np.stack(boxes),
                 labels=np.array(labels), fingerprint=np.array(fp))
    return image, boxes, labels


class NoRenders(LookupError):
    """Nothing to evaluate: a cache-only run found no system whose renders are all cached and current."""


@dataclass
class Sets:
    """The evaluation's crops: gallery references (located like catalog references) and queries
    (located; None where the fixture was not found), the same renders cropped at the ground-truth
    boxes (``oracle_*``), and the localisation counts (tp, fp, fn, platform_ok)."""

    systems: list
    gallery: list
    g_lab: np.ndarray
    restored: int  # gallery references with a restoration on the fixture
    queries: list
    q_lab: np.ndarray
    q_cond: list
    oracle_g: list
    oracle_q: list
    loc: dict
    q_conn: list | None = None  # per query: the connection reader's probabilities (None: not located / no reader)
    oracle_conn: list | None = None  # the same at the ground-truth boxes
    q_reverse: list | None = None  # per query: the crop of its located box turned end for end (None: not located,
    # or its ends sure: ``ranking.checks_orientation``)
    # per query: whether the localiser called its platform end right (None: not located)
    q_platform_ok: list | None = None
    q_turns: list | None = None  # per query: its thread count (``threads.read``; None: not located, or too short)
    oracle_turns: list | None = None  # the same at the ground-truth boxes
    q_lengths: list | None = None  # per query: the length (mm) its fixture was rendered at


def build_sets(cfg: EvalConfig, cache: Path | None = None, render: bool = True,
               size: tuple[int, int] = (CROP_H, CROP_W)) -> Sets:
    """The evaluation's sets; crops are cut at ``size`` (the embedder's ``crop_size``)."""
    from raiox.synth import demo_catalog

    systems = demo_catalog()[: cfg.limit_systems]
    items = eval_items(cfg, systems)
    loaded = {it[0]: load_or_render(it, systems, cfg, cache, render) for it in items}
    # only systems whose renders all exist (a partial cache evaluates complete systems)
    complete = {si for si in range(len(systems))
                if all(loaded.get(k) is not None for k, m, _ in items if m == [si] and not k.startswith("m"))}
    if not complete:
        raise NoRenders(f"no demo system has all its renders in {cache} (missing, or stale: cached from other "
                        "renderer code, catalog or seed; see renderer_digest): render them (drop --cached-only)")
    gallery, g_lab, queries, q_lab, q_cond = [], [], [], [], []
    oracle_g, oracle_q = [], []  # the same renders cropped at the ground-truth boxes
    loc = {"tp": 0, "fp": 0, "fn": 0, "platform_ok": 0}
    restored = 0
    seen: set[str] = set()  # digests of the gallery images so far
    q_conn, oracle_conn, q_reverse, q_platform_ok, q_turns, oracle_turns, q_lengths = [], [], [], [], [], [], []
    for key, members, cond in items:
        data = loaded[key]
        if data is None or not set(members) <= complete:
            continue
        image, boxes, labels = data
        if cond == "reference" and _seen_before(image, seen):
            continue  # `raiox catalog demo` skips it too: one image cannot be a reference of two systems
        found = locate(image)
        if cond == "reference":
            h, w = image.shape
            box = found[0].box if found else np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
            gallery.append(_crop_of(image, box, size))
            oracle_g.append(_crop_of(image, boxes[0], size))
            g_lab.append(labels[0])
            restored += _gallery_ref(key).prosthesis != "none"
            continue
        pairs = match(found, boxes)
        loc["tp"] += len(pairs)
        loc["fp"] += len(found) - len(pairs)
        loc["fn"] += len(boxes) - len(pairs)
        hit = {j: i for i, j in pairs}
        drawn = query_draws(key, members, systems, cfg)[0]
        for j, label in enumerate(labels):
            q_lengths.append(float(drawn[members.index(label)]["length_mm"]))
            if j in hit:
                det = found[hit[j]]
                q_platform_ok.append(bool(platform_ok(det.box, boxes[j])))
                loc["platform_ok"] += q_platform_ok[-1]
                queries.append(_crop_of(image, det.box, size))
                q_reverse.append(_crop_of(image, reverse_box(det.box), size) if checks_orientation(det) else None)
                q_conn.extend(connection.read(image, [det.box]))
                q_turns.append(threads.read(image, det.box))
            else:
                queries.append(None)  # not localised: a retrieval miss for every method
                q_reverse.append(None)
                q_conn.append(None)
                q_platform_ok.append(None)
                q_turns.append(None)
            oracle_q.append(_crop_of(image, boxes[j], size))
            oracle_conn.extend(connection.read(image, [boxes[j]]))
            oracle_turns.append(threads.read(image, boxes[j]))
            q_lab.append(label)
            q_cond.append(cond)
    return Sets(systems, gallery, np.array(g_lab), restored, queries, np.array(q_lab), q_cond, oracle_g, oracle_q, loc,
                q_conn, oracle_conn, q_reverse, q_platform_ok, q_turns, oracle_turns, q_lengths)


def _seen_before(image: np.ndarray, seen: set[str]) -> bool:
    """Whether the same pixels are already in the gallery. Siblings that differ only inside the
    connection can render identically under a crown or abutment (same seed): the catalog import keeps the first
    (``raiox.catalog.service``, by content digest), and so does the evaluation."""
    digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
    if digest in seen:
        return True
    seen.add(digest)
    return False


def line_size(system, index: int | None, rng: np.random.Generator) -> dict:
    """The system's spec at one of its line's sizes (``raiox.synth.line_size``)."""
    from raiox.synth import line_size as synth_line_size

    return synth_line_size(system, index, rng)


def pixel_features(crops) -> np.ndarray:
    small = np.stack([fit_crop(c, 48, 16).ravel() for c in crops])
    return l2_normalise(small - small.mean(1, keepdims=True))


def hog_features(crops) -> np.ndarray:
    from skimage.feature import hog

    feats = [hog(c, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2)) for c in crops]
    return l2_normalise(np.stack(feats))


def scores(order, q_lab, valid, q_cond, groups) -> dict:
    hit1 = np.array([v and o[0] == y for o, y, v in zip(order, q_lab, valid)])
    hit5 = np.array([v and y in o[:5] for o, y, v in zip(order, q_lab, valid)])
    # the first answer is the system or a sibling of its look-alike group (they differ in one feature only)
    group1 = np.array([v and groups[o[0]] == groups[y] for o, y, v in zip(order, q_lab, valid)])
    out = {"top1": hit1.mean(), "top5": hit5.mean(), "group_top1": group1.mean(), "n": len(q_lab),
           "by_condition": {}, "by_group": {}, "hits": (hit1, hit5)}
    for key, labels in (("by_condition", q_cond), ("by_group", [groups[y] for y in q_lab])):
        buckets = defaultdict(list)
        for i, lab in enumerate(labels):
            buckets[lab].append(i)
        out[key] = {k: (hit1[v].mean(), hit5[v].mean(), len(v)) for k, v in sorted(buckets.items())}
    return out


def reader_problems(embedder_spec: str | None) -> list[str]:
    """Why a configured connection or feature reader would read nothing for this embedder, or a configured ends
    model never run (``connection.problem``, ``features.problem``, ``ends.problem``)."""
    model_id = get_embedder(embedder_spec).model_id
    return [why for why in (connection.problem(), features.problem(model_id), ends.problem()) if why]


def evaluate(cfg: EvalConfig, cache: Path | None = None, render: bool = True, brief: bool = False) -> dict:
    """The evaluation's figures (``brief``: the embedder's rows only, no pixel / HOG baselines and no speed: another
    evaluation set's line, ``seeds_table``)."""
    embedder = get_embedder(cfg.embedder)
    t0 = time.time()
    sets = build_sets(cfg, cache, render, crop_size(embedder))
    systems, gallery, g_lab, queries, q_lab, q_cond = (sets.systems, sets.gallery, sets.g_lab, sets.queries, sets.q_lab,
                                                       sets.q_cond)
    systems_used = len(set(g_lab.tolist()))
    valid = [q is not None for q in queries]
    q_crops = [q if q is not None else np.zeros_like(gallery[0]) for q in queries]
    groups = [s.group for s in systems]
    methods = {embedder.model_id: embedder.embed}
    if not brief:
        methods.update({"raw pixels": pixel_features, "HOG": hog_features})
    classes, specs = [connection.spec_class(s.spec) for s in systems], [s.spec for s in systems]
    lines = [threads.line_of(s.spec, s.attributes) for s in systems]
    counted = threads.enabled()  # the product counts threads (RAIOX_THREAD_COUNT)
    reader = any(p is not None for p in sets.oracle_conn or [])  # the product re-ranks with the connection reader
    results, orientation, feature_reads, feature_accuracy = {}, None, False, {}
    for name, fn in methods.items():
        g_vecs, q_vecs = fn(gallery), fn(q_crops)
        q_conn = sets.q_conn
        if name == embedder.model_id:  # the product's orientation check (`raiox.catalog.search.search_fixture`)
            turned, reverse_vecs = turned_over(sets, g_vecs, q_vecs, fn, len(systems))
            q_vecs = orient(q_vecs, reverse_vecs, turned)
            q_conn = [None if t else c for c, t in zip(sets.q_conn, turned)]  # as `analyze`: not read reversed
            orientation = orientation_counts(turned, sets.q_platform_ok, sets.q_reverse)
        if name == embedder.model_id:
            q_feats = [None if t else f for f, t in zip(features.read(q_vecs, name), turned)]  # as `analyze`
            feature_reads = any(f is not None for f in q_feats)
            feature_accuracy = read_accuracy([f if v else None for f, v in zip(q_feats, valid)],
                                             [specs[y] for y in q_lab])
        if name == embedder.model_id and (reader or feature_reads or counted):
            q_turns = [None if t or not counted else c for c, t in zip(sets.q_turns, turned)]  # as `analyze`
            order = rank(g_vecs, g_lab, q_vecs, len(systems), connection=q_conn if reader else None, classes=classes,
                         features=q_feats, specs=specs, turns=q_turns, lines=lines)
            results[name] = scores(order, q_lab, valid, q_cond, groups)
            if counted and (reader or feature_reads):
                order = rank(g_vecs, g_lab, q_vecs, len(systems), connection=q_conn if reader else None,
                             classes=classes, features=q_feats, specs=specs)
                results[f"{name}, without the thread count"] = scores(order, q_lab, valid, q_cond, groups)
            if reader and feature_reads:
                order = rank(g_vecs, g_lab, q_vecs, len(systems), connection=q_conn, classes=classes)
                results[f"{name}, connection re-rank only (no feature re-rank)"] = scores(
                    order, q_lab, valid, q_cond, groups)
            name = f"{name}, embedding alone (no re-rank)"
        results[name] = scores(rank(g_vecs, g_lab, q_vecs, len(systems)), q_lab, valid, q_cond, groups)
    oracle_q = embedder.embed(sets.oracle_q)
    order = rank(embedder.embed(sets.oracle_g), g_lab, oracle_q, len(systems),
                 connection=sets.oracle_conn if reader else None, classes=classes,
                 features=features.read(oracle_q, embedder.model_id), specs=specs,
                 turns=sets.oracle_turns if counted else None, lines=lines)
    results[f"{embedder.model_id}, ground-truth boxes"] = scores(order, q_lab, [True] * len(q_lab), q_cond, groups)
    return {
        "embedder": embedder.model_id, "systems": systems_used, "gallery": len(gallery), "restored": sets.restored,
        "queries": len(queries), "labels": q_lab, "connection_reader": reader, "feature_reader": feature_reads,
        "feature_accuracy": feature_accuracy, "thread_count": counted and count_accuracy(
            sets.q_turns, sets.q_lengths, [lines[y] for y in q_lab]),
        "localisation": loc_rates(sets.loc), "methods": results,
        "orientation": orientation, "speed": None if brief else speed(embedder),
        "seconds": round(time.time() - t0, 1), "config": cfg,
    }


def turned_over(sets: Sets, g_vecs: np.ndarray, q_vecs: np.ndarray, embed,
                n_systems: int) -> tuple[list[bool], np.ndarray]:
    """Per query: whether the catalog search would read it the other way up (``ranking.turn_over``); and the
    turned queries' reverse vectors, in order (for ``orient``)."""
    idx = [i for i, c in enumerate(sets.q_reverse) if c is not None]
    turned = [False] * len(sets.q_reverse)
    if not idx:
        return turned, np.zeros((0, np.shape(q_vecs)[1]), np.float32)
    best = system_scores(g_vecs, sets.g_lab, q_vecs[idx], n_systems).max(1)
    back_vecs = embed([sets.q_reverse[i] for i in idx])
    back = system_scores(g_vecs, sets.g_lab, back_vecs, n_systems).max(1)
    for i, b, r in zip(idx, best, back):
        turned[i] = turn_over(float(b), float(r))
    return turned, back_vecs[[k for k, i in enumerate(idx) if turned[i]]]


def orient(q_vecs: np.ndarray, reverse_vecs: np.ndarray, turned: list[bool]) -> np.ndarray:
    """The query vectors with the turned ones replaced by their reverse reading's (in order)."""
    out = np.array(q_vecs, copy=True)
    if len(reverse_vecs):
        out[np.flatnonzero(turned)] = reverse_vecs
    return out


def read_accuracy(reads: list, specs: list) -> dict[str, tuple[float, int]]:
    """Per feature: how often the feature reader's likeliest value is the one the query's spec names, and over how
    many located queries (those read, whose spec names a value of that feature)."""
    hits = defaultdict(list)
    for read, spec in zip(reads, specs):
        for name, logp in (read or {}).items():
            want = features.spec_value(spec, name)
            if want is not None:
                hits[name].append(int(np.argmax(logp)) == want)
    return {name: (float(np.mean(h)), len(h)) for name, h in hits.items()}


def count_accuracy(counts: list, lengths: list, lines: list) -> dict:
    """How close the thread counts of the located queries come to what their fixtures show, (length +
    ``threads.OFFSET_MM``) / pitch: the share within 5 % and 10 %, the median error, and over how many."""
    errors = np.array([abs(np.log(c.turns) - np.log((length + threads.OFFSET_MM) / line.pitch_mm))
                       for c, length, line in zip(counts, lengths, lines) if c is not None and line is not None])
    if not len(errors):
        return {"n": 0}
    return {"within_5": float(np.mean(errors < np.log(1.05))), "within_10": float(np.mean(errors < np.log(1.1))),
            "median": float(np.expm1(np.median(errors))), "n": len(errors)}


def orientation_counts(turned: list[bool], platform_ok: list, reverse: list | None = None) -> dict:
    """How the orientation check changed the localiser's platform-end calls on located queries (``reverse``: the
    queries' reverse crops, None where not checked)."""
    located = [bool(ok) for ok in platform_ok if ok is not None]
    checked = sum(c is not None for c in reverse) if reverse is not None else len(located)
    unchecked_wrong = sum(bool(ok is not None and not ok and c is None) for ok, c in zip(platform_ok, reverse or []))
    fixed = sum(bool(t and ok is not None and not ok) for t, ok in zip(turned, platform_ok))
    broken = sum(bool(t and ok is not None and ok) for t, ok in zip(turned, platform_ok))
    wrong = located.count(False)
    return {"checked": checked, "unchecked_wrong": unchecked_wrong, "turned": sum(turned), "fixed": fixed,
            "broken": broken, "wrong_before": wrong, "located": len(located),
            "platform_correct": (len(located) - wrong + fixed - broken) / max(len(located), 1)}


def loc_rates(loc: dict) -> dict:
    tp, fp, fn = loc["tp"], loc["fp"], loc["fn"]
    return {"recall": tp / max(tp + fn, 1), "precision": tp / max(tp + fp, 1),
            "platform_correct": loc["platform_ok"] / max(tp, 1), **loc}


def speed(embedder, repeats: int = 20) -> dict:
    """ms per crop embedding (batch of 1) and decode + locate + embed of a 1600x1200 periapical."""
    import cv2

    from raiox.synth import demo_catalog, render_scene, to_png
    from raiox.vision.pipeline import analyze

    cv2.setNumThreads(1)
    crop = np.random.default_rng(0).random(crop_size(embedder), dtype=np.float32)
    embedder.embed([crop])
    t = time.perf_counter()
    for _ in range(repeats):
        embedder.embed([crop])
    per_crop = (time.perf_counter() - t) / repeats * 1000
    specs = [s.spec for s in demo_catalog()[:2]]
    scene = render_scene(specs, seed=1, conditions={"size": (1200, 1600)})
    png = to_png(scene.image)
    try:
        from raiox.vision import read_image
    except ImportError:
        read_image = None
    times = []
    for _ in range(5):
        t = time.perf_counter()
        img = read_image(png, "scene.png") if read_image else scene.image
        analyze(img, embedder)
        times.append((time.perf_counter() - t) * 1000)
    return {"ms_per_crop": per_crop, "ms_periapical": float(np.median(times)), "image_shape": scene.image.shape,
            "decode": read_image is not None}


def markdown(res: dict, command: str) -> str:
    loc, sp = res["localisation"], res["speed"]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Command: `{command}` ({when}; {platform.machine()}, shared 2-core development machine).",
        f"Embedder `{res['embedder']}`; {res['systems']} demo systems (never seen in training), "
        f"gallery {res['gallery']} references ({res['gallery'] - res['restored']} bare, {res['restored']} with a "
        f"restoration), {res['queries']} query fixtures; {res['seconds']} s.",
        "Connection reader: " + (f"`{connection.model_path().name}` re-ranks each query's first {RERANK_POOL} systems "
                                 "by the connection their spec names (weight " + f"{connection.WEIGHT:g}), as the "
                                 "catalog search does."
                                 if res.get("connection_reader") else "off (no re-rank)."),
        "Feature reader: " + (f"`{features.model_path(res['embedder']).name}` adds the design features their spec "
                              "names, read from the "
                              f"query's embedding (weight {features.WEIGHT:g}), to the same re-rank, as the catalog "
                              "search does."
                              if res.get("feature_reader") else "off (it reads no vectors of this embedder)."),
        "Thread count: " + (f"the length over thread pitch counted on each query's silhouette (`raiox.vision.threads`) "
                            f"against the lengths of each system's line (weight {threads.WEIGHT:g}), in the same "
                            "re-rank, as the catalog search does." if res.get("thread_count")
                            else "off (RAIOX_THREAD_COUNT=false)."),
        "",
        "| Method | top-1 | top-5 |", "|---|---|---|",
    ]
    lines += [f"| {name} | {m['top1']:.1%} | {m['top5']:.1%} |" for name, m in res["methods"].items()]
    names = list(res["methods"])
    lines += ["", "First answer in the query's look-alike group (the system itself or a sibling that differs from it "
              "in one feature): "
              + ", ".join(f"{name} {res['methods'][name]['group_top1']:.1%}" for name in names) + "."]
    lines += ["", "Per condition (top-1 / top-5, n):", "",
              "| Condition | n | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    conds = res["methods"][names[0]]["by_condition"]
    for c in conds:
        cells = [f"{res['methods'][m]['by_condition'][c][0]:.1%} / {res['methods'][m]['by_condition'][c][1]:.1%}"
                 for m in names]
        lines.append(f"| {c} | {conds[c][2]} | " + " | ".join(cells) + " |")
    lines += ["", "Per look-alike group (top-1, n):", "", "| Group | n | " + " | ".join(names) + " |",
              "|---|---|" + "---|" * len(names)]
    groups = res["methods"][names[0]]["by_group"]
    for g in groups:
        cells = [f"{res['methods'][m]['by_group'][g][0]:.1%}" for m in names]
        lines.append(f"| {g} | {groups[g][2]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Localisation (IoU >= 0.5, oriented boxes): recall {loc['recall']:.1%}, precision {loc['precision']:.1%}, "
        f"platform end correct {loc['platform_correct']:.1%} (tp {loc['tp']}, fp {loc['fp']}, fn {loc['fn']})."
        + orientation_line(res.get("orientation")),
    ]
    if res.get("feature_accuracy"):
        lines.append("Feature reader on the located queries (its likeliest value is the spec's): " + ", ".join(
            f"{name} {acc:.1%}" for name, (acc, _) in res["feature_accuracy"].items())
            + f" (n {max(n for _, n in res['feature_accuracy'].values())}).")
    count = res.get("thread_count") or {}
    if count.get("n"):
        lines.append(f"Thread count on the located queries (against the fixture's (length + {threads.OFFSET_MM:g} mm) "
                     f"/ pitch): within 5 % {count['within_5']:.1%}, within 10 % {count['within_10']:.1%}, median "
                     f"error {count['median']:.1%} (n {count['n']}).")
    lines += [
        f"Speed, one CPU thread: {sp['ms_per_crop']:.1f} ms per crop embedding; "
        f"{'decode + ' if sp['decode'] else ''}locate + embed of a {sp['image_shape'][1]}x{sp['image_shape'][0]} "
        f"periapical {sp['ms_periapical']:.0f} ms (median of 5).",
    ]
    return "\n".join(lines)


def seeds_table(results: list[dict]) -> str:
    """One line per evaluation set (``results``: ``evaluate``'s, the first the section's own) and their mean: the
    figures that decide, since one set's top-1 moves by a point or two with the draw."""
    model = results[0]["embedder"]
    lines = ["", "Evaluation sets (located top-1 / top-5 of the line above, ground-truth boxes top-1, localisation "
             "recall; the others with `--seed S --cache CACHE-S`):", "",
             "| Seed | fixtures | top-1 | top-5 | ground-truth boxes top-1 | recall |", "|---|---|---|---|---|---|"]
    rows = []
    for res in results:
        m, gt = res["methods"][model], res["methods"][f"{model}, ground-truth boxes"]
        rows.append((m["top1"], m["top5"], gt["top1"], res["localisation"]["recall"]))
        lines.append(f"| {res['config'].seed} | {res['queries']} | {m['top1']:.1%} | {m['top5']:.1%} | "
                     f"{gt['top1']:.1%} | {res['localisation']['recall']:.1%} |")
    mean = np.mean(rows, axis=0)
    lines.append(f"| mean of {len(results)} | | {mean[0]:.1%} | {mean[1]:.1%} | {mean[2]:.1%} | {mean[3]:.1%} |")
    return "\n".join(lines + ["", pooled_line(results)])


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a rate of ``hits`` in ``n`` trials (95 % for the default ``z``)."""
    if n <= 0:
        raise ValueError("an interval needs at least one trial")
    p, z2 = hits / n, z * z
    centre, half = (p + z2 / (2 * n)) / (1 + z2 / n), z / (1 + z2 / n) * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def pooled_line(results: list[dict]) -> str:
    """Located top-1 / top-5 pooled over every set's fixtures, with their Wilson 95 % intervals: whether a goal is met
    or two models differ beyond the draw's noise (the sets' queries are independent renders)."""
    model = results[0]["embedder"]
    n = sum(res["methods"][model]["n"] for res in results)
    parts = []
    for k, label in enumerate(("top-1", "top-5")):
        hits = sum(int(np.sum(res["methods"][model]["hits"][k])) for res in results)
        low, high = wilson(hits, n)
        parts.append(f"{label} {hits / n:.1%} (95 % interval {low:.1%}-{high:.1%})")
    return f"Pooled over the {len(results)} sets' {n} fixtures, located " + ", ".join(parts) + "."


def orientation_line(o: dict | None) -> str:
    if not o:
        return ""
    checked = (f"{o['checked']} of {o['located']} checked (the localiser's maps less sure of the ends than "
               f"{ENDS_SURE:g}), ")
    missed = f", {o['unchecked_wrong']} of them not checked" if o.get("unchecked_wrong") else ""
    return (f" Orientation check (a located query read the other way up where that matches the catalog by more than "
            f"{ORIENTATION_MARGIN:g}): {checked}{o['turned']} turned, {o['fixed']} of the {o['wrong_before']} the "
            f"localiser called the wrong way round{missed}, {o['broken']} called right; platform end correct after it "
            f"{o['platform_correct']:.1%}.")


NOTES_BEGIN, NOTES_END = "<!-- vision-notes -->", "<!-- /vision-notes -->"


def write_section(doc_path, body: str, heading: str = "## Vision") -> None:
    """Replace the section under ``heading`` with ``body``; a hand-written block between
    ``NOTES_BEGIN`` and ``NOTES_END`` in the old section is kept (after the new figures)."""
    text = doc_path.read_text() if doc_path.exists() else "# Benchmarks\n"
    if heading in text:
        head, rest = text.split(heading, 1)
        nxt = rest.find("\n## ")
        section, tail = (rest[:nxt], rest[nxt:]) if nxt >= 0 else (rest, "\n")
        notes = _notes_block(section)
        text = f"{head}{heading}\n\n{body}\n" + (f"\n{notes}\n" if notes else "") + tail
    else:
        text = f"{text.rstrip()}\n\n{heading}\n\n{body}\n"
    doc_path.write_text(text)


def _notes_block(section: str) -> str:
    start, end = section.find(NOTES_BEGIN), section.find(NOTES_END)
    return section[start : end + len(NOTES_END)] if 0 <= start < end else ""
