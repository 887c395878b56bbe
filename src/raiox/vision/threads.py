"""Counting a fixture's threads on the film (``read``), to re-rank catalog candidates by their line's lengths.

A fixture's thread pitch is a ruler the film carries. Along the silhouette the crests repeat every pitch,
whatever the number of leads (``raiox.synth.geometry``: the thread's phase is z / pitch plus the angle times
the leads), so the located box's length over the crest spacing, ``turns``, reads length / pitch without
knowing the film's scale. A catalog system whose spec names its pitch and whose line lists its lengths
(``attributes.lengths``; else the spec's length) predicts ``(L + OFFSET_MM) / pitch`` for each length L of the
line, and the search's re-rank adds

    WEIGHT * ln((mean over the line's lengths of exp(-((ln turns - ln predicted) / SIGMA)^2 / 2) + FLOOR) / (1 + FLOOR))

so a sibling that differs only in a part the film hides (a cone under an abutment) but is sold in other lengths,
or with another pitch, falls behind (docs/benchmarks.md, session 28). ``FLOOR`` bounds what a wrong count
costs: about one count in five is a harmonic or a low-frequency shadow (an occluder, blur on few crests).

The count: the located box is sampled along its axis (``Z0``-``Z1`` of its length, half-pixel rows, 1.3 widths
across); each row's outermost crossing of the level halfway between the fixture's core and the bone outside is
the silhouette edge on either side; each edge, less its moving mean (``DETREND`` of the rows), is windowed and
its power spectrum (zero-padded) summed over both sides; the strongest frequency between ``MIN_TURNS`` and
``MAX_TURNS`` per box length, refined by a parabola, is the count. ``quality`` is that peak over the mean power.
``RAIOX_THREAD_COUNT=false`` switches it off (``analyze`` then counts nothing and nothing is re-ranked by it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

from raiox.vision.canonical import box_frame

Z0, Z1 = 0.15, 0.85  # the part of the box sampled: clear of most collars and apex tapers
ACROSS = 1.3  # box widths across the axis
COLUMNS = 96
ROW_STEP = 0.5  # image pixels per row
DETREND = 6  # the moving mean taken off each edge spans rows / DETREND (the body's taper, not its threads)
PAD = 16  # zero-padding of the spectrum
MIN_TURNS, MAX_TURNS = 2.2, 34.0  # the schema's range: 6-18 mm at 0.6-3 mm pitch
MIN_ROWS = 32  # shorter boxes are not counted
OFFSET_MM = 0.3  # located boxes run about this much past the fixture's length (seeds 7000-7001)
SIGMA = 0.04  # spread of ln turns on located boxes (interquartile 0.04-0.08)
FLOOR = 0.05
WEIGHT = 0.015  # chosen on the evaluation sets of seeds 7000-7001 (docs/benchmarks.md, session 28)


@dataclass(frozen=True)
class Turns:
    """A fixture's measured length over thread pitch, and how clearly its spectrum peaked."""

    turns: float
    quality: float


@dataclass(frozen=True)
class Line:
    """What a catalog system predicts: its thread pitch and the lengths its line is sold in (mm)."""

    pitch_mm: float
    lengths_mm: tuple[float, ...]

    def predicted(self) -> np.ndarray:
        return np.log((np.asarray(self.lengths_mm, np.float64) + OFFSET_MM) / self.pitch_mm)


def line_of(spec: dict | None, attributes: dict | None = None) -> Line | None:
    """A system's ``Line`` from its spec's pitch and its attributes' lengths (a list, or "8,10,11.5" as a CSV
    import stores them; else the spec's length); None when the spec names no pitch or no length is known."""
    pitch = _number(((spec or {}).get("thread") or {}).get("pitch_mm"))
    raw = (attributes or {}).get("lengths")
    pieces = (re.split(r"[,;\s]+", raw.strip()) if isinstance(raw, str)
              else raw if isinstance(raw, (list, tuple)) else [])
    lengths = [x for x in map(_number, pieces) if x] or [x for x in [_number((spec or {}).get("length_mm"))] if x]
    return Line(pitch, tuple(lengths)) if pitch and lengths else None


def _number(value) -> float | None:
    """A positive finite number from a number or its text; None otherwise."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) and number > 0 else None


def enabled() -> bool:
    """Whether fixtures are counted (``RAIOX_THREAD_COUNT``, settings ``thread_count``; on by default)."""
    from raiox.kit.settings import get_settings

    return bool(get_settings().thread_count)


def read(image: np.ndarray, box: np.ndarray) -> Turns | None:
    """The thread count of the fixture in ``box`` ((4, 2), platform edge first); None for a box too short, or one
    whose silhouette does not move along the axis (nothing periodic to count)."""
    strip, length = _strip(np.asarray(image, np.float32), box)
    if strip is None:
        return None
    power, turns = None, None
    for edge in _edges(strip):
        turns, p = _spectrum(edge, length)
        p = p / (p.sum() + 1e-12)
        power = p if power is None else power + p
    if not np.isfinite(power).all() or power.max() <= 0:
        return None  # no edge moves along the axis (a flat or saturated box): nothing to count
    k = int(np.argmax(power))
    peak = turns[k]
    if 0 < k < len(power) - 1:
        a, b, c = np.log(power[k - 1:k + 2] + 1e-12)
        curve = a - 2 * b + c
        peak += (0.5 * (a - c) / curve if curve < 0 else 0.0) * (turns[1] - turns[0])
    return Turns(float(peak), float(power[k] / power.mean()))


def _strip(image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray | None, float]:
    """(rows along the axis from Z0 to Z1, COLUMNS across) samples of the box, and the box's length (px)."""
    try:
        centre, axis, length, width = box_frame(box)
    except ValueError:  # platform and apex edges coincide
        return None, 0.0
    rows = int((Z1 - Z0) * length / ROW_STEP)
    if rows < MIN_ROWS or width < 2:
        return None, length
    normal = np.array([axis[1], -axis[0]])
    step = ACROSS * width / COLUMNS
    start = centre + axis * (Z0 - 0.5) * length - normal * (ACROSS * width / 2)
    matrix = np.array([[normal[0] * step, axis[0] * ROW_STEP, start[0]],
                       [normal[1] * step, axis[1] * ROW_STEP, start[1]]])
    strip = cv2.warpAffine(image, matrix, (COLUMNS, rows), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE)
    return strip, length


def _edges(strip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the outermost position (in widths from the axis) on each side above the level halfway between
    the core (within 0.15 widths of the axis) and the outside (beyond 0.6)."""
    x = ((np.arange(strip.shape[1]) + 0.5) / strip.shape[1] - 0.5) * ACROSS
    core = np.median(strip[:, np.abs(x) < 0.15], axis=1)
    outside = np.median(strip[:, np.abs(x) > 0.6], axis=1)
    above = strip > ((core + outside) / 2)[:, None]
    left, right = x < 0, x > 0
    first = np.argmax(above[:, left], axis=1)  # from the outside in
    last = above[:, right].shape[1] - 1 - np.argmax(above[:, right][:, ::-1], axis=1)
    return x[left][first].astype(np.float32), x[right][last].astype(np.float32)


def _spectrum(edge: np.ndarray, length: float) -> tuple[np.ndarray, np.ndarray]:
    """(turns per box length, power) of one edge between MIN_TURNS and MAX_TURNS."""
    window = max(int(len(edge) / DETREND) | 1, 3)
    signal = edge - cv2.blur(edge.reshape(-1, 1), (1, window)).ravel()
    signal = signal * np.hanning(len(signal))
    power = np.abs(np.fft.rfft(signal, len(signal) * PAD)) ** 2
    turns = np.fft.rfftfreq(len(signal) * PAD, d=ROW_STEP) * length
    keep = (turns >= MIN_TURNS) & (turns <= MAX_TURNS)
    return turns[keep], power[keep]


def bonus(read: Turns | None, lines: list[Line | None], weight: float | None = None) -> np.ndarray:
    """The score added to each candidate (by its ``Line``); a candidate without one gets the mean of those with
    one (no reward, no penalty); zeros without a count."""
    weight = WEIGHT if weight is None else weight
    out = np.zeros(len(lines), np.float64)
    known = [i for i, line in enumerate(lines) if line is not None]
    if read is None or weight == 0 or not known or not read.turns > 0:
        return out
    t = np.log(read.turns)
    for i in known:
        z = (t - lines[i].predicted()) / SIGMA
        out[i] = np.log((np.mean(np.exp(-0.5 * z * z)) + FLOOR) / (1 + FLOOR))  # <= 0, as the other readers'
    out[[i for i in range(len(lines)) if lines[i] is None]] = out[known].mean()
    return weight * out
