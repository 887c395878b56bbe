"""Synthetic periapical radiographs: scenes of 1-3 implants with ground-truth oriented boxes.

Coordinates: a *scene* frame in millimetres (origin at the image centre, x along the arch, y down
toward the apices of a lower jaw) is mapped to the image by panoramic stretch (x only), scale
(pixels per mm, magnification included) and an in-plane rotation about the image centre. Boxes
are in image pixel coordinates with pixel centres at integers (the OpenCV convention).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from . import anatomy as an
from .compose import (_affine, _bone, _bone_loss, _Canvas, _connector, _inscribed, _keep_inside, _occlude,
                      _place_fixture, plat_r)
from .degrade import degrade
from .geometry import seated_fill, tables_for


PLATFORM_SWITCH_ENV = "RAIOX_SYNTH_PLATFORM_SWITCH"  # "1": every scene's ``platform_switch`` condition on (experiments)


@dataclass
class Scene:
    """A rendered radiograph and its ground truth."""

    image: np.ndarray  # (H, W) float32 in [0, 1], metal bright
    boxes: list[np.ndarray]  # per fixture (4, 2) float32 [x, y]: platform-left, platform-right, apex-right, apex-left
    indices: list[int]  # index into the ``specs`` argument for each box
    distractors: list[np.ndarray] = field(default_factory=list)  # (4, 2) boxes of non-fixture metal
    meta: dict = field(default_factory=dict)  # conditions actually drawn (angulation, rotation, ...)


def _draw(rng: np.random.Generator, cond: dict, key: str, default):
    """A condition value: the caller's (a number, or a (lo, hi) range) or the drawn default."""
    if key not in cond:
        return default() if callable(default) else default
    v = cond[key]
    if isinstance(v, (tuple, list)) and len(v) == 2 and key != "size":
        return float(rng.uniform(v[0], v[1]))
    return v


def _sample_conditions(rng: np.random.Generator, cond: dict) -> dict:
    c: dict = {}
    c["modality"] = cond.get("modality") or ("pano" if rng.random() < 0.12 else "pa")
    pano = c["modality"] == "pano"
    sizes = [(400, 600), (500, 700), (600, 800), (600, 500)] if pano else \
        [(1200, 1600), (1600, 1200), (1000, 1300), (1300, 1000), (900, 1200), (1200, 900)]
    size = cond.get("size") or sizes[int(rng.integers(len(sizes)))]
    c["size"] = (int(size[0]), int(size[1]))
    c["magnification"] = float(_draw(rng, cond, "magnification",
                                     lambda: float(rng.uniform(1.15, 1.3) if pano else rng.uniform(1.0, 1.1))))
    fov = float(rng.uniform(22, 34))  # mm across the short side of an intraoral sensor
    native = float(rng.uniform(7, 11)) if pano else min(c["size"]) / fov
    c["px_per_mm"] = float(_draw(rng, cond, "px_per_mm", lambda: native * c["magnification"]))
    amax = float(cond.get("angulation_max", 20.0))
    c["angulation_max"] = max(amax, float(np.max(cond.get("angulation", 0.0))))
    c["angulation"] = float(_draw(rng, cond, "angulation", lambda: amax * float(rng.beta(1.3, 2.6))))
    rmax = cond.get("rotation_max")
    if "rotation" in cond:
        rot = float(_draw(rng, cond, "rotation", 0.0))
    elif rmax is not None:
        rot = float(rng.uniform(-rmax, rmax))
    else:
        p = rng.random()
        rot = float(rng.normal(0, 7)) if p < 0.5 else float(180 + rng.normal(0, 7)) if p < 0.85 else float(rng.uniform(-180, 180))
    c["rotation"] = rot
    c["pano"] = float(_draw(rng, cond, "pano", lambda: float(rng.uniform(0.8, 1.25)) if pano or rng.random() < 0.1 else 1.0))
    c["noise"] = float(_draw(rng, cond, "noise", lambda: float(rng.uniform(0.004, 0.035))))
    c["blur"] = float(_draw(rng, cond, "blur", lambda: float(rng.uniform(0.8, 2.0) if pano else rng.uniform(0.3, 1.6))))
    c["gamma"] = float(_draw(rng, cond, "gamma", lambda: float(rng.uniform(0.6, 1.2))))
    c["contrast"] = float(_draw(rng, cond, "contrast", lambda: float(rng.uniform(0.8, 1.25))))
    c["jpeg"] = _draw(rng, cond, "jpeg", lambda: int(rng.integers(35, 95)) if rng.random() < 0.6 else None)
    c["occlusion"] = float(_draw(rng, cond, "occlusion", lambda: 0.0 if rng.random() < 0.85 else float(rng.uniform(0.05, 0.3))))
    c["text"] = bool(cond.get("text", rng.random() < 0.5))
    c["sharpen"] = float(_draw(rng, cond, "sharpen", lambda: float(rng.uniform(0.3, 1.2)) if rng.random() < 0.5 else 0.0))
    c["photo"] = bool(cond.get("photo", rng.random() < 0.08))
    c["motion"] = float(_draw(rng, cond, "motion", lambda: float(rng.uniform(1, 6)) if rng.random() < 0.05 else 0.0))
    c["resample"] = float(_draw(rng, cond, "resample", lambda: float(rng.uniform(0.3, 0.7)) if rng.random() < 0.15 else 1.0))
    c["marks"] = bool(cond.get("marks", rng.random() < (0.0 if pano else 0.6)))
    c["distractors"] = bool(cond.get("distractors", True))
    c["neighbours"] = bool(cond.get("neighbours", True))
    c["prosthesis"] = cond.get("prosthesis")
    c["invert"] = bool(cond.get("invert", False))
    c["centre"] = bool(cond.get("centre", False))
    c["samples"] = int(cond.get("samples", 12))  # ray-march samples per fixture pixel (quality vs speed)
    c["bone"] = float(_draw(rng, cond, "bone", lambda: float(rng.uniform(0.7, 1.3))))
    c["platform_switch"] = bool(cond.get("platform_switch", os.environ.get(PLATFORM_SWITCH_ENV) == "1"))
    return c


def render_scene(specs: list[dict], seed: int, conditions: dict | None = None) -> Scene:
    """Render a periapical-like radiograph of the given fixtures (1-3 of them) with ground truth.

    ``conditions`` (all optional; a number fixes a value, a (lo, hi) pair draws from that range):
    size (H, W); modality ("pa" intraoral sensor, or "pano" crop: coarser, blurrier, stretched);
    magnification (projection magnification); px_per_mm (image pixels per object mm, magnification
    included; overrides the drawn scale); angulation
    (vertical beam angulation, deg) or angulation_max (default 20, skewed low); rotation (deg) or
    rotation_max (default: upright, upside-down maxilla or any angle); pano (horizontal stretch);
    noise (std of the noise at mid grey); blur (detector blur sigma, px); gamma; contrast; jpeg
    (quality or None); occlusion (fraction of one fixture covered by a radiopaque object); text,
    marks, distractors (restorations on neighbouring teeth), neighbours (neighbouring teeth) (bool);
    sharpen (unsharp-mask amount of the sensor software); motion (blur length, px); resample
    (shrink factor of a messaging-app round trip; 1 = none); photo (bool: a phone photo of the screen,
    perspective included - boxes follow it and are then general quadrilaterals); prosthesis (force one of none|cover|healing|abutment|crown); invert
    (return metal-dark polarity, for testing normalisation); bone (bone density factor).
    Deterministic for a given (specs, seed, conditions).
    """
    if not specs:
        raise ValueError("render_scene needs at least one spec")
    rng = np.random.default_rng(seed)
    cond = _sample_conditions(rng, dict(conditions or {}))
    size, theta, sx = cond["size"], math.radians(cond["rotation"]), cond["pano"]
    ppm = cond["px_per_mm"]
    n = len(specs)
    tabs = [tables_for(s) for s in specs]
    need_len = max(t.length for t in tabs) + 2.5
    need_w = sum(2 * t.r_max for t in tabs) + (3.0 * n if not cond["centre"] else 0.6)
    while True:  # zoom out until the fixtures fit
        aw, ah = _inscribed(size, ppm, sx, theta)
        if ah >= need_len + 1.5 and aw >= need_w:
            break
        ppm *= 0.9
    cond["px_per_mm"] = ppm
    to_img = _affine(theta, sx, ppm, size)
    canvas = _Canvas(size, to_img)
    jaw = "maxilla" if abs(((cond["rotation"] + 180) % 360) - 180) > 90 else "mandible"
    top, bottom = -ah / 2, ah / 2
    spacing = float(np.clip(aw / max(n, 1), max(2 * t.r_max for t in tabs) + 2.0, 9.5))
    if conditions and conditions.get("centre"):
        crest, start = -need_len / 2 + 1.0, -spacing * (n - 1) / 2
    else:
        crest = float(rng.uniform(top + 2.0, max(bottom - need_len, top + 2.0)))
        start = -spacing * (n - 1) / 2 + float(rng.uniform(-1, 1)) * max(0.0, (aw - spacing * n) / 2)
    _bone(canvas, rng, crest, jaw, cond["bone"], ppm)
    boxes, distractors, fixture_meta, crowns = [], [], [], []
    xs_used = []
    for i, spec in enumerate(specs):
        cx = start + i * spacing + float(rng.uniform(-0.6, 0.6))
        cy = crest + float(rng.uniform(-0.6, 1.2))
        tilt = float(np.clip(rng.normal(0, 0.06), -0.2, 0.2)) * (0 if cond.get("centre") else 1)
        ang = float(np.clip(cond["angulation"] + rng.normal(0, 1.0), 0, cond["angulation_max"]))
        cx, cy = _keep_inside(canvas, tables_for(spec), cx, cy, tilt, ang)
        kind = cond["prosthesis"] or str(rng.choice(["none", "cover", "healing", "abutment", "crown"], p=[0.15, 0.15, 0.2, 0.15, 0.35]))
        fill = {"none": 0.0, "cover": 0.3, "healing": 0.3}.get(kind, float(rng.uniform(0.75, 0.95)))
        seat = _seating(spec, kind, fill, cx, cy)
        box, fm = _place_fixture(canvas, spec, cx, cy, tilt, ang, rng, ppm, seat, cond["samples"])
        boxes.append(box)
        xs_used.append(cx)
        if not cond["centre"] and rng.random() < 0.4:
            _bone_loss(canvas, cx, cy, tilt, float(plat_r(spec)), float(rng.uniform(0.3, 2.5)), cond["bone"])
        plat = plat_r(spec)
        roi = canvas.region(cx, cy, tilt, -spacing / 2 - 0.5, spacing / 2 + 0.5, -17.0, 0.5)
        if roi is not None and kind != "none":
            X, Y = canvas.coords(roi)
            ti, crown = an.prosthesis(X, Y, cx, cy, tilt, rng, kind=kind, platform_r=float(plat),
                                      crown_w=spacing * 0.95, foreshorten=math.cos(math.radians(ang)),
                                      neck_r=_neck_r(spec, kind) if cond["platform_switch"] else None)
            canvas.ti[roi] += ti
            canvas.metal[roi] += crown
        if kind == "crown":
            crowns.append((i, cx, cy, tilt))
        fixture_meta.append({"angulation": ang, "tilt_deg": math.degrees(tilt), "prosthesis": kind})
    for (i, x0, y0, t0), (j, x1, y1, t1) in zip(crowns, crowns[1:]):
        if j == i + 1 and rng.random() < 0.5:  # splinted crowns / bridge connector
            _connector(canvas, (x0, y0), (x1, y1), (t0 + t1) / 2, rng)
    # neighbouring teeth in the free slots on both sides
    k = 1
    for side in (-1, 1):
        edge = (min(xs_used) if side < 0 else max(xs_used))
        x = edge + side * spacing * float(rng.uniform(0.95, 1.15))
        while abs(x) < aw / 2 + 8:
            if rng.random() < 0.8 and cond["neighbours"]:
                width = float(rng.uniform(5.5, 7.5))
                rl = float(rng.uniform(11, 16))
                ty, ttilt, ch = crest + float(rng.uniform(-1.5, -0.5)), float(rng.normal(0, 0.08)), float(rng.uniform(6.5, 8.5))
                roi = canvas.region(x, ty, ttilt, -width, width, -ch - 0.5, rl + 1.0)
                if roi is not None:
                    restoration = None
                    if cond["distractors"]:
                        restoration = rng.choice([None, "filling", "crown"], p=[0.5, 0.3, 0.2])
                    dens, metal = an.tooth(*canvas.coords(roi), x, ty, ttilt, rng, root_len=rl, width=width,
                                           crown_h=ch, roots=int(rng.integers(1, 3)),
                                           canal_fill=bool(cond["distractors"] and rng.random() < 0.2), restoration=restoration,
                                           post=bool(cond["distractors"] and rng.random() < 0.08))
                    canvas.tissue[roi] += dens
                    canvas.metal[roi] += metal
                    if metal.max() > 0.05:
                        ys, xs_ = np.nonzero(metal > 0.05)
                        distractors.append(np.array([[xs_.min() + roi[1].start, ys.min() + roi[0].start],
                                                     [xs_.max() + roi[1].start, ys.min() + roi[0].start],
                                                     [xs_.max() + roi[1].start, ys.max() + roi[0].start],
                                                     [xs_.min() + roi[1].start, ys.max() + roi[0].start]], np.float32))
            x += side * float(rng.uniform(7.0, 9.0))
            k += 1
    if cond["occlusion"] > 0 and boxes:
        distractors.append(_occlude(canvas, boxes[int(rng.integers(len(boxes)))], cond["occlusion"], rng))
    dens = canvas.tissue + canvas.bone + canvas.metal + an.MU_TI * canvas.ti
    image, hom = degrade(dens, rng, cond, ppm)
    if hom is not None:  # a photographed screen: boxes follow the perspective
        warp = lambda b: cv2.perspectiveTransform(b.reshape(1, 4, 2).astype(np.float32), hom)[0]  # noqa: E731
        boxes = [warp(b) for b in boxes]
        distractors = [warp(b) for b in distractors]
    meta = dict(cond, jaw=jaw, fixtures=fixture_meta)
    return Scene(image, boxes, list(range(n)), distractors, meta)


def _neck_r(spec: dict, kind: str) -> float | None:
    """Where a restoration seated in a conical connection leaves the fixture (platform switching, Morse-taper
    lines; docs/implant-geometry.md 4b): the connection's prosthetic platform radius, mm; None elsewhere."""
    conn = spec.get("connection") or {}
    if kind in ("healing", "abutment", "crown") and conn.get("kind") == "conical" and conn.get("platform_mm"):
        return float(conn["platform_mm"]) / 2
    return None


def _seating(spec: dict, kind: str, fill: float, cx: float, cy: float) -> np.ndarray | None:
    """What fills the connection under a restoration (None: nothing, an open connection): the abutment
    (``fill`` of the connecting part, as drawn) or a cover screw's / healing cap's shank (0.3 of it), a
    screw in the internal thread, and the empty end of the thread below the screw's tip. Its own draws
    come from a generator seeded by the fixture's position (and, only to mix the seed, the kind's name
    length), so the scene's other draws stay as they were."""
    if kind == "none":
        return None
    sub = np.random.default_rng([int(abs(cx) * 1e6) & 0xFFFFFFFF, int(abs(cy) * 1e6) & 0xFFFFFFFF, len(kind)])
    screw = float(sub.uniform(0.7, 0.9) if kind in ("abutment", "crown") else sub.uniform(0.55, 0.8))
    return seated_fill(spec, fill, screw, float(sub.uniform(0.5, 1.2)))


def render_reference(spec: dict, seed: int = 0, size: tuple[int, int] = (640, 384), prosthesis: str = "none") -> np.ndarray:
    """A clean catalogue image: one upright fixture (platform up) in bone, no angulation, little noise.

    Fixed scale (25 px/mm) so sizes stay comparable across systems; the fixture sits centred.
    ``prosthesis``: what sits on its platform (none, or a restoration as in ``render_scene``).
    """
    sc = render_reference_scene(spec, seed, size, prosthesis)
    return sc.image


def render_reference_scene(spec: dict, seed: int = 0, size: tuple[int, int] = (640, 384),
                           prosthesis: str = "none") -> Scene:
    """``render_reference`` with its ground-truth box (``prosthesis``: what sits on the platform, as in
    ``render_scene``; catalogue references have none)."""
    cond = {"size": size, "px_per_mm": 25.0, "angulation": 0.0, "rotation": 0.0, "pano": 1.0, "noise": 0.006,
            "blur": 0.6, "gamma": 1.0, "contrast": 1.0, "jpeg": None, "occlusion": 0.0, "text": False,
            "sharpen": 0.0, "photo": False, "samples": 24, "motion": 0.0, "resample": 1.0,
            "marks": False, "distractors": False, "prosthesis": prosthesis, "bone": 1.0, "centre": True}
    return render_scene([spec], seed, cond)


def render_fixture_crop(spec: dict, seed: int, conditions: dict | None = None, size: tuple[int, int] = (256, 128)) -> Scene:
    """Fast path for training: a small patch of one fixture, axis near vertical, platform up.

    The fixture (with whatever prosthesis, bone and neighbours the conditions draw) fills about
    80 % of the patch height; ``Scene.boxes[0]`` is its ground-truth box, so the caller can run the
    same ``canonical_crop`` it runs on real queries. ``conditions`` are those of ``render_scene``
    (angulation, noise, blur, jpeg, occlusion, ...); here rotation defaults to a few degrees of
    jitter and sensor marks / text are off unless asked for. About 5-15 ms at 256x128 on one core.
    """
    rng = np.random.default_rng(seed)
    cond = dict(conditions or {})
    h, w = int(size[0]), int(size[1])
    tab = tables_for(spec)
    if "angulation" not in cond:
        cond["angulation"] = float(cond.get("angulation_max", 20.0)) * float(rng.beta(1.3, 2.6))
    ang = cond["angulation"]
    a = math.radians(float(ang if isinstance(ang, (int, float)) else np.mean(ang)))
    span = max((tab.length + 2.5) * math.cos(a) + 2 * tab.r_max * math.sin(a), 1.0)
    cond.setdefault("px_per_mm", min(h * float(rng.uniform(0.74, 0.86)) / span, w * 0.9 / (2 * tab.r_max + 0.6)))
    cond.setdefault("size", (h, w))
    if "rotation" not in cond and "rotation_max" not in cond:
        cond["rotation"] = float(rng.normal(0, 3.0))
    cond.setdefault("marks", False)
    cond.setdefault("text", False)
    cond.setdefault("photo", False)
    cond.setdefault("pano", 1.0)
    cond["centre"] = True
    return render_scene([spec], int(rng.integers(2**31)), cond)
