"""Pre-render canonical training crops of random (non-catalog) systems to ``.npz`` shards."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import structlog

from raiox.kit.errors import RaioxError, first_line
from raiox.vision.canonical import CROP_H, CROP_W, canonical_crop

log = structlog.get_logger(__name__)
FAMILY = 4  # look-alike family size: consecutive class ids share a base design


def jitter_box(box: np.ndarray, rng: np.random.Generator, amount: float = 0.04) -> np.ndarray:
    """The ground-truth box moved a little (size, shift, a degree or two), as a detector returns it."""
    box = np.asarray(box, np.float64)
    centre = box.mean(0)
    across, axis = box[1] - box[0], box[3] - box[0]
    rel = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]) * (1 + rng.normal(0, amount, 2))
    pts = centre + (rel + rng.normal(0, amount, 2))[:, :1] * across + (rel + rng.normal(0, amount, 2))[:, 1:] * axis
    a = np.deg2rad(rng.normal(0, 1.5))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (centre + (pts - centre) @ rot.T).astype(np.float32)


def redraw_box(box: np.ndarray, platform: float, apex: float, width: float, lateral: float,
               angle_deg: float) -> np.ndarray:
    """``box`` (platform edge first) with its platform and apex edges moved along the axis by those
    fractions of its length, its width scaled by ``width``, shifted sideways by ``lateral`` widths and
    turned by ``angle_deg`` about the centre: the kinds of error a localiser makes."""
    from raiox.vision.refine import Frame

    f = Frame.of(box)
    t0, t1 = f.t0 + f.length * platform, f.t1 + f.length * apex
    half = f.width / 2 * width
    ang = np.deg2rad(angle_deg)
    axis = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]]) @ f.axis
    normal = np.array([-axis[1], axis[0]]) * (1 if np.array([-axis[1], axis[0]]) @ f.normal > 0 else -1)
    c = f.centre + f.normal * f.width * lateral
    return np.array([c + axis * t0 - normal * half, c + axis * t0 + normal * half,
                     c + axis * t1 + normal * half, c + axis * t1 - normal * half], np.float32)


def located_box(box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The ground-truth box as the shipped localiser returns it (errors measured on the demo-catalog
    evaluation, session 6): ends within a few percent of the length, but one box in seven with an end
    10-25 % off (an occluder, a crown or a neighbour taken for the fixture, or an end cut short), widths
    about 5 % narrow with a spread of about 7 %, a little lateral shift and tilt."""

    def end_error(cut_sign: float) -> float:
        if rng.random() < 0.15:  # the long tail: cut short (cut_sign) or run on into something else
            return float(rng.uniform(0.1, 0.25) * cut_sign if rng.random() < 0.6
                         else -rng.uniform(0.05, 0.12) * cut_sign)
        return float(rng.normal(0, 0.025))

    platform, apex = end_error(+1.0), end_error(-1.0)  # positive moves the platform edge in, negative the apex
    width = float(np.clip(rng.normal(0.95, 0.07), 0.75, 1.25))
    angle = float(rng.normal(0, 1.5))
    return redraw_box(box, platform, apex, width, float(rng.normal(0, 0.03)), angle)


JITTERS = {"gt": jitter_box, "located": located_box}  # how a training crop's box is disturbed


def save_npz(path: Path, **arrays) -> None:
    """``arrays`` compressed to ``path`` through a temporary file: a reader, or a resumed run that skips what
    exists, never meets a half-written file."""
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


NPZ_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # how a zip archive (an .npz) starts: its first entry, or none


class UnreadableData(RaioxError):
    """A data file (``.npz`` shard or cache) that cannot be read: cut short, not an ``.npz``, or without an array
    its reader needs. The ``raiox`` command ends with its one-line message (exit 1), not a traceback."""


def load_npz(path: Path, *keys: str, allow_pickle: bool = False) -> dict[str, np.ndarray]:
    """The arrays ``keys`` (all when none) of the ``.npz`` file ``path``, read now, so that a damaged file is an
    ``UnreadableData`` naming it (rendered files are written whole, ``save_npz``: one that is damaged was cut
    short some other way, and is rendered again once deleted). A file that is not there stays an OSError."""
    with open(path, "rb") as file:  # a file that is not there, or not readable: the OS's own error
        zipped = file.read(4) in NPZ_MAGIC
    try:
        if not zipped:  # (never handed to np.load, which would try it as a pickle)
            raise ValueError("not an .npz archive")
        with np.load(path, allow_pickle=allow_pickle) as data:
            return {key: data[key] for key in (keys or data.files)}
    except OSError as exc:
        if exc.errno is not None:  # missing, unreadable, a folder: the OS's own error
            raise
        why = first_line(exc)
    except KeyError as exc:
        why = str(exc.args[0]) if exc.args else "an array is missing"  # numpy's "K is not a file in the archive"
    except Exception as exc:  # noqa: BLE001 - zip, zlib, pickle and numpy's format errors share no base class
        why = first_line(exc)
    raise UnreadableData(f"{path}: not a readable data file ({why}); delete it and render it again")


def load_json(path: Path, hint: str = "delete it and render it again") -> dict:
    """The JSON object in ``path`` (a dataset's ``meta.json``, a run's ``train-state.json``); one that is damaged
    (cut short, not UTF-8 or JSON, not an object) is an ``UnreadableData`` naming it, and what to do (``hint``).
    A file that is not there stays an OSError."""
    raw = path.read_bytes()
    try:
        value = json.loads(raw.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError, JSONDecodeError
        why = first_line(exc)
    else:
        if isinstance(value, dict):
            return value
        why = f"a JSON {type(value).__name__}, not an object"
    raise UnreadableData(f"{path}: not a readable JSON file ({why}); {hint}")


RESUME_HINT = "delete it to start the run over"  # a run's own checkpoint (ckpt.pt): resumed from, else begun anew


def load_checkpoint(path: Path, *keys: str, map_location=None, hint: str = "") -> dict:
    """The torch checkpoint ``path`` (a dict holding ``keys``); one that is damaged (cut short, not a checkpoint,
    another kind of checkpoint) is an ``UnreadableData`` naming it (then ``hint``), not torch's traceback. A file that
    is not there stays an OSError."""
    import torch

    try:
        saved = torch.load(path, map_location=map_location, weights_only=False)
    except OSError as exc:
        if exc.errno is not None:  # missing, unreadable, a folder: the OS's own error
            raise
        why = first_line(exc)
    except Exception as exc:  # noqa: BLE001 - zip, pickle and torch's own errors share no base class
        why = first_line(exc).split(". ")[0]  # torch's zip errors go on with advice in the same line
    else:
        if not isinstance(saved, dict):
            why = f"a {type(saved).__name__}, not a checkpoint"
        elif missing := [key for key in keys if key not in saved]:
            why = f"no {missing[0]!r} in it: a checkpoint of another kind"
        else:
            return saved
    raise UnreadableData(f"{path}: not a readable checkpoint ({why}){f'; {hint}' if hint else ''}")


def load_weights(net, weights: dict, source: Path) -> None:
    """``net.load_state_dict(weights)``; weights of another network (the checkpoint ``source`` of another model or
    size) are an ``UnreadableData`` naming the file, not torch's list of every key."""
    try:
        net.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as exc:  # missing / unexpected keys, sizes; not a state dict
        raise UnreadableData(f"{source}: its weights do not fit this network ({state_dict_error(exc)})") from None


def state_dict_error(exc: BaseException, most: int = 200) -> str:
    """torch's ``load_state_dict`` error in one line ("Error(s) in loading state_dict for Net: Missing key(s) ..."),
    cut after MOST characters (it lists every key)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= most else text[: most - 3] + "..."


def shard_files(folder: Path, pattern: str) -> list[Path]:
    """The finished shards matching ``pattern`` in ``folder``, sorted: a ``.tmp.npz`` that an interrupted
    ``save_npz`` left behind is not one."""
    return sorted(p for p in folder.glob(pattern) if not p.name.endswith(".tmp.npz"))


def run_shards(render, args: list[tuple], jobs: int = 1) -> list:
    """``render(*a)`` for every ``a`` in ``args`` (one shard each), in ``jobs`` processes when > 1."""
    if jobs > 1 and len(args) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as pool:
            return list(pool.map(render, *zip(*args)))
    return [render(*a) for a in args]


def render_dataset(out: Path, classes: int, per_class: int, shard_size: int = 100, seed: int = 0, jobs: int = 1,
                   size: tuple[int, int] = (288, 144), jitter: str = "gt",
                   crop: tuple[int, int] = (CROP_H, CROP_W), physical: bool = True) -> int:
    """Render ``classes`` random systems x ``per_class`` crops into ``out/shard-*.npz`` (resumable).

    Shards are independent (each seeded by ``(seed, first class)``), so ``jobs`` processes render
    them in parallel and a rerun only renders the shards that are missing. ``jitter``: how 80 % of the
    crops' boxes are disturbed (``JITTERS``: "gt" small Gaussian errors, "located" the localiser's).
    ``physical``: systems and size variants only where the body holds the connection (``holds_connection``);
    False draws as datasets did before session 18. A dataset keeps the rule its ``meta.json`` records (none
    recorded: the old one), so resuming never mixes the two.
    """
    out.mkdir(parents=True, exist_ok=True)
    if (out / "meta.json").exists():
        physical = physical_rule(load_json(out / "meta.json"))
    meta = {"classes": classes, "per_class": per_class, "seed": seed, "size": list(size), "shard_size": shard_size,
            "renderer": "raiox.synth.render_fixture_crop", "jitter": jitter,
            "crop": list(crop), "physical": physical}
    todo = [s for s in range(0, classes, shard_size) if not (out / f"shard-{s // shard_size:03d}.npz").exists()]
    # rendered already (maybe larger, or in other shards): its meta stays, dataset_specs reads it
    describe = bool(todo) or not (out / "meta.json").exists()
    if describe:
        (out / "meta.json").write_text(json.dumps(meta))
    args = [(out, s, min(shard_size, classes - s), shard_size, per_class, seed, tuple(size), jitter, tuple(crop),
             physical) for s in todo]
    run_shards(_render_shard, args, jobs)
    total = sum(len(load_npz(p, "labels")["labels"]) for p in shard_files(out, "shard-*.npz"))
    if describe:
        (out / "meta.json").write_text(json.dumps({**meta, "crops": total}))
    return total


def _render_shard(out: Path, first: int, count: int, shard_size: int, per_class: int, seed: int,
                  size: tuple[int, int], jitter: str, crop: tuple[int, int], physical: bool) -> int:
    """One shard: ``count`` systems (labels ``first..first+count-1``) x ``per_class`` crops."""
    from raiox.synth import render_fixture_crop

    from raiox.vision.synthbridge import train_conditions

    path = out / f"shard-{first // shard_size:03d}.npz"
    t0, crops, labels = time.time(), [], []
    specs, rng = shard_specs(seed, first, count, physical=physical)
    for k, spec in enumerate(specs):
        for j in range(per_class):
            d = float(np.clip(spec["diameter_mm"] + rng.choice([-0.5, -0.3, 0, 0, 0.4, 0.8]), 2.9, 6.0))
            length = float(np.clip(spec["length_mm"] * rng.uniform(0.7, 1.3), 6.0, 18.0))
            sized = _resized(spec, d, length, physical) if j else spec
            try:
                sc = render_fixture_crop(sized, seed=int(rng.integers(2**31)), conditions=train_conditions(rng),
                                         size=size)
            except Exception as exc:  # a spec the renderer rejects at some size: skip that render
                log.warning("datagen.skip", error=str(exc))
                continue
            box = JITTERS[jitter](sc.boxes[0], rng) if rng.random() < 0.8 else sc.boxes[0]
            crops.append((canonical_crop(sc.image, box, crop) * 255).round().astype(np.uint8))
            labels.append(first + k)
    save_npz(path, crops=np.stack(crops), labels=np.array(labels, np.int32))
    log.info("datagen.shard", path=str(path), crops=len(labels), seconds=round(time.time() - t0, 1))
    return len(labels)


def physical_rule(meta: dict) -> bool:
    """The spec rule a dataset's ``meta.json`` records; none recorded: drawn before session 18, the old way."""
    return bool(meta.get("physical", False))


def _resized(spec: dict, diameter: float, length: float, physical: bool) -> dict:
    """``spec`` at the drawn size; with ``physical`` the first of that size, the base diameter at the drawn length
    and the base size whose body holds the connection (the base size does: ``shard_specs``)."""
    from raiox.synth import with_size

    from raiox.vision.synthbridge import holds_connection

    sized = with_size(spec, diameter, length)
    if not physical or holds_connection(sized):
        return sized
    sized = with_size(spec, spec["diameter_mm"], length)
    return sized if holds_connection(sized) else spec


def shard_specs(seed: int, first: int, count: int, demo: frozenset | None = None,
                physical: bool = False) -> tuple[list[dict], np.random.Generator]:
    """The ``count`` random systems of the shard whose first class is ``first`` (look-alike families of
    ``FAMILY``, none like a demo catalog system: ``demo`` holds their signatures, drawn when None; with
    ``physical`` none whose body cannot hold its connection), and the shard's generator after drawing them
    (its renders draw on from there). Cheap: the specs of any rendered shard can be drawn again from its seed."""
    from raiox.synth import validate_spec

    from raiox.vision.synthbridge import family, holds_connection, is_demo_like

    demo = demo_signatures() if demo is None else demo
    rng = np.random.default_rng([seed, first])
    specs: list[dict] = []
    while len(specs) < count:
        for s in family(rng, FAMILY):
            try:
                validate_spec(s)
            except Exception:
                continue
            if not is_demo_like(s, demo) and (not physical or holds_connection(s)):
                specs.append(s)
    return specs[:count], rng


def demo_signatures() -> frozenset:
    from raiox.synth import demo_catalog

    from raiox.vision.synthbridge import signature

    return frozenset(signature(s.spec) for s in demo_catalog())


def dataset_specs(data_dir: Path) -> list[dict]:
    """The spec of every class of a rendered dataset (index = label), drawn again from its ``meta.json``."""
    meta = load_json(data_dir / "meta.json")
    size = (meta.get("shard_size")  # older data: one shard's classes
            or int(load_npz(data_dir / "shard-000.npz", "labels")["labels"].max()) + 1)
    demo = demo_signatures()
    return [spec for first in range(0, meta["classes"], size)
            for spec in shard_specs(meta["seed"], first, min(size, meta["classes"] - first), demo,
                                    physical=physical_rule(meta))[0]]
