"""Attenuation maps of everything around the fixture: bone, teeth, prosthetics, fillings.

All maps are optical densities (dimensionless attenuation, ``exp(-A)`` is the transmitted
fraction) on the output pixel grid. Objects are bodies of revolution given by a radius profile
along their axis; the path length through them is the chord 2 * sqrt(r(z)^2 - x^2).
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

MU_TI = 0.6  # titanium, per mm (effective energy of a 60-70 kVp dental tube)
MU_ALLOY = 1.1  # crown alloys (Ni-Cr, Au-Pd)
MU_ZIRCONIA = 0.8
MU_AMALGAM = 1.6
MU_GUTTA = 0.5
MU_ENAMEL = 0.16
MU_DENTIN = 0.15


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Zero-mean, unit-variance band-limited noise with features of about ``scale_px`` pixels."""
    h, w = shape
    f = max(scale_px / 2.0, 1.0)
    sh, sw = max(int(h / f) + 2, 2), max(int(w / f) + 2, 2)
    small = rng.standard_normal((sh, sw)).astype(np.float32)
    small = cv2.GaussianBlur(small, (0, 0), 0.8)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    big -= big.mean()
    return big / (big.std() + 1e-6)


def smooth_noise_aniso(rng: np.random.Generator, shape: tuple[int, int], sx: float, sy: float) -> np.ndarray:
    """``smooth_noise`` with different feature sizes across (sx) and along (sy) the image rows."""
    h, w = shape
    sh, sw = max(int(h / max(sy / 2, 1)) + 2, 2), max(int(w / max(sx / 2, 1)) + 2, 2)
    small = cv2.GaussianBlur(rng.standard_normal((sh, sw)).astype(np.float32), (0, 0), 0.8)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    big -= big.mean()
    return big / (big.std() + 1e-6)


def trabecular(rng: np.random.Generator, shape: tuple[int, int], px_per_mm: float) -> np.ndarray:
    """Trabecular bone texture, zero mean, about unit range: plates and rods around marrow spaces,
    two networks (isotropic and vertically stretched) mixed by region, with patchy density."""
    ppm = px_per_mm
    b = smooth_noise(rng, shape, 0.25 * ppm)
    a1 = smooth_noise(rng, shape, 0.45 * ppm)
    a2 = smooth_noise_aniso(rng, shape, 0.6 * ppm, 1.3 * ppm)
    c = smooth_noise(rng, shape, 1.6 * ppm)
    mix = 1 / (1 + np.exp(-1.8 * smooth_noise(rng, shape, 4.0 * ppm)))
    dens = 1 / (1 + np.exp(-1.5 * smooth_noise(rng, shape, 2.5 * ppm)))
    rods = mix * np.exp(-((a1 + 0.45 * b) ** 2) * 1.4) + (1 - mix) * np.exp(-((a2 + 0.35 * b) ** 2) * 1.4)
    tex = rods * (0.5 + 0.8 * dens) + 0.3 * c + 0.1 * b
    return (tex - tex.mean()).astype(np.float32)


BANK_PX_PER_MM = 20.0
BANK_SIZE = 1024


@lru_cache(maxsize=1)
def texture_bank() -> tuple[np.ndarray, ...]:
    """A few large trabecular textures (deterministic), sampled with random pose by every render.

    Channel 0 is the trabecular pattern, channel 1 a low-frequency density variation; the bank is
    at BANK_PX_PER_MM and renders resample it to their own scale.
    """
    rng = np.random.default_rng(7)
    bank = []
    for _ in range(6):
        tex = trabecular(rng, (BANK_SIZE, BANK_SIZE), BANK_PX_PER_MM)
        low = smooth_noise(rng, (BANK_SIZE, BANK_SIZE), 6 * BANK_PX_PER_MM)
        bank.append(np.dstack([tex, low]).astype(np.float32))
    return tuple(bank)


def bone_texture(rng: np.random.Generator, to_scene: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 2) trabecular + low-frequency texture for an image whose pixels map to scene mm by
    ``to_scene`` (3x3), taken from the bank with a random offset, rotation and slight scale."""
    bank = texture_bank()
    src = bank[int(rng.integers(len(bank)))]
    a = float(rng.uniform(0, 2 * np.pi))
    sc = BANK_PX_PER_MM * float(rng.uniform(0.8, 1.25))
    c, s = math.cos(a) * sc, math.sin(a) * sc
    off = rng.uniform(0, BANK_SIZE, size=2)
    h, w = size
    f = 2 if min(h, w) > 600 else 1  # texture features span >= 8 px: warp at half size, then upsample
    half = np.diag([f, f, 1.0])
    m = np.array([[c, -s, off[0]], [s, c, off[1]], [0, 0, 1]]) @ to_scene @ half
    out = cv2.warpAffine(src, m[:2], (-(-w // f), -(-h // f)), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REFLECT101)
    return cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR) if f > 1 else out


def chord(r: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Path length through a body of revolution with radius ``r`` at lateral offset ``x``."""
    return 2.0 * np.sqrt(np.clip(r * r - x * x, 0, None))


def local_frame(X: np.ndarray, Y: np.ndarray, cx: float, cy: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Scene coords -> (lateral, axial) coords of an object at (cx, cy) whose axis points at ``angle``
    (radians from the +y direction, i.e. 0 = pointing down the image)."""
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = X - cx, Y - cy
    return dx * c - dy * s, dx * s + dy * c


def tooth(X, Y, cx, cy, angle, rng, *, root_len, width, crown_h, roots=1, canal_fill=False, restoration=None,
          post=False):
    """A natural tooth: cervical line at (cx, cy), root pointing along ``angle``.

    ``post`` adds a metal post in the (first) root canal: parallel or tapered, sometimes threaded,
    a hard negative for fixture detection. Returns (attenuation map, metal map) where metal is the
    alloy/amalgam/gutta-percha/post part.
    """
    u, z = local_frame(X, Y, cx, cy, angle)
    half = width / 2
    dens = np.zeros_like(X)
    metal = np.zeros_like(X)
    # root(s): taper from cervical half-width to a rounded apex
    offsets = [0.0] if roots == 1 else [-half * 0.45, half * 0.45]
    rw = half if roots == 1 else half * 0.55
    for off in offsets:
        t = np.clip(z / root_len, 0, 1)
        r = rw * (1 - 0.45 * t) * np.sqrt(np.clip(1 - t**3, 0, 1)) * (z >= 0) * (z <= root_len)
        ur = u - off * (1 - 0.3 * t)
        body = chord(r, ur)
        canal = chord(np.where((z > 0.5) & (z < root_len - 0.5), rw * 0.12 * (1 - 0.5 * t), 0), ur)
        dens += MU_DENTIN * (body - canal)
        # lamina dura + PDL: bright line just outside a dark line around the root
        along = (z >= 0) & (z <= root_len + 0.3)  # around the root only, not along the whole axis
        pdl = (chord(r + 0.2, ur) - body) * along
        dura = (chord(r + 0.45, ur) - chord(r + 0.2, ur)) * along
        dens += -0.08 * pdl + 0.12 * dura
        if canal_fill:
            metal += MU_GUTTA * canal
        if post and off == offsets[0]:
            plen = root_len * float(rng.uniform(0.4, 0.65))
            pr = float(rng.uniform(0.5, 0.8))
            taper = float(rng.uniform(0.0, 0.4))
            pz = np.clip(z / plen, 0, 1)
            prad = pr * (1 - taper * pz) * (z > -1.5) * (z < plen)
            if rng.random() < 0.4:  # threaded post
                prad = prad * (0.85 + 0.15 * np.abs(np.sin(np.pi * z / float(rng.uniform(0.5, 0.8)))))
            metal += MU_ALLOY * chord(prad, ur)
    # crown: bulbous, wider than the root, with an enamel shell
    zc = -z  # up from the cervical line
    tc = np.clip(zc / crown_h, 0, 1)
    rc = half * (0.9 + 0.3 * np.sin(np.pi * np.clip(tc * 1.2, 0, 1))) * (zc >= 0) * (zc <= crown_h)
    rc = rc * np.sqrt(np.clip(1 - np.clip((tc - 0.55) / 0.45, 0, 1) ** 2, 0, 1))
    cbody = chord(rc, u)
    inner = chord(np.clip(rc - 1.1, 0, None) * (zc < crown_h - 1.2), u)
    dens += MU_DENTIN * inner + MU_ENAMEL * (cbody - inner) * 1.5
    if restoration == "crown":
        metal += MU_ALLOY * 0.35 * cbody
    elif restoration == "filling":
        fx = float(rng.uniform(-0.4, 0.4) * half)
        fr = float(rng.uniform(0.25, 0.45) * width)
        fz = crown_h * float(rng.uniform(0.55, 0.85))
        d = np.sqrt(((u - fx) / fr) ** 2 + ((zc - fz) / (fr * 0.7)) ** 2)
        metal += MU_AMALGAM * 2.5 * np.clip(1 - d, 0, None) ** 0.5 * (d < 1)
    return dens.astype(np.float32), metal.astype(np.float32)


def prosthesis(X, Y, cx, cy, angle, rng, *, kind, platform_r, crown_w=8.0, foreshorten=1.0, neck_r=None):
    """Abutment / healing cap / crown above a fixture whose platform centre is (cx, cy).

    ``neck_r`` (mm; None: 0.9 of the fixture's ``platform_r``, or 1.05 of it for a healing cap): the radius at
    which the abutment or cap leaves the platform (a platform switch); it flares to its drawn radius over its
    emergence (an abutment's, 1-2.2 mm) or 0.8 mm (a cap's).

    Returns the titanium-equivalent path (mm) of the abutment or cap and a separate metal map
    of the crown (already in optical density).
    """
    u, z = local_frame(X, Y, cx, cy, angle)
    zc = -z / max(foreshorten, 0.3)  # up from the platform
    ti = np.zeros_like(X)
    crown = np.zeros_like(X)
    if kind == "cover":
        r = np.where((zc > 0) & (zc < 0.4), platform_r * 0.95, 0)
        ti += chord(r, u)
    elif kind == "healing":
        hh = float(rng.uniform(2.5, 5.0))
        top = np.clip((zc - (hh - 0.8)) / 0.8, 0, 1)
        body = platform_r * 1.05 + 0.25 * np.clip(zc, 0, 1)
        if neck_r is not None:
            body = neck_r + (body - neck_r) * np.clip(zc / 0.8, 0, 1)
        r = np.where((zc > 0) & (zc < hh), body * np.sqrt(1 - top**2), 0)
        ti += chord(r, u)
    elif kind in ("abutment", "crown"):
        ah = float(rng.uniform(4.5, 7.0))
        em = float(rng.uniform(1.0, 2.2))
        r0 = platform_r * 0.9 if neck_r is None else neck_r
        r1 = platform_r * float(rng.uniform(1.0, 1.25))
        r = np.where(zc < em, r0 + (r1 - r0) * np.clip(zc / em, 0, 1), r1 * (1 - 0.25 * np.clip((zc - em) / (ah - em), 0, 1)))
        r = np.where((zc > 0) & (zc < ah), r, 0)
        ti += chord(r, u)
        screw_r = np.where((zc > 0.5) & (zc < ah - 1.0), 0.55, 0)
        ti -= 0.35 * chord(screw_r, u)  # screw access channel
        if kind == "crown":
            ch = float(rng.uniform(7.0, 9.5))
            cw = crown_w / 2
            tcz = np.clip((zc - 1.0) / ch, 0, 1)
            rc = cw * (0.75 + 0.3 * np.sin(np.pi * np.clip(tcz * 0.9, 0, 1))) * np.sqrt(np.clip(1 - np.clip((tcz - 0.75) / 0.25, 0, 1) ** 2, 0, 1))
            rc = np.where((zc > 1.0) & (zc < 1.0 + ch), rc, 0)
            shell = chord(rc, u) - chord(np.clip(rc - 0.6, 0, None), u)
            full = chord(rc, u)
            mat = rng.choice(["alloy", "zirconia", "ceramic"], p=[0.5, 0.3, 0.2])
            if mat == "alloy":
                crown += MU_ALLOY * 0.5 * shell + MU_ENAMEL * 1.6 * full
            elif mat == "zirconia":
                crown += MU_ZIRCONIA * 0.3 * full
            else:
                crown += MU_ENAMEL * 2.0 * full
            crown -= MU_TI * ti * (full > 0) * 0.0
    return ti.astype(np.float32), crown.astype(np.float32)
