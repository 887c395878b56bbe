"""Synthetic periapical radiographs: scenes of 1-3 implants with ground-truth oriented boxes.

Coordinates: a *scene* frame in millimetres (origin at the image centre, x along the arch, y down
toward the apices of a lower jaw) is mapped to the image by panoramic stretch (x only), scale
(pixels per mm, magnification included) and an in-plane rotation about the image centre. Boxes
are in image pixel coordinates with pixel centres at integers (the OpenCV convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from . import anatomy as an
from .degrade import degrade
from .geometry import project_fixture, tables_for

MAX_FIXTURE_PX_PER_MM = 20.0  # fixtures are ray-marched at most this fine, then warped up


@dataclass
class Scene:
    """A rendered radiograph and its ground truth."""

    image: np.ndarray  # (H, W) float32 in [0, 1], metal bright
    boxes: list[np.ndarray]  # per fixture (4, 2) float32 [x, y]: platform-left, platform-right, apex-right, apex-left
    indices: list[int]  # index into the ``specs`` argument for each box
    distractors: list[np.ndarray] = field(default_factory=list)  # (4, 2) boxes of non-fixture metal
    meta: dict = field(default_factory=dict)  # conditions actually drawn (angulation, rotation, ...)


def _affine(theta: float, sx: float, ppm: float, size: tuple[int, int]) -> np.ndarray:
    """3x3 matrix: scene mm -> image pixel centres."""
    h, w = size
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    scl = np.diag([sx * ppm, ppm, 1.0])
    shift = np.array([[1, 0, w / 2 - 0.5], [0, 1, h / 2 - 0.5], [0, 0, 1]])
    return shift @ rot @ scl


def _axis_affine(cx: float, cy: float, tilt: float) -> np.ndarray:
    """3x3 matrix: object-local (lateral u, axial v) mm -> scene mm (see ``anatomy.local_frame``)."""
    c, s = math.cos(tilt), math.sin(tilt)
    return np.array([[c, s, cx], [-s, c, cy], [0, 0, 1]])


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, np.float64)
    return (pts @ m[:2, :2].T + m[:2, 2]).astype(np.float32)


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
    c["marks"] = bool(cond.get("marks", rng.random() < (0.0 if pano else 0.6)))
    c["distractors"] = bool(cond.get("distractors", True))
    c["neighbours"] = bool(cond.get("neighbours", True))
    c["prosthesis"] = cond.get("prosthesis")
    c["invert"] = bool(cond.get("invert", False))
    c["centre"] = bool(cond.get("centre", False))
    c["bone"] = float(_draw(rng, cond, "bone", lambda: float(rng.uniform(0.7, 1.3))))
    return c


def _inscribed(size: tuple[int, int], ppm: float, sx: float, theta: float) -> tuple[float, float]:
    """Width and height (scene mm) of a scene-aligned rectangle that stays inside the image."""
    h, w = size
    W, H = w / ppm, h / ppm
    c, s = abs(math.cos(theta)), abs(math.sin(theta))
    a0, b0 = (W / sx, H) if c >= s else (H / sx, W)
    f = min(W / (a0 * sx * c + b0 * s + 1e-9), H / (a0 * sx * s + b0 * c + 1e-9), 1.0)
    return a0 * f, b0 * f


def _roi(pts: np.ndarray, size: tuple[int, int], pad: int = 2) -> tuple[slice, slice] | None:
    h, w = size
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + pad
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    return slice(y0, y1), slice(x0, x1)


class _Canvas:
    """Attenuation accumulators on the image grid plus scene coordinates of every pixel."""

    def __init__(self, size, to_img: np.ndarray):
        self.size = size
        h, w = size
        self.to_img = to_img
        self.to_scene = np.linalg.inv(to_img)
        self.tissue = np.zeros(size, np.float32)  # optical density of soft tissue and teeth
        self.bone = np.zeros(size, np.float32)  # optical density of bone
        self.metal = np.zeros(size, np.float32)  # optical density of metal other than titanium
        self.ti = np.zeros(size, np.float32)  # titanium path length, mm

    def coords(self, roi: tuple[slice, slice], step: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Scene mm of the pixels in ``roi`` (every ``step``-th pixel)."""
        ys, xs = roi
        yy = np.arange(ys.start, ys.stop, step, dtype=np.float32)[:, None]
        xx = np.arange(xs.start, xs.stop, step, dtype=np.float32)[None, :]
        m = self.to_scene
        X = m[0, 0] * xx + m[0, 1] * yy + np.float32(m[0, 2])
        Y = m[1, 0] * xx + m[1, 1] * yy + np.float32(m[1, 2])
        return X.astype(np.float32), Y.astype(np.float32)

    def region(self, cx, cy, tilt, u0, u1, z0, z1):
        """Image slices covering the local rectangle [u0, u1] x [z0, z1] of an object at (cx, cy)."""
        pts = np.array([[u0, z0], [u1, z0], [u1, z1], [u0, z1]])
        return _roi(_apply(self.to_img @ _axis_affine(cx, cy, tilt), pts), self.size)


def _place_fixture(canvas: _Canvas, spec: dict, cx: float, cy: float, tilt: float, angulation: float,
                   rng: np.random.Generator, ppm_img: float, fill: float = 0.0) -> tuple[np.ndarray, object]:
    """Project one fixture and add it to the canvas; ``fill`` is the fraction of the connection
    void occupied by the abutment / screw (0 for an open connection)."""
    rp = min(ppm_img, MAX_FIXTURE_PX_PER_MM)
    fm = project_fixture(spec, rp, angulation_deg=angulation, axial_rot=float(rng.uniform(0, 2 * np.pi)),
                         thread_phase=float(rng.random()), rng=rng)
    ou, ov = fm.origin
    # local pixel centre (j, i) -> local mm (u, v)
    to_local = np.array([[1 / rp, 0, ou + 0.5 / rp], [0, 1 / rp, ov + 0.5 / rp], [0, 0, 1]])
    m = canvas.to_img @ _axis_affine(cx, cy, tilt) @ to_local
    hl, wl = fm.solid.shape
    corners = _apply(m, np.array([[-0.5, -0.5], [wl - 0.5, -0.5], [wl - 0.5, hl - 0.5], [-0.5, hl - 0.5]]))
    box = _apply(m, fm.box - 0.5)
    roi = _roi(corners, canvas.size)
    if roi is not None:
        ys, xs = roi
        mm = m.copy()
        mm[0, 2] -= xs.start
        mm[1, 2] -= ys.start
        dst = (xs.stop - xs.start, ys.stop - ys.start)
        src = fm.solid + fill * fm.void if fill > 0 else fm.solid
        warped = cv2.warpAffine(src, mm[:2], dst, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        canvas.ti[ys, xs] += warped
    return box, fm


def _bone(canvas: _Canvas, rng, crest: float, jaw: str, strength: float, ppm: float) -> None:
    """Soft tissue everywhere; below the crest trabecular bone, crestal cortex, and the mandibular
    border and canal (lower jaw) or the sinus floor (upper jaw). The smooth parts are computed on
    a coarse grid and upsampled; the trabecular texture comes from the bank at full resolution."""
    h, w = canvas.size
    step = max(1, int(ppm / 8))  # about 8 samples per mm for the smooth anatomy
    X, Y = canvas.coords((slice(0, h), slice(0, w)), step)
    und = 0.8 * np.sin(X * float(rng.uniform(0.3, 0.6)) + float(rng.uniform(0, 6)))
    depth_below = Y - (crest + und)
    mask = np.clip(depth_below / 0.8 + 0.5, 0, 1)
    extra = 0.28 * np.exp(-((depth_below - 0.5) / 0.55) ** 2)  # crestal cortex
    scale = np.ones_like(mask)
    if jaw == "mandible":
        border = crest + float(rng.uniform(22, 32))
        extra += 0.7 * np.clip((Y - border) / 1.0, 0, 1) * np.exp(-np.clip(Y - border - 3.5, 0, None) / 3.0)
        canal_y = border - float(rng.uniform(4, 8))
        extra -= 0.12 * np.exp(-((Y - canal_y) / 1.4) ** 4) * mask
    else:
        sinus = crest + float(rng.uniform(12, 22))
        scale = 1 - 0.6 * np.clip((Y - sinus) / 1.5, 0, 1)
        extra += 0.25 * np.exp(-((Y - sinus) / 0.35) ** 2)
    coarse = np.stack([mask * scale, extra * mask if jaw == "mandible" else extra], axis=-1).astype(np.float32)
    if step > 1:
        coarse = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    trab, low = cv2.split(an.bone_texture(rng, canvas.to_scene, canvas.size))
    cmask, cextra = cv2.split(coarse)
    amount = float(rng.uniform(0.2, 0.4))
    bone = trab * np.float32(amount)
    bone += np.float32(0.75)
    bone += low * np.float32(0.08)
    bone *= cmask
    bone += cextra
    bone *= np.float32(strength)
    canvas.bone += bone
    canvas.tissue += low * np.float32(0.05) + np.float32(0.35)


def _keep_inside(canvas: _Canvas, tab, cx: float, cy: float, tilt: float, ang: float, margin: float = 2.0):
    """Shift a fixture (scene mm) so that its predicted box lies inside the image."""
    a = math.radians(ang)
    ca, sa = math.cos(a), math.sin(a)
    R = tab.r_max
    local = np.array([[-R, tab.z_top * ca - R * sa], [R, tab.z_top * ca - R * sa], [R, tab.length * ca + R * sa],
                      [-R, tab.length * ca + R * sa]])
    h, w = canvas.size
    for _ in range(3):
        pts = _apply(canvas.to_img @ _axis_affine(cx, cy, tilt), local)
        shift = np.array([max(margin - pts[:, 0].min(), 0) - max(pts[:, 0].max() - (w - 1 - margin), 0),
                          max(margin - pts[:, 1].min(), 0) - max(pts[:, 1].max() - (h - 1 - margin), 0)])
        if not shift.any():
            break
        d = canvas.to_scene[:2, :2] @ shift
        cx, cy = cx + float(d[0]), cy + float(d[1])
    return cx, cy


def plat_r(spec: dict) -> float:
    """Outer radius of the fixture just below the platform, mm."""
    tab = tables_for(spec)
    return float(tab.env[int((0.05 - tab.z0) / 0.005)])


def _bone_loss(canvas: _Canvas, cx, cy, tilt, r, depth, strength) -> None:
    """Crestal remodelling: a saucer-shaped radiolucency around the neck, ``depth`` mm deep."""
    roi = canvas.region(cx, cy, tilt, -r - depth - 1, r + depth + 1, -1.5, depth + 0.5)
    if roi is None:
        return
    u, z = an.local_frame(*canvas.coords(roi), cx, cy, tilt)
    edge = r + 0.1 + 0.45 * np.clip(depth - z, 0, None)
    inside = np.clip((edge - np.abs(u)) / 0.3, 0, 1) * np.clip((depth - z) / 0.4, 0, 1)
    canvas.bone[roi] *= (1 - 0.75 * inside).astype(np.float32)


def _connector(canvas: _Canvas, p0, p1, tilt, rng) -> None:
    """A metal bar joining two crowns (splinted crowns / bridge)."""
    cx, cy = (p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2
    half = abs(p1[0] - p0[0]) / 2
    lift = float(rng.uniform(3.0, 5.0))
    roi = canvas.region(cx, cy, tilt, -half, half, -lift - 2.5, -lift + 2.5)
    if roi is None:
        return
    u, z = an.local_frame(*canvas.coords(roi), cx, cy, tilt)
    bar = np.clip(1 - ((z + lift) / 1.3) ** 2, 0, None) ** 0.5 * (np.abs(u) < half)
    canvas.metal[roi] += (an.MU_ALLOY * 1.2 * bar).astype(np.float32)


def _occlude(canvas: _Canvas, box: np.ndarray, frac: float, rng) -> np.ndarray:
    """Cover about ``frac`` of a fixture: a cone cut (unexposed, white) or an overlapping radiopaque
    object. Returns the occluder's box (image coordinates)."""
    top, bot = (box[0] + box[1]) / 2, (box[2] + box[3]) / 2
    h, w = canvas.size
    if rng.random() < 0.4:  # cone cut: a circular collimator edge crossing one end of the fixture
        radius = float(rng.uniform(1.5, 3.0)) * max(h, w)
        yy, xx = np.ogrid[0:h, 0:w]
        ends = [(top, bot), (bot, top)] if rng.random() < 0.5 else [(bot, top), (top, bot)]
        for end, other in ends:
            direction = (end - other) / (np.linalg.norm(end - other) + 1e-9)
            edge_point = end - direction * frac * float(np.linalg.norm(bot - top))
            centre = edge_point - direction * radius
            dist = np.sqrt((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2)
            cut = np.clip((dist - radius) / 2.0, 0, 1).astype(np.float32)
            if 0.001 < cut.mean() < 0.35:  # real cone cuts take an edge or a corner, not most of the film
                canvas.metal += 8.0 * cut
                ys, xs = np.nonzero(cut > 0.5)
                return np.array([[xs.min(), ys.min()], [xs.max(), ys.min()], [xs.max(), ys.max()], [xs.min(), ys.max()]],
                                np.float32)
    t = float(rng.uniform(0.0, 1.0))
    top, bot = (box[0] + box[1]) / 2, (box[2] + box[3]) / 2
    centre = top + (bot - top) * t
    length = float(np.linalg.norm(bot - top))
    width = float(np.linalg.norm(box[1] - box[0]))
    ang = float(rng.uniform(0, np.pi))
    ra, rb = width * float(rng.uniform(0.8, 1.6)), max(frac * length, 3.0)
    pts = np.array([[centre[0] - ra - rb, centre[1] - ra - rb], [centre[0] + ra + rb, centre[1] + ra + rb]])
    roi = _roi(pts, canvas.size)
    if roi is not None:
        ys, xs = roi
        yy = np.arange(ys.start, ys.stop, dtype=np.float32)[:, None]
        xx = np.arange(xs.start, xs.stop, dtype=np.float32)[None, :]
        dx, dy = xx - centre[0], yy - centre[1]
        a = dx * math.cos(ang) + dy * math.sin(ang)
        b = -dx * math.sin(ang) + dy * math.cos(ang)
        wobble = 1 + 0.15 * an.smooth_noise(rng, a.shape, max(ra, rb) / 2)
        blob = np.clip(wobble - (a / ra) ** 2 - (b / rb) ** 2, 0, None) ** 0.3
        canvas.metal[roi] += (an.MU_AMALGAM * float(rng.uniform(1.0, 3.0)) * blob).astype(np.float32)
    return np.array([[centre[0] - ra, centre[1] - rb], [centre[0] + ra, centre[1] - rb],
                     [centre[0] + ra, centre[1] + rb], [centre[0] - ra, centre[1] + rb]], np.float32)


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
    sharpen (unsharp-mask amount of the sensor software); photo (bool: a phone photo of the screen,
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
        box, fm = _place_fixture(canvas, spec, cx, cy, tilt, ang, rng, ppm, fill)
        boxes.append(box)
        xs_used.append(cx)
        if not cond["centre"] and rng.random() < 0.4:
            _bone_loss(canvas, cx, cy, tilt, float(plat_r(spec)), float(rng.uniform(0.3, 2.5)), cond["bone"])
        plat = plat_r(spec)
        roi = canvas.region(cx, cy, tilt, -spacing / 2 - 0.5, spacing / 2 + 0.5, -17.0, 0.5)
        if roi is not None and kind != "none":
            X, Y = canvas.coords(roi)
            ti, crown = an.prosthesis(X, Y, cx, cy, tilt, rng, kind=kind, platform_r=float(plat),
                                      crown_w=spacing * 0.95, foreshorten=math.cos(math.radians(ang)))
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


def render_reference(spec: dict, seed: int = 0, size: tuple[int, int] = (640, 384)) -> np.ndarray:
    """A clean catalogue image: one upright fixture (platform up) in bone, no angulation, little noise.

    Fixed scale (25 px/mm) so sizes stay comparable across systems; the fixture sits centred.
    """
    sc = render_reference_scene(spec, seed, size)
    return sc.image


def render_reference_scene(spec: dict, seed: int = 0, size: tuple[int, int] = (640, 384)) -> Scene:
    """``render_reference`` with its ground-truth box."""
    cond = {"size": size, "px_per_mm": 25.0, "angulation": 0.0, "rotation": 0.0, "pano": 1.0, "noise": 0.006,
            "blur": 0.6, "gamma": 1.0, "contrast": 1.0, "jpeg": None, "occlusion": 0.0, "text": False,
            "sharpen": 0.0, "photo": False,
            "marks": False, "distractors": False, "prosthesis": "none", "bone": 1.0, "centre": True}
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
