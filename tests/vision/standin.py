"""A tiny stand-in radiograph renderer for the vision tests (not shipped, not raiox.synth).

Draws threaded fixtures as solids of revolution (path length through titanium), optional
abutment + crown on the platform, a metal filling, text and noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass
class Fixture:
    cx: float  # platform centre, pixels
    cy: float
    angle_deg: float = 0.0  # axis direction platform -> apex; 0 = pointing down
    length: float = 220.0  # pixels
    radius: float = 40.0
    apex_radius: float = 28.0
    pitch: float = 18.0
    depth: float = 5.0
    abutment: bool = False
    crown: bool = False

    def axis(self) -> np.ndarray:
        a = np.deg2rad(self.angle_deg)
        return np.array([-np.sin(a), np.cos(a)])

    def box(self) -> np.ndarray:
        u = self.axis()
        v = np.array([-u[1], u[0]])  # +x side
        top = np.array([self.cx, self.cy])
        bot = top + u * self.length
        r = self.radius
        return np.array([top - v * r, top + v * r, bot + v * r, bot - v * r])


@dataclass
class Scene:
    image: np.ndarray
    fixtures: list[Fixture] = field(default_factory=list)


def _local(fx: Fixture, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    u = fx.axis()
    dx, dy = xs - fx.cx, ys - fx.cy
    t = dx * u[0] + dy * u[1]  # along the axis from the platform
    s = dx * -u[1] + dy * u[0]  # across
    return t, s


def fixture_path(fx: Fixture, h: int, w: int) -> np.ndarray:
    t, s = _local(fx, h, w)
    frac = np.clip(t / fx.length, 0, 1)
    core = fx.radius - fx.depth - np.clip((frac - 0.4) / 0.6, 0, 1) * (fx.radius - fx.apex_radius)
    phase = (t + np.where(s > 0, fx.pitch / 2, 0)) / fx.pitch
    saw = 1 - np.abs(2 * (phase - np.floor(phase)) - 1)
    r = core + fx.depth * saw * (t > fx.length * 0.08)
    apex_round = np.sqrt(np.clip(1 - ((t - fx.length + fx.apex_radius) / fx.apex_radius) ** 2, 0, 1))
    r = np.where(t > fx.length - fx.apex_radius, r * apex_round, r)
    path = 2 * np.sqrt(np.clip(r**2 - s**2, 0, None)) * ((t >= 0) & (t <= fx.length))
    hollow = 2 * np.sqrt(np.clip((fx.radius * 0.45 * (1 - t / (fx.length * 0.4))) ** 2 - s**2, 0, None))
    return np.clip(path - hollow * (t < fx.length * 0.4), 0, None)


def extras_path(fx: Fixture, h: int, w: int) -> np.ndarray:
    t, s = _local(fx, h, w)
    out = np.zeros((h, w), np.float32)
    if fx.abutment:
        ra = fx.radius * 0.7
        out += 2 * np.sqrt(np.clip(ra**2 - s**2, 0, None)) * ((t < 0) & (t > -fx.length * 0.35))
    if fx.crown:
        c = -fx.length * 0.55
        e = ((t - c) / (fx.length * 0.3)) ** 2 + (s / (fx.radius * 2.2)) ** 2
        out += 0.5 * fx.radius * 2 * np.sqrt(np.clip(1 - e, 0, None))
    return out


def render(fixtures: list[Fixture], h: int = 600, w: int = 800, seed: int = 0, filling: bool = True,
           text: bool = True, noise: float = 0.02) -> Scene:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    bone = 0.25 + 0.05 * np.sin(xs / 37.0) * np.cos(ys / 23.0) + 0.1 * rng.random((h, w)).astype(np.float32)
    bone = cv2.GaussianBlur(bone, (0, 0), 3)
    mu = np.zeros((h, w), np.float32)
    for fx in fixtures:
        mu += fixture_path(fx, h, w) + extras_path(fx, h, w)
    if filling:
        mu += 40 * (((xs - w * 0.85) / 50) ** 2 + ((ys - h * 0.2) / 30) ** 2 < 1)
    img = bone + (1 - bone) * (1 - np.exp(-mu / 25.0))
    if text:
        mark = np.zeros((h, w), np.uint8)
        cv2.putText(mark, "R 12/03", (20, h - 20), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 255, 2)
        img = np.maximum(img, mark.astype(np.float32) / 255)
    img = cv2.GaussianBlur(img, (0, 0), 0.8) + rng.normal(0, noise, (h, w)).astype(np.float32)
    return Scene(np.clip(img, 0, 1).astype(np.float32), list(fixtures))
