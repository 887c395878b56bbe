"""Composition on the image grid: coordinate maps, the attenuation canvas, and the parts that
``render_scene`` places (fixtures, bone, bone loss, connectors, occluders)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from . import anatomy as an
from .geometry import project_fixture, tables_for

MAX_FIXTURE_PX_PER_MM = 20.0  # fixtures are ray-marched at most this fine, then warped up

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
                   rng: np.random.Generator, ppm_img: float, fill: np.ndarray | None = None,
                   samples: int = 12) -> tuple[np.ndarray, object]:
    """Project one fixture and add it to the canvas; ``fill`` is how much of the connection void a
    seated restoration fills along the axis (``seated_fill``; None for an open connection)."""
    rp = min(ppm_img, MAX_FIXTURE_PX_PER_MM)
    fm = project_fixture(spec, rp, angulation_deg=angulation, axial_rot=float(rng.uniform(0, 2 * np.pi)),
                         thread_phase=float(rng.random()), samples=samples, fill=fill)
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
        src = fm.solid if fm.filled is None else fm.solid + fm.filled
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
    if rng.random() < 0.4:
        cut = _cone_cut(canvas, top, bot, frac, rng)
        if cut is not None:
            return cut
    return _radiopaque(canvas, top, bot, float(np.linalg.norm(box[1] - box[0])), frac, rng)


def _cone_cut(canvas: _Canvas, top: np.ndarray, bot: np.ndarray, frac: float, rng) -> np.ndarray | None:
    """A circular collimator edge crossing one end of the fixture ``frac`` of its length in; None when
    neither end gives a cut of a plausible size."""
    h, w = canvas.size
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
    return None


def _radiopaque(canvas: _Canvas, top: np.ndarray, bot: np.ndarray, width: float, frac: float, rng) -> np.ndarray:
    """About ``frac`` of the fixture's area under metal, anywhere along it (it may hide an end): a bar
    across the whole fixture (a clasp, a wire, a neighbour's restoration edge) or a roundish blob on it
    (a filling), turned up to 25 degrees off the fixture's axis."""
    length = float(np.linalg.norm(bot - top))
    axis = (bot - top) / (length + 1e-9)
    if rng.random() < 0.5:
        along, across = max(frac * length / 2, 1.5), width * float(rng.uniform(0.7, 1.4))
    else:
        r = math.sqrt(frac * length * width / math.pi)
        q = math.sqrt(float(rng.uniform(1.0, 1.8)))
        along, across = (r * q, r / q) if rng.random() < 0.5 else (r / q, r * q)
    t = float(rng.uniform(min(along, length / 2), max(length - along, length / 2)))
    centre = top + axis * t + np.array([-axis[1], axis[0]]) * width * float(rng.uniform(-0.2, 0.2))
    tilt = float(rng.uniform(-0.44, 0.44))
    u = np.array([math.cos(tilt) * axis[0] - math.sin(tilt) * axis[1], math.sin(tilt) * axis[0] + math.cos(tilt) * axis[1]])
    v = np.array([-u[1], u[0]])
    _paint_ellipse(canvas, centre, u, along, across, rng)
    return np.array([centre - u * along - v * across, centre - u * along + v * across,
                     centre + u * along + v * across, centre + u * along - v * across], np.float32)


def _paint_ellipse(canvas: _Canvas, centre: np.ndarray, u: np.ndarray, along: float, across: float, rng) -> None:
    """Dense metal (amalgam) in a wobbly ellipse with semi-axes ``along`` (direction ``u``) and ``across``."""
    reach = max(along, across) * 1.2
    roi = _roi(np.array([centre - reach, centre + reach]), canvas.size)
    if roi is None:
        return
    ys, xs = roi
    yy = np.arange(ys.start, ys.stop, dtype=np.float32)[:, None]
    xx = np.arange(xs.start, xs.stop, dtype=np.float32)[None, :]
    dx, dy = xx - centre[0], yy - centre[1]
    a, b = dx * u[0] + dy * u[1], -dx * u[1] + dy * u[0]
    wobble = 1 + 0.15 * an.smooth_noise(rng, a.shape, reach / 2)
    blob = np.clip(wobble - (a / along) ** 2 - (b / across) ** 2, 0, None) ** 0.3
    canvas.metal[roi] += (an.MU_AMALGAM * float(rng.uniform(1.0, 3.0)) * blob).astype(np.float32)
