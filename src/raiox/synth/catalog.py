"""The built-in demo catalogue: plainly synthetic implant systems in deliberate look-alike groups.

Each look-alike group starts from one base design and varies exactly one aspect (``ASPECTS``),
so systems inside a group differ only in their apex, or only in thread pitch, or only in the
cone angle, and so on. Sizes of a line (diameters, lengths) are attributes of one system; a line
has only the diameters whose body holds its connection (``_holds_connection``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .spec import validate_spec, with_size

MANUFACTURER = "Synthetica Demo Implants"

# aspect -> spec paths that may differ inside a group of that kind
ASPECTS: dict[str, tuple[str, ...]] = {
    "apex": ("apex",),
    "pitch": ("thread.pitch_mm",),
    "profile": ("thread.profile",),
    "cone_angle": ("connection.cone_angle_deg", "connection.platform_mm", "connection.screw_mm"),  # the cone
    "connection": ("connection",),
    "leads": ("thread.leads",),
    "collar": ("collar",),
    "taper": ("taper_start", "apex_diameter_mm"),
}
_KINDS = ["apex", "pitch", "profile", "cone_angle", "connection", "apex", "pitch", "leads", "collar", "taper",
          "profile", "cone_angle"]
_CONE_PLATFORM = {8: 2.8, 11: 2.1, 11.5: 2.5, 16: 3.0, 22: 3.8, 24: 2.95}
_N_GROUPS = 36


@dataclass
class DemoSystem:
    id: str
    manufacturer: str
    name: str
    spec: dict
    attributes: dict
    group: str


def _base(rng: np.random.Generator, kind: str) -> dict:
    d = float(rng.choice([3.3, 3.5, 3.75, 4.0, 4.1, 4.3, 4.5, 5.0, 5.5, 6.0] if kind != "cone_angle" else [4.3, 4.5, 5.0, 5.5, 6.0]))
    if rng.random() < 0.08 and kind != "cone_angle":
        d = 2.9
    length = float(rng.choice([6.0, 7.0, 8.0, 8.5, 10.0, 11.0, 11.5, 13.0, 15.0, 16.0, 18.0]))
    body = rng.choice(["parallel", "mild", "strong"], p=[0.3, 0.45, 0.25])
    ts, ad = {"parallel": (1.0, d), "mild": (float(rng.uniform(0.35, 0.65)), d * 0.82),
              "strong": (float(rng.uniform(0.1, 0.3)), d * 0.62)}[body]
    aggressive = body == "strong" and kind != "pitch" and rng.random() < 0.4
    pitch = float(rng.choice([1.5, 2.0, 2.4, 3.0])) if aggressive else float(rng.choice([0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2]))
    profile = str(rng.choice(["v", "square", "buttress", "reverse_buttress", "knife"], p=[0.35, 0.15, 0.2, 0.15, 0.15]))
    depth = round(min(d * 0.1 if profile != "knife" else d * 0.13, 0.25 + 0.2 * pitch), 2)
    leads = int(rng.choice([1, 2, 3], p=[0.55, 0.35, 0.1]))
    collar_kind = str(rng.choice(["none", "machined", "microthread", "tulip"], p=[0.45, 0.2, 0.25, 0.1]))
    collar = {"kind": collar_kind}
    if collar_kind != "none":
        collar["height_mm"] = round(float(rng.uniform(0.5, 1.8 if collar_kind != "tulip" else 2.5)), 1)
    if collar_kind == "microthread":
        collar["microthread_pitch_mm"] = float(rng.choice([0.2, 0.25, 0.3]))
    apex = {"shape": str(rng.choice(["flat", "dome", "cone"])), "hole": str(rng.choice(["none", "none", "round", "oblong"])),
            "flutes": int(rng.choice([0, 0, 2, 3, 4]))}
    ckind = "conical" if kind == "cone_angle" else str(rng.choice(["conical", "internal_hex", "external_hex", "tri_channel"], p=[0.5, 0.2, 0.15, 0.15]))
    conn = _connection(rng, ckind, d)
    return {"length_mm": length, "diameter_mm": d, "apex_diameter_mm": round(ad, 2), "taper_start": round(ts, 2),
            "collar": collar, "thread": {"profile": profile, "pitch_mm": pitch, "depth_mm": depth, "leads": leads,
                                         "progressive": bool(rng.random() < 0.2)},
            "apex": apex, "connection": conn}


def _cone(angle: float, d: float) -> dict:
    """A conical connection's angle with the platform and internal screw that angle comes with."""
    return {"cone_angle_deg": angle, "platform_mm": min(_CONE_PLATFORM[angle], round(d - 1.0, 2)),
            "screw_mm": 2.0 if angle == 22 else (1.8 if angle in (11.5, 8) else 1.6)}


def _connection(rng: np.random.Generator, kind: str, d: float, angle: float | None = None) -> dict:
    if kind == "conical":
        angle = angle if angle is not None else float(rng.choice([8, 11, 11.5, 11.5, 11.5, 16, 22, 24]))
        cone = _cone(angle, d)
        return {"kind": "conical", "cone_angle_deg": angle, "depth_mm": round(float(rng.uniform(2.0, 3.6)), 1),
                "platform_mm": cone["platform_mm"], "screw_mm": cone["screw_mm"]}
    if kind == "external_hex":
        return {"kind": "external_hex", "depth_mm": 0.7, "platform_mm": 2.7 if d >= 3.75 else 2.4, "screw_mm": 2.0 if d >= 3.75 else 1.8}
    plat = min(round(0.58 * d, 1), round(d - 1.2, 2))
    return {"kind": kind, "depth_mm": round(float(rng.uniform(1.2, 2.2)), 1), "platform_mm": plat,
            "screw_mm": 1.8 if d >= 3.5 else 1.6}


def _variants(rng: np.random.Generator, kind: str, base: dict) -> list[dict]:
    out = []

    def var(fn):
        s = copy.deepcopy(base)
        fn(s)
        out.append(s)

    if kind == "apex":
        opts = [{"shape": "dome", "hole": "none", "flutes": 0}, {"shape": "cone", "hole": "none", "flutes": 3},
                {"shape": "flat", "hole": "round", "flutes": 0}, {"shape": "dome", "hole": "oblong", "flutes": 2},
                {"shape": "flat", "hole": "none", "flutes": 4}, {"shape": "cone", "hole": "round", "flutes": 0}]
        for i in rng.permutation(len(opts))[:4]:
            var(lambda s, a=opts[i]: s.__setitem__("apex", dict(a)))
    elif kind == "pitch":
        p0 = base["thread"]["pitch_mm"]
        pitches = [0.6, 0.8, 1.0, 1.2] if p0 <= 1.2 else [1.5, 2.0, 2.5, 3.0]
        for p in pitches:
            var(lambda s, p=p: s["thread"].__setitem__("pitch_mm", p))
    elif kind == "profile":
        for p in ["v", "square", "buttress", "reverse_buttress", "knife"]:
            var(lambda s, p=p: s["thread"].__setitem__("profile", p))
    elif kind == "cone_angle":
        # 11 and 11.5 degree cones differ by ~0.02 mm of radius: no film resolves that, so a group
        # holds one of them. Each sibling carries the cone its angle comes with (platform and screw,
        # ``_cone``), as real lines do (Neodent CM 11.5 deg / 2.5 / 1.8 against GM 16 deg / 3.0 / 1.6 on
        # one body, see the geometry notes); the depth stays the base's.
        angles = [8, 16, 22, 24, float(rng.choice([11, 11.5, 11.5]))]
        for i in sorted(rng.permutation(5)[:4]):
            var(lambda s, a=angles[i]: s["connection"].update(_cone(float(a), s["diameter_mm"])))
    elif kind == "connection":
        for k in ["conical", "internal_hex", "external_hex", "tri_channel"]:
            var(lambda s, k=k: s.__setitem__("connection", _connection(rng, k, s["diameter_mm"])))
    elif kind == "leads":
        for n in (1, 2, 3):
            var(lambda s, n=n: s["thread"].__setitem__("leads", n))
    elif kind == "collar":
        for c in ({"kind": "none"}, {"kind": "machined", "height_mm": 1.2},
                  {"kind": "microthread", "height_mm": 1.5, "microthread_pitch_mm": 0.25}, {"kind": "tulip", "height_mm": 1.8}):
            var(lambda s, c=c: s.__setitem__("collar", dict(c)))
    elif kind == "taper":
        d = base["diameter_mm"]
        for ts, ad in ((1.0, d), (0.5, round(d * 0.82, 2)), (0.2, round(d * 0.62, 2))):
            var(lambda s, ts=ts, ad=ad: s.update(taper_start=ts, apex_diameter_mm=ad))
    return out


def _conn_label(c: dict) -> str:
    if c["kind"] == "conical":
        return f"CM {c['cone_angle_deg']:g}°"
    return {"external_hex": "external hex", "internal_hex": "internal hex", "tri_channel": "tri-channel"}[c["kind"]]


def _body_label(s: dict) -> str:
    if s["taper_start"] >= 0.99:
        return "Parallel"
    return "Tapered" if s["apex_diameter_mm"] / s["diameter_mm"] > 0.72 else "Strong-taper"


def describe(spec: dict) -> str:
    """A descriptive, plainly synthetic system name built from the spec."""
    th, ap, col = spec["thread"], spec["apex"], spec["collar"]
    prof = {"v": "V-thread", "square": "square-thread", "buttress": "buttress-thread",
            "reverse_buttress": "reverse-buttress-thread", "knife": "knife-thread"}[th["profile"]]
    leads = {1: "", 2: " double-lead", 3: " triple-lead", 4: " quad-lead"}[th.get("leads", 1)]
    prog = " progressive" if th.get("progressive") else ""
    apex = f"{ap['shape']} apex"
    if ap.get("hole", "none") != "none":
        apex += f" with {ap['hole']} hole"
    if ap.get("flutes"):
        apex += f", {ap['flutes']} flutes"
    collar = {"none": "", "machined": ", machined collar", "microthread": ", microthread collar", "tulip": ", tulip neck"}[col["kind"]]
    return f"{_body_label(spec)} {prof} {th['pitch_mm']:g} mm{leads}{prog}, {apex}, {_conn_label(spec['connection'])}{collar}"


def _sizes(rng: np.random.Generator, d: float, length: float) -> tuple[list[float], list[float]]:
    ds = sorted({float(round(min(max(d + k, 2.9), 6.0), 2)) for k in rng.choice([-0.7, -0.4, 0.0, 0.5, 1.0], size=3)} | {d})
    ls = sorted({float(x) for x in rng.choice([6, 7, 8, 8.5, 10, 11.5, 13, 15, 16, 18], size=4)} | {length})
    return ds, ls


CONNECTION_CUT_MM = 0.05  # how far the body may cut into a connection before the size cannot take it


def _holds_connection(spec: dict) -> bool:
    """Whether the body holds its connection with a wall around it. Where it does not, the renderer cuts the
    connection to the body's core (``geometry.build_tables``) and draws another system: a 22 degree cone with a
    3.5 mm platform in a 3.8 mm body renders as an ~12 degree one, beside its 8 degree sibling."""
    from .geometry import build_tables

    return build_tables(spec).void_cut <= CONNECTION_CUT_MM


def _fit_connection(spec: dict) -> dict:
    """The design with its connection's platform narrowed (0.05 mm steps) until its body holds it."""
    conn = spec["connection"]
    while conn["kind"] != "external_hex" and conn["platform_mm"] > 1.5 and not _holds_connection(spec):
        conn["platform_mm"] = round(conn["platform_mm"] - 0.05, 2)
    return spec


def _fit_group(kind: str, specs: list[dict]) -> list[dict]:
    """The group's designs with connections their bodies hold; siblings that share a connection (any group but a
    connection or cone-angle one) keep sharing it: the narrowest platform any of them needs."""
    specs = [_fit_connection(s) for s in specs]
    if "connection" not in ASPECTS[kind] and "connection.platform_mm" not in ASPECTS[kind]:
        narrowest = min(s["connection"]["platform_mm"] for s in specs)
        for s in specs:
            s["connection"]["platform_mm"] = narrowest
    return specs


@lru_cache(maxsize=1)
def _catalog() -> tuple[DemoSystem, ...]:
    rng = np.random.default_rng(20261128)
    systems: list[DemoSystem] = []
    for g in range(_N_GROUPS):
        kind = _KINDS[g % len(_KINDS)]
        group = f"G{g + 1:02d}-{kind}"
        base = _base(rng, kind)
        if kind == "pitch" and g % 2 == 1:  # an aggressive, strongly tapered line
            d = max(base["diameter_mm"], 4.0)
            base.update(diameter_mm=d, taper_start=0.2, apex_diameter_mm=round(d * 0.62, 2))
            base["thread"].update(pitch_mm=2.0, depth_mm=round(min(0.13 * d, 0.7), 2))
            base["connection"] = _connection(rng, base["connection"]["kind"], d)
        for j, spec in enumerate(_fit_group(kind, _variants(rng, kind, base))):
            validate_spec(spec)
            n = len(systems) + 1
            ds, ls = _sizes(rng, spec["diameter_mm"], spec["length_mm"])
            ds = [d for d in ds if _holds_connection(with_size(spec, d, spec["length_mm"]))]
            attrs = {"connection": _conn_label(spec["connection"]), "connection_kind": spec["connection"]["kind"],
                     "body_shape": _body_label(spec).lower(), "diameters": ds, "lengths": ls,
                     "thread_profile": spec["thread"]["profile"], "pitch_mm": spec["thread"]["pitch_mm"],
                     "leads": spec["thread"].get("leads", 1), "apex": spec["apex"]["shape"],
                     "collar": spec["collar"]["kind"], "platform_mm": spec["connection"].get("platform_mm"),
                     "look_alike_aspect": kind, "synthetic": True}
            name = f"Series {g + 1:02d}{chr(65 + j)} {describe(spec)}"
            systems.append(DemoSystem(f"demo-{n:03d}", MANUFACTURER, name, spec, attrs, group))
    return tuple(systems)


def line_size(system: DemoSystem, index: int | None, rng: np.random.Generator | None = None) -> dict:
    """The system's spec at one of its line's sizes: ``index`` 0 is the base spec, 1, 2, ... the line's
    other (diameter, length) pairs farthest-first (each the size least like those before it, so a
    few references span the line), None a random pair (drawn with ``rng``).

    Catalogue references are rendered at several sizes of the line, so a query of any size finds a
    reference of about its own proportions.
    """
    if index == 0:
        return copy.deepcopy(system.spec)
    if index is None:
        rng = rng if rng is not None else np.random.default_rng()
        ds = system.attributes.get("diameters") or [system.spec["diameter_mm"]]
        ls = system.attributes.get("lengths") or [system.spec["length_mm"]]
        return _valid_or_base(system, float(rng.choice(ds)), float(rng.choice(ls)))
    order = _size_order(system)
    return _valid_or_base(system, *order[(index - 1) % len(order)]) if order else copy.deepcopy(system.spec)


MIN_REFERENCES = 6  # a line with fewer sizes still gets this many references (more seeds per size)


def reference_count(system: DemoSystem) -> int:
    """How many catalogue references the demo stores for a system: one per (diameter, length) of its
    line (``line_size`` 0, 1, ...), at least ``MIN_REFERENCES``. A query of any catalogued size then
    has a reference of its own proportions (top-1 with ground-truth boxes 71.7 -> 74.8 % against a
    fixed 6 per system; docs/benchmarks.md)."""
    return max(MIN_REFERENCES, len(_size_order(system)) + 1)


RESTORATIONS = ("cover", "healing", "abutment", "crown")  # what a restored reference carries on its platform
RESTORED_SIZES = 2  # sizes of the line (0, 1: the base and the size least like it) with restored references
RESTORED_SEED = 100  # restored reference (size k, RESTORATIONS[r]) is rendered with seed RESTORED_SEED + 10 k + r


@dataclass(frozen=True)
class Reference:
    """One catalogue reference of a demo system: the line's ``size``-th size (``line_size``), what sits
    on its platform (``prosthesis``, as ``render_scene``'s condition) and the render seed."""

    size: int
    prosthesis: str
    seed: int

    @classmethod
    def of(cls, size: int, prosthesis: str = "none") -> Reference:
        seed = size if prosthesis == "none" else RESTORED_SEED + 10 * size + RESTORATIONS.index(prosthesis)
        return cls(size, prosthesis, seed)

    @property
    def tag(self) -> str:  # "3" for a bare reference, "1-crown" for a restored one
        return str(self.size) if self.prosthesis == "none" else f"{self.size}-{self.prosthesis}"

    @classmethod
    def from_tag(cls, tag: str) -> Reference:
        size, _, prosthesis = tag.partition("-")
        return cls.of(int(size), prosthesis or "none")


def reference_plan(system: DemoSystem, clean: int | None = None, restored_sizes: int | None = None) -> list[Reference]:
    """The references the demo catalogue stores for ``system``: ``clean`` bare fixtures (default
    ``reference_count``; reference k at size k, seed k), then each of ``RESTORATIONS`` at the first
    ``restored_sizes`` of those sizes (default ``RESTORED_SIZES``). Half of the queries come with a crown, abutment or healing cap,
    which the localiser boxes and the embedder sees differently from a bare fixture: restored
    references of the same system are closer to them (docs/benchmarks.md, session 8)."""
    n = clean or reference_count(system)
    restored = min(RESTORED_SIZES if restored_sizes is None else restored_sizes, n)
    return [Reference.of(k) for k in range(n)] + [Reference.of(k, kind) for k in range(restored) for kind in RESTORATIONS]


def _size_order(system: DemoSystem) -> list[tuple[float, float]]:
    """The line's (diameter, length) pairs other than the base, farthest-first from the base
    (1 mm of diameter counts like 3 mm of length); pairs the design cannot take are left out."""
    base = (system.spec["diameter_mm"], system.spec["length_mm"])
    pairs = [(float(d), float(l)) for d in system.attributes.get("diameters", []) for l in system.attributes.get("lengths", [])]
    left = [p for p in pairs if p != base and _fits(system, *p)]
    chosen, order = [base], []
    while left:
        best = max(left, key=lambda p: (min(math.hypot(p[0] - c[0], (p[1] - c[1]) / 3) for c in chosen), p))
        left.remove(best)
        chosen.append(best)
        order.append(best)
    return order


def _fits(system: DemoSystem, d: float, length: float) -> bool:
    try:
        validate_spec(with_size(system.spec, d, length))
    except Exception:  # a size the design cannot take (e.g. collar too tall for a short fixture)
        return False
    return True


def _valid_or_base(system: DemoSystem, d: float, length: float) -> dict:
    return with_size(system.spec, d, length) if _fits(system, d, length) else copy.deepcopy(system.spec)


def demo_catalog() -> list[DemoSystem]:
    """The demo catalogue (deterministic; >= 120 systems). Returns fresh copies."""
    return [copy.deepcopy(s) for s in _catalog()]
