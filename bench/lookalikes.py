"""How far apart do the demo catalog's look-alike siblings look at the embedder's input?

    PYTHONPATH=src python bench/lookalikes.py [--threshold 0.1] [--write]

For every look-alike group and every ordered pair of its systems (a, b), b is rendered at a's size
(diameter, length; the apex scaled with the diameter) with the same seed as a clean catalog reference,
both are cut to the embedder's canonical crop (192x64, ``raiox.vision.canonical_crop`` at the
ground-truth box) and compared pixel by pixel. Same seed means the same bone, noise and thread phase:
the difference is the design alone. A pair whose crops differ nowhere by more than ``--threshold``
(0.1 of the metal's intensity range; a hard query adds noise of 0.004-0.015, blur of 0.8-1.8 px and up
to 15 degrees of angulation on top) counts as indistinguishable; groups of such pairs are ties.

The ceiling is the best top-1 any method working on one crop could reach on the evaluation's queries
if it were perfect everywhere else and broke ties by chance: a query of a system tied with k-1 others
is right with probability 1/k. Size cues (a sibling's line may lack the query's proportions) could break
some ties, so this is a ceiling without size cues. Every pair is compared twice: open (as catalog
references are) and with an abutment on the platform filling most of the connection's void (as half the
evaluation's queries carry an abutment or a crown); the section gives both ceilings and their mix. ``--write`` puts
the table in docs/benchmarks.md under "## Look-alike separability".
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from jsonschema import ValidationError  # noqa: E402
from scipy.sparse import coo_matrix  # noqa: E402
from scipy.sparse.csgraph import connected_components  # noqa: E402

from raiox.synth import demo_catalog, render_reference_scene  # noqa: E402
from raiox.synth.spec import validate_spec, with_size  # noqa: E402
from raiox.vision.canonical import canonical_crop  # noqa: E402


def crop(spec: dict, seed: int = 0, prosthesis: str = "none") -> np.ndarray:
    scene = render_reference_scene(spec, seed=seed, prosthesis=prosthesis)
    return canonical_crop(scene.image, scene.boxes[0])


def at_size_of(spec: dict, base: dict) -> dict | None:
    """``spec``'s design at ``base``'s diameter and length (``raiox.synth.spec.with_size``; None if the
    design cannot take that size)."""
    out = with_size(spec, base["diameter_mm"], base["length_mm"])
    try:
        validate_spec(out)
    except ValidationError:
        return None
    return out


def separability(systems: list, prosthesis: str = "none") -> dict:
    """(group, a, b) -> the largest pixel difference between a and b rendered at a's size (with
    ``prosthesis`` on both: an abutment fills most of the connection's void)."""
    groups = defaultdict(list)
    for s in systems:
        groups[s.group].append(s)
    pair_max = {}
    for name, members in sorted(groups.items()):
        for a in members:
            ca = crop(a.spec, prosthesis=prosthesis)
            for b in members:
                spec = at_size_of(b.spec, a.spec) if b is not a else None
                if spec is not None:
                    pair_max[(name, a.id, b.id)] = float(np.abs(crop(spec, prosthesis=prosthesis) - ca).max())
    return pair_max


def ceiling(systems: list, pair_max: dict, threshold: float) -> tuple[float, dict]:
    """Top-1 ceiling (ties broken by chance, every system queried equally often) and the tie sets."""
    sets = tie_sets({(a, b) for (_, a, b), diff in pair_max.items() if diff < threshold}, systems)
    return float(np.mean([1 / len(sets[s.id]) for s in systems])), sets


def tie_sets(pairs: set, systems: list) -> dict:
    """Each system's connected tie set (a tie either way ties the two)."""
    ids = [s.id for s in systems]
    index = {sid: k for k, sid in enumerate(ids)}
    rows, cols = zip(*((index[a], index[b]) for a, b in pairs)) if pairs else ((), ())
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(ids), len(ids)))
    _, label = connected_components(graph, directed=False)
    members = defaultdict(set)
    for sid, lab in zip(ids, label):
        members[lab].add(sid)
    return {sid: members[lab] for sid, lab in zip(ids, label)}


def render_variation(systems: list) -> float:
    """Median over systems of the mean |difference| between two references of one system (seeds 0, 1)."""
    return float(np.median([np.abs(crop(s.spec, 0) - crop(s.spec, 1)).mean() for s in systems]))


FILLED_SHARE = 0.5  # render_scene's queries: an abutment or a crown (connection 75-95 % filled) half the time


def markdown(systems: list, pair_max: dict, threshold: float, command: str, variation: float, filled: dict) -> str:
    """The section: per group, open-connection differences and ties, and ties with an abutment in place
    (``filled``: ``separability(systems, "abutment")``)."""
    by_group = defaultdict(list)
    for (group, _, _), diff in pair_max.items():
        by_group[group].append(diff)
    top1, sets = ceiling(systems, pair_max, threshold)
    top1_filled, sets_filled = ceiling(systems, filled, threshold)
    lines = [f"Command: `{command}`. Siblings rendered at each other's size with the same seed, compared"
             f" at the embedder's input (192x64 canonical crop); a pair whose largest pixel difference is under"
             f" {threshold} is a tie.", "",
             "| Group | pairs | largest difference: min / median / max | tied systems | tied with an abutment |",
             "|---|---|---|---|---|"]
    for group in sorted(by_group):
        d = np.array(by_group[group])
        members = [s for s in systems if s.group == group]
        tied = sum(len(sets[s.id]) > 1 for s in members)
        tied_filled = sum(len(sets_filled[s.id]) > 1 for s in members)
        lines.append(f"| {group} | {len(d)} | {d.min():.3f} / {np.median(d):.3f} / {d.max():.3f} | "
                     f"{tied} of {len(members)} | {tied_filled} of {len(members)} |")
    tied_all = sum(len(sets[s.id]) > 1 for s in systems)
    others = ", ".join(f"{t:g}: {ceiling(systems, pair_max, t)[0]:.1%}" for t in (threshold / 2, threshold * 1.5))
    others_filled = ", ".join(f"{t:g}: {ceiling(systems, filled, t)[0]:.1%}" for t in (threshold / 2, threshold * 1.5))
    mixed = (1 - FILLED_SHARE) * top1 + FILLED_SHARE * top1_filled
    lines += ["", f"{tied_all} of {len(systems)} systems are tied with a sibling. Top-1 ceiling without size cues"
              f" (every system equally often queried, ties broken by chance): **{top1:.1%}** (with a tie"
              f" threshold of {others}); top-5 is not limited (no tie set has more than five systems:"
              f" largest {max(len(v) for v in sets.values())}).",
              "", f"With an abutment on the platform (it fills 75-95 % of the connecting part and its screw most of the"
              f" internal thread, whose end below the screw's tip stays open, as the evaluation's abutments and crowns"
              f" do) {sum(len(sets_filled[s.id]) > 1 for s in systems)} systems are tied and the"
              f" ceiling is **{top1_filled:.1%}** ({others_filled}). Half the evaluation's queries carry an abutment or"
              f" a crown, so its ceiling is about **{mixed:.1%}**.",
              "", f"The evaluation's goal of top-1 >= 90 % is thus {'above' if mixed < 0.9 else 'within'} what one crop"
              " can give on these queries without size cues, with every fixture found and every untied system right."
              f" Two references of one system (other seed: bone, noise, thread phase) differ by {variation:.3f} on"
              " average per pixel, while the connection shows as a small dip in near-saturated metal."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threshold", type=float, default=0.1)
    ap.add_argument("--limit", type=int, default=None, help="only the first N demo systems")
    ap.add_argument("--write", action="store_true", help="write the section into docs/benchmarks.md")
    args = ap.parse_args(argv)
    systems = list(demo_catalog()[: args.limit])
    pair_max = separability(systems)
    command = "PYTHONPATH=src python bench/lookalikes.py " + " ".join(argv if argv is not None else sys.argv[1:])
    body = markdown(systems, pair_max, args.threshold, command.strip(), render_variation(systems),
                    separability(systems, "abutment"))
    print(body)
    if args.write:
        from raiox.vision.evaluate import write_section

        write_section(Path("docs/benchmarks.md"), body, heading="## Look-alike separability")


if __name__ == "__main__":
    main()
