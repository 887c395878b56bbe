"""Paired comparison of two evaluations on the same sets (`raiox vision eval --hits FILE`, `compare-hits`).

Two models evaluated on the same cached renders answer the same queries, so their difference is judged query by query:
the queries one gets right and the other wrong (the discordant pairs) decide, and the exact McNemar test says how
likely a split at least that uneven is when both are equally good. Means of a few sets hide this: a 0.2-point move
on 4,910 queries is a handful of queries either way.
"""

from __future__ import annotations

import json
from math import comb
from pathlib import Path

HITS_VERSION = 1


class HitsMismatch(ValueError):
    """The two files do not hold the same queries (other seeds, sets or evaluation options)."""


def hits_record(results: list[dict]) -> dict:
    """Per-query located top-1 / top-5 of the product's method (``evaluate``'s results, one per set)."""
    model = results[0]["embedder"]
    sets = []
    for res in results:
        hit1, hit5 = res["methods"][model]["hits"]
        sets.append({"seed": res["config"].seed, "labels": [int(y) for y in res["labels"]],
                     "top1": [bool(h) for h in hit1], "top5": [bool(h) for h in hit5]})
    return {"version": HITS_VERSION, "embedder": model, "sets": sets}


def write_hits(path: Path, results: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(hits_record(results)))


def read_hits(path: Path) -> dict:
    """A hits file (``write_hits``); anything else (unreadable, not UTF-8 or JSON, another shape) is a
    ``HitsMismatch`` saying so in a line."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise HitsMismatch(f"{path}: not a hits file ({exc.strerror or exc})") from None
    except ValueError as exc:  # not UTF-8 (UnicodeDecodeError) or not JSON (JSONDecodeError)
        raise HitsMismatch(f"{path}: not a hits file ({str(exc).splitlines()[0]})") from None
    if not isinstance(record, dict) or record.get("version") != HITS_VERSION or not record.get("sets"):
        raise HitsMismatch(f"{path}: not a hits file of version {HITS_VERSION} (`raiox vision eval --hits`)")
    if not isinstance(record.get("embedder"), str) or not isinstance(record["sets"], list) or not all(
            _valid_set(s) for s in record["sets"]):
        raise HitsMismatch(f"{path}: not a hits file (its sets lack a seed, or labels, top1 and top5 of one length)")
    return record


def _valid_set(entry) -> bool:
    """Whether ``entry`` is a set of ``hits_record``: an integer seed, and labels, top1 and top5 per query."""
    if not isinstance(entry, dict) or type(entry.get("seed")) is not int:
        return False
    labels, top1, top5 = (entry.get(key) for key in ("labels", "top1", "top5"))
    return (all(isinstance(v, list) for v in (labels, top1, top5)) and 0 < len(labels) == len(top1) == len(top5)
            and all(type(y) is int for y in labels) and all(type(h) is bool for h in (*top1, *top5)))


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value for ``b`` and ``c`` discordant pairs (binomial, p = 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired(a: dict, b: dict, key: str = "top1") -> dict:
    """Discordant counts per set and pooled: ``a_only`` right in ``a`` only, ``b_only`` in ``b`` only."""
    seeds_a, seeds_b = [s["seed"] for s in a["sets"]], [s["seed"] for s in b["sets"]]
    if seeds_a != seeds_b:
        raise HitsMismatch(f"different sets: seeds {seeds_a} vs {seeds_b}")
    rows = []
    for sa, sb in zip(a["sets"], b["sets"]):
        if sa["labels"] != sb["labels"]:
            raise HitsMismatch(f"seed {sa['seed']}: the two files hold different queries (evaluation options differ)")
        only_a = sum(x and not y for x, y in zip(sa[key], sb[key]))
        only_b = sum(y and not x for x, y in zip(sa[key], sb[key]))
        rows.append({"seed": sa["seed"], "n": len(sa[key]), "a": sum(sa[key]), "b": sum(sb[key]),
                     "a_only": only_a, "b_only": only_b})
    total = {k: sum(r[k] for r in rows) for k in ("n", "a", "b", "a_only", "b_only")}
    return {"rows": rows, "total": total, "p": mcnemar_p(total["a_only"], total["b_only"])}


def markdown(a: dict, b: dict) -> str:
    """Per-set and pooled table of located top-1 (and the pooled top-5) for ``a`` against ``b``."""
    top1, top5 = paired(a, b), paired(a, b, "top5")
    lines = [f"A `{a['embedder']}` vs B `{b['embedder']}`, located top-1, query by query:", "",
             "| Seed | fixtures | A | B | right in A only | right in B only |", "|---|---|---|---|---|---|"]
    for r in [*top1["rows"], {**top1["total"], "seed": "all"}]:
        lines.append(f"| {r['seed']} | {r['n']} | {r['a'] / r['n']:.1%} | {r['b'] / r['n']:.1%} | {r['a_only']} "
                     f"| {r['b_only']} |")
    t5 = top5["total"]
    lines += ["", f"Exact McNemar test, top-1: p = {top1['p']:.3g} ({top1['total']['a_only']} vs "
                  f"{top1['total']['b_only']} discordant queries); top-5 {t5['a'] / t5['n']:.1%} vs "
                  f"{t5['b'] / t5['n']:.1%}, p = {top5['p']:.3g}."]
    return "\n".join(lines)
