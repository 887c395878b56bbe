"""Full-resolution refinement of a coarse fixture box (the learned localiser's post-processing).

The learned localiser sees the image at 256 px and predicts at half of that, so its boxes are
coarse (edges off by a few percent of the length, axis off by a few degrees). ``refine`` re-reads
the fixture from the image itself: a window around the coarse box is resampled along the box axis
(about ``SAMPLES_ACROSS`` samples across the fixture), every row across the axis gives the metal run
through the axis (its edges where the intensity crosses a level between the bone around the fixture
and the fixture's core), a line through the run centres corrects the axis angle and position, and
the run widths give the major diameter and the two ends. A crown, abutment or occluder is wider or
narrower than the fixture body: rows that leave the body width end the fixture.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SAMPLES_ACROSS = 28  # samples across the coarse box width
LEVEL = 0.25  # edge level between background (0) and fixture core (1)
CLOSE = 0.3  # metal gaps across a row up to this fraction of the coarse width are bridged
NARROW_SWITCH = 1.0  # switch to the narrower width when it has this many times more rows (occluder-centred box)
WIDTH_Q = 50  # body reference width: this percentile of the row widths in the middle of the box
GOOD_MAX = 1.25  # body rows are at most this much wider than the reference
MAJOR_Q = 97  # the major diameter: this percentile of the body rows' widths
PLATFORM_MIN = 0.72  # rows narrower than this fraction of the major diameter end the fixture at the platform


@dataclass
class Frame:
    centre: np.ndarray  # (2,) image point at t = 0, s = 0
    axis: np.ndarray  # (2,) unit, platform -> apex
    normal: np.ndarray  # (2,) unit, box[0] -> box[1] side
    t0: float  # platform end (along the axis, pixels from the centre; negative)
    t1: float  # apex end
    s0: float  # sides across the axis
    s1: float

    @classmethod
    def of(cls, box: np.ndarray) -> "Frame":
        box = np.asarray(box, np.float64).reshape(4, 2)
        top, bottom = (box[0] + box[1]) / 2, (box[2] + box[3]) / 2
        axis = bottom - top
        length = max(float(np.hypot(*axis)), 1e-6)
        axis /= length
        normal = np.array([-axis[1], axis[0]])
        if (box[1] - box[0]) @ normal < 0:
            normal = -normal
        width = float((np.hypot(*(box[1] - box[0])) + np.hypot(*(box[2] - box[3]))) / 2)
        centre = (top + bottom) / 2
        return cls(centre, axis, normal, -length / 2, length / 2, -width / 2, width / 2)

    @property
    def length(self) -> float:
        return self.t1 - self.t0

    @property
    def width(self) -> float:
        return self.s1 - self.s0

    def point(self, t: float, s: float = 0.0) -> np.ndarray:
        """The image point ``t`` along the axis and ``s`` across it."""
        return self.centre + self.axis * t + self.normal * s

    def along(self, point: np.ndarray) -> float:
        """Where ``point`` lies along this frame's axis (its ``t``)."""
        return float((np.asarray(point) - self.centre) @ self.axis)

    def box(self) -> np.ndarray:
        p = self.point
        return np.array([p(self.t0, self.s0), p(self.t0, self.s1), p(self.t1, self.s1), p(self.t1, self.s0)],
                        np.float32)


@dataclass
class Profile:
    """Rows across the axis of a straightened window (row i at t = ts[i])."""

    ts: np.ndarray
    width: np.ndarray  # metal run width per row (pixels; 0 where no run)
    mid: np.ndarray  # run centre per row (pixels across the axis)
    contrast: float  # fixture core minus background, image units


class Pyramid:
    """The image and its Gaussian pyramid (``cv2.pyrDown`` levels, built on first use); level k
    pixel (x, y) is level 0 pixel (x, y) * 2**k."""

    def __init__(self, image: np.ndarray):
        self.levels = [np.ascontiguousarray(image, np.float32)]

    @property
    def image(self) -> np.ndarray:
        return self.levels[0]

    def level(self, k: int) -> np.ndarray:
        while len(self.levels) <= k and min(self.levels[-1].shape) >= 16:
            self.levels.append(cv2.pyrDown(self.levels[-1]))
        return self.levels[min(k, len(self.levels) - 1)]


def straighten(pyr: Pyramid, frame: Frame, t_range: tuple[float, float], s_half: float, step: float) -> np.ndarray:
    """Resample the image on a grid along the frame's axis (rows: t, cols: s), ``step`` pixels apart
    (from the pyramid level whose pixels are at most ``step`` wide: no aliasing of fine threads)."""
    t_lo, t_hi = t_range
    rows, cols = max(2, int(np.ceil((t_hi - t_lo) / step)) + 1), max(2, int(np.ceil(2 * s_half / step)) + 1)
    k = max(0, int(np.floor(np.log2(max(step, 1.0)))))
    img = pyr.level(k)
    f = 1.0 / 2 ** min(k, len(pyr.levels) - 1)
    start = frame.centre + frame.axis * t_lo - frame.normal * s_half
    # destination (col j, row i) -> source point in the level's pixel frame
    m = np.array([
        [frame.normal[0] * step * f, frame.axis[0] * step * f, start[0] * f],
        [frame.normal[1] * step * f, frame.axis[1] * step * f, start[1] * f],
    ])
    return cv2.warpAffine(img, m, (cols, rows), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def profile(pyr: Pyramid, frame: Frame, level: float | None = None) -> Profile | None:
    """Metal run per row across the axis, in a window 1.5 lengths long and 1.8 widths wide."""
    level = LEVEL if level is None else level
    length, width = frame.length, frame.width
    step = max(width / SAMPLES_ACROSS, 0.5)
    s_half = 0.9 * width
    t_lo, t_hi = frame.t0 - 0.25 * length, frame.t1 + 0.25 * length
    win = straighten(pyr, frame, (t_lo, t_hi), s_half, step)
    rows, cols = win.shape
    ts = t_lo + np.arange(rows) * step
    ss = -s_half + np.arange(cols) * step
    s_mid = (frame.s0 + frame.s1) / 2
    body = (ts > frame.t0 + 0.2 * length) & (ts < frame.t1 - 0.2 * length)
    if body.sum() < 2:
        return None
    core = np.abs(ss - s_mid) < 0.2 * width
    side = np.abs(ss - s_mid) > 0.72 * width
    if not core.any() or not side.any():
        return None
    fix = float(np.percentile(win[body][:, core], 70))
    bg = float(np.median(win[body][:, side]))
    if fix - bg < 0.02:
        return None
    thr = bg + level * (fix - bg)
    metal = (win > thr).astype(np.uint8)
    gap = max(3, int(round(CLOSE * width / step)) | 1)  # bridge a connection void or an apex hole
    metal = cv2.morphologyEx(metal, cv2.MORPH_CLOSE, np.ones((1, gap), np.uint8)) > 0
    c = int(np.clip(np.round((s_mid + s_half) / step), 1, cols - 2))
    on = metal[:, c]
    # run through column c: a = first metal column of the run, b = last
    a = c - np.argmax(~metal[:, c::-1], axis=1) + 1
    a = np.where(metal[:, : c + 1].all(1), 0, a)
    b = c + np.argmax(~metal[:, c:], axis=1) - 1
    b = np.where(metal[:, c:].all(1), cols - 1, b)
    idx = np.arange(rows)
    am, bp = np.maximum(a - 1, 0), np.minimum(b + 1, cols - 1)
    va, vam, vb, vbp = win[idx, a], win[idx, am], win[idx, b], win[idx, bp]
    left = np.where(a > 0, a - (va - thr) / np.maximum(va - vam, 1e-6), a - 0.5)
    right = np.where(b < cols - 1, b + (vb - thr) / np.maximum(vb - vbp, 1e-6), b + 0.5)
    left, right = np.clip(left, a - 1, a), np.clip(right, b, b + 1)
    width_px = np.where(on, (right - left) * step, 0.0)
    mid = np.where(on, -s_half + (left + right) / 2 * step, s_mid)
    return Profile(ts, width_px, mid, fix - bg)


def _body_rows(p: Profile, frame: Frame) -> tuple[np.ndarray, float] | None:
    """Rows of the fixture body in the middle 70 % of the frame, and their reference width.

    The reference is a low quantile of the row widths: an occluder or crown spilling into the frame
    only adds wider rows, so the body's own width stays the reference."""
    body = (p.ts > frame.t0 + 0.15 * frame.length) & (p.ts < frame.t1 - 0.15 * frame.length) & (p.width > 0)
    if body.sum() < 4:
        return None
    w_ref = float(np.percentile(p.width[body], WIDTH_Q))
    good = body & (p.width > 0.6 * w_ref) & (p.width < GOOD_MAX * w_ref)
    if NARROW_SWITCH > 0:
        # a box centred on an occluder: its wide rows are the majority of the middle, but more rows
        # of a narrower, steady width (the fixture) run through the whole window
        allrows = (p.width > 0) & (np.abs(p.ts - (frame.t0 + frame.t1) / 2) < 0.75 * frame.length)
        narrow = allrows & (p.width > 0.25 * w_ref) & (p.width < 0.6 * w_ref)
        if narrow.sum() > NARROW_SWITCH * max(good.sum(), 1):
            w_ref = float(np.median(p.width[narrow]))
            good = allrows & (p.width > 0.6 * w_ref) & (p.width < GOOD_MAX * w_ref)
    if good.sum() < 4:
        return None
    return good, w_ref


def _fit_axis(p: Profile, frame: Frame) -> tuple[float, float] | None:
    """Line s = a + b t through the run centres of body rows (robust); None when too few rows."""
    rows = _body_rows(p, frame)
    if rows is None:
        return None
    good, w_ref = rows
    t, s = p.ts[good], p.mid[good]
    keep = np.ones(len(t), bool)
    for _ in range(2):
        b, a = np.polyfit(t[keep], s[keep], 1)
        res = np.abs(s - (a + b * t))
        mad = float(np.median(res[keep])) + 1e-3
        keep = res < max(3 * mad, 0.03 * w_ref)
        if keep.sum() < 4:
            return None
    b, a = np.polyfit(t[keep], s[keep], 1)
    return float(a), float(b)


def _ends(p: Profile, frame: Frame, w_major: float, mid: float,
          good: np.ndarray) -> tuple[tuple[float, bool], tuple[float, bool]]:
    """Walk from the middle of the fixture to each end while rows look like fixture body.

    Rows much wider than the body (an occluder, text, a crown) are crossed when body rows resume
    beyond them; a run of narrow or empty rows (past the apex, an abutment) ends the walk. Each end
    comes with a flag: True when the fixture may go on under wider metal there (an occluder)."""
    rows = len(p.ts)
    step = float(p.ts[1] - p.ts[0]) if rows > 1 else 1.0
    centred = np.abs(p.mid - mid) < 0.25 * w_major
    # start from the body row nearest the middle (the middle itself may be under an occluder)
    start = int(np.argmin(np.where(good, np.abs(p.ts - (frame.t0 + frame.t1) / 2), np.inf)))
    gap_max = max(1, int(round(0.03 * frame.length / step)))
    wide_max = max(2, int(round(0.35 * frame.length / step)))

    def walk(direction: int, lo: float, hi: float) -> tuple[float, bool]:
        i, last, narrow, wide = start, start, 0, 0
        while 0 <= i + direction < rows:
            i += direction
            w = p.width[i]
            if centred[i] and lo * w_major <= w <= hi * w_major:
                last, narrow, wide = i, 0, 0
            elif w > hi * w_major or (w >= lo * w_major and not centred[i]):
                wide += 1
                if wide > wide_max:
                    break
            else:
                narrow += 1
                if narrow > gap_max:
                    break
        nxt = last + direction
        covered = 0 <= nxt < rows and bool(p.width[nxt] > hi * w_major
                                           or (p.width[nxt] >= lo * w_major and not centred[nxt]))
        return float(p.ts[last]) + direction * step / 2, covered

    return walk(-1, PLATFORM_MIN, 1.22), walk(+1, 0.12, 1.22)


def refine(image: "np.ndarray | Pyramid", box: np.ndarray, iterations: int = 2) -> tuple[np.ndarray, float] | None:
    """A refined box (same platform end) and a quality in [0, 1]; None when the image gives no
    clear fixture there (too little contrast, too few rows)."""
    frame = Frame.of(box)
    if frame.length < 4 or frame.width < 2:
        return None
    img = image if isinstance(image, Pyramid) else Pyramid(np.asarray(image, np.float32))
    for _ in range(iterations):
        p = profile(img, frame)
        if p is None:
            return None
        fit = _fit_axis(p, frame)
        if fit is None:
            return None
        a, b = fit
        centre = frame.centre + frame.normal * a
        axis = frame.axis + frame.normal * b
        axis /= np.hypot(*axis)
        normal = np.array([-axis[1], axis[0]])
        if normal @ frame.normal < 0:
            normal = -normal
        half = frame.width / 2
        frame = Frame(centre, axis, normal, frame.t0, frame.t1, -half, half)
    p = profile(img, frame)
    if p is None:
        return None
    rows = _body_rows(p, frame)
    if rows is None:
        return None
    good, _ = rows
    w_major = float(np.percentile(p.width[good], MAJOR_Q))
    mid = float(np.median(p.mid[good]))
    (t0, cov0), (t1, cov1) = _ends(p, frame, w_major, mid, good)
    # an end that disappears under wider metal (occluder, cone cut): the fixture may go on beneath
    # it, as far as the net saw it
    c = Frame.of(box)
    if cov1:
        t1 = max(t1, frame.along(c.point(c.t1 - 0.05 * c.length)))
    if cov0:
        t0 = min(t0, frame.along(c.point(c.t0 + 0.05 * c.length)))
    quality = min(1.0, float(good.sum() / max(np.count_nonzero(np.abs(p.ts) < 0.35 * frame.length), 1)))
    out = Frame(frame.centre + frame.normal * mid, frame.axis, frame.normal, t0, t1, -w_major / 2, w_major / 2)
    return out.box(), quality


def shrink(box: np.ndarray, width: float = 0.87, ends: float = 0.05) -> np.ndarray:
    """A coarse net box pulled in to its typical size (the net's maps overshoot the fixture)."""
    f = Frame.of(box)
    cut = ends * f.length
    half = f.width * width / 2
    return Frame(f.centre, f.axis, f.normal, f.t0 + cut, f.t1 - cut, -half, half).box()


def limit_platform(box: np.ndarray, coarse: np.ndarray, slack: float) -> np.ndarray:
    """Keep the refined platform edge within ``slack`` lengths beyond the coarse one (a healing cap
    or abutment as wide as the fixture would otherwise extend it)."""
    f, c = Frame.of(box), Frame.of(coarse)
    t_coarse = f.along(c.point(c.t0))
    limit = t_coarse - slack * c.length
    if f.t0 < limit < f.t1:
        f.t0 = limit
    return f.box()


@dataclass
class Window:
    """A box's straightened neighbourhood for reading what lies beyond its ends: the sampling (step,
    half-width, column positions), the fixture's core columns and the columns beside it, and the core's
    and the bone's levels over the middle 60 % of the box."""

    frame: Frame
    step: float
    s_half: float
    ss: np.ndarray  # column positions across the axis
    fix: float  # fixture core level (70th percentile of the core columns)
    bg: float  # bone beside the fixture (median of the side columns)

    @property
    def core(self) -> np.ndarray:
        return np.abs(self.ss) < 0.2 * self.frame.width

    @property
    def side(self) -> np.ndarray:
        return np.abs(self.ss) > 0.72 * self.frame.width

    @classmethod
    def of(cls, pyr: Pyramid, box: np.ndarray) -> "Window | None":
        """None for a box too small to read, or without contrast between fixture and bone."""
        f = Frame.of(box)
        if f.length < 8 or f.width < 3:
            return None
        step, s_half = max(f.width / SAMPLES_ACROSS, 0.5), 0.9 * f.width
        inside = straighten(pyr, f, (f.t0 + 0.2 * f.length, f.t1 - 0.2 * f.length), s_half, step)
        w = cls(f, step, s_half, -s_half + np.arange(inside.shape[1]) * step, 0.0, 0.0)
        w.fix, w.bg = float(np.percentile(inside[:, w.core], 70)), float(np.median(inside[:, w.side]))
        return w if w.fix - w.bg >= 0.02 else None

    def rows(self, pyr: Pyramid, t_lo: float, t_hi: float) -> np.ndarray:
        """The straightened rows from ``t_lo`` to ``t_hi`` along the axis."""
        return straighten(pyr, self.frame, (t_lo, t_hi), self.s_half, self.step)


UNDER_MIN, UNDER_MAX = 0.15, 1.0  # a bright run beyond the apex this long (box lengths) is an occluder
UNDER_SHARE = 0.5  # the hidden apex is taken this far into it (its middle)


def under_occluder(pyr: Pyramid, box: np.ndarray) -> np.ndarray:
    """``box`` with its apex moved under an occluder that starts at the apex: metal as bright as the
    fixture's core that runs on along the axis beyond the apex and stops again within a box length
    (an amalgam blob, a metal object), where the fixture goes on unseen. The apex is put in the
    occluder's middle: without a prior, the least-worst guess. Unchanged otherwise. (The same at the
    platform end took crowns sitting on the fixture for occluders: held-out recall 96.5 -> 95.9 %.)"""
    w = Window.of(pyr, box)
    if w is None:
        return box
    f = w.frame
    beyond = w.rows(pyr, f.t1, f.t1 + UNDER_MAX * f.length)
    bright = np.median(beyond[:, w.core], axis=1) > w.bg + 0.5 * (w.fix - w.bg)
    run = _bright_run(bright, max(1, int(round(0.05 * f.length / w.step))))
    if run is None or run * w.step < UNDER_MIN * f.length:
        return box
    return Frame(f.centre, f.axis, f.normal, f.t0, f.t1 + UNDER_SHARE * run * w.step, f.s0, f.s1).box()


def _bright_run(bright: np.ndarray, lead: int) -> int | None:
    """Rows of the bright run that starts within the first ``lead`` rows and ends (three dark rows in
    a row) inside the window; None when there is no such run."""
    if not bright[:lead].any():
        return None
    first = int(np.argmax(bright))
    dark = np.flatnonzero(~bright[first:]) + first
    return next((int(i) for i in dark if i + 2 < len(bright) and not bright[i:i + 3].any()), None)


CONE_SHARE = 0.25  # a cone cut over an end hides about this fraction of the visible length (synthetic range 18-43 %)
CONE_PAST = 0.9  # share of the film beyond the end (0.05-0.35 lengths out, CONE_WIDE fixture widths to either side)
# as bright as the core: a cone cut
CONE_WIDE = 3.0  # a cut's edge crosses the film; a crown or abutment seated on the platform (about twice the fixture's
# width) fills only the middle (0.9 widths until session 34: 18 of the 21 cuts it found on seed 7000 were crowns)


def under_cone_cut(pyr: Pyramid, box: np.ndarray) -> np.ndarray:
    """``box`` with an end moved out into a cone cut that starts right at it: the last tenth of the box
    at that end still shows the fixture, and beyond it the film is unexposed (as bright as the fixture's
    core, across ``CONE_PAST`` of it, ``CONE_WIDE`` widths to either side of the axis) - the fixture goes on
    under the cut."""
    w = Window.of(pyr, box)
    if w is None:
        return box
    f = w.frame
    ends = {}
    for sign, end in ((-1, f.t0), (1, f.t1)):
        near = w.rows(pyr, *sorted((end - sign * 0.1 * f.length, end)))
        past = straighten(pyr, f, tuple(sorted((end + sign * 0.05 * f.length, end + sign * 0.35 * f.length))),
                          CONE_WIDE * f.width, w.step)
        cut = (near >= w.fix).mean() < 0.9 and (past >= w.fix).mean() >= CONE_PAST
        ends[sign] = end + sign * CONE_SHARE * f.length if cut else end
    return Frame(f.centre, f.axis, f.normal, ends[-1], ends[1], f.s0, f.s1).box()


def wide_beyond_platform(pyr: Pyramid, box: np.ndarray, reach: float = 0.1) -> float:
    """Share of the rows just beyond ``box``'s platform edge (``reach`` lengths) where metal as bright
    as the fixture's core spreads wider than the fixture on both sides: an occluder or a crown sitting
    right on it, not an abutment (narrower) or bone."""
    w = Window.of(pyr, box)
    if w is None:
        return 0.0
    f, level = w.frame, w.bg + 0.5 * (w.fix - w.bg)
    rows = w.rows(pyr, f.t0 - reach * f.length, f.t0)
    left, right = rows[:, w.side & (w.ss < 0)], rows[:, w.side & (w.ss > 0)]
    wide = (np.median(left, 1) > level) & (np.median(right, 1) > level) & (np.median(rows[:, w.core], 1) > level)
    return float(wide.mean())
