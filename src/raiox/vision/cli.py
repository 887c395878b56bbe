"""`raiox vision ...`: render training data, train, evaluate and export embedding models."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

app = typer.Typer(help="Implant localisation and embedding models.", no_args_is_help=True)


@app.command("render-data")
def render_data(
    out: Path = typer.Option(Path("runs/v1"), "--out", help="training folder; crops go to OUT/data"),
    classes: int = typer.Option(1200, min=1, help="random training systems (specs sampled from the schema ranges)"),
    per_class: int = typer.Option(10, min=1, help="renders per training system"),
    shard_size: int = typer.Option(100, min=1, help="systems per shard file (rendering resumes per shard)"),
    seed: int = typer.Option(0),
    jobs: int = typer.Option(1, min=1, help="processes rendering shards in parallel"),
    jitter: str = typer.Option("gt", help="box errors of the crops: gt (small Gaussian) or located (the localiser's, "
                                          "long tails included)"),
    crop: str = typer.Option("192x64", help="canonical crop ROWSxCOLS (the embedder's input; rows a multiple of 16 "
                                            "from 192 to 384)"),
    physical: bool = typer.Option(True, "--physical/--legacy-sizes", help="only systems and sizes whose body holds "
                                  "the connection (--legacy-sizes: as datasets before session 18); an existing "
                                  "dataset keeps the rule its meta.json records"),
) -> None:
    """Pre-render canonical training crops of random systems, disjoint from the demo catalog."""
    from raiox.vision.datagen import JITTERS, render_dataset

    if jitter not in JITTERS:
        raise typer.BadParameter(f"--jitter must be one of {', '.join(JITTERS)}")
    total = render_dataset(out / "data", classes=classes, per_class=per_class, shard_size=shard_size, seed=seed,
                           jobs=jobs, jitter=jitter, crop=_crop_size(crop), physical=physical)
    typer.echo(f"{total} crops in {out / 'data'}")


@app.command("render-located")
def render_located(
    out: Path = typer.Option(Path("runs/v1"), "--out",
                             help="training folder whose OUT/data (render-data) gets the crops"),
    scenes: int = typer.Option(15000, min=1, help="scenes of 1-3 of the dataset's systems to render, locate and crop"),
    seed: int = typer.Option(0),
    jobs: int = typer.Option(1, min=1, help="processes rendering shards in parallel"),
) -> None:
    """Training crops cut where the shipped localiser finds the dataset's systems in whole scenes."""
    from raiox.vision.locdata import render_located as run

    total = run(out / "data", scenes, seed=seed, jobs=jobs)
    typer.echo(f"{total} located crops in {out / 'data'}")


def _embedder(spec: str | None):
    """The embedder ``spec`` names (None: the configured one). One that cannot be built (unknown name, missing or
    broken model file) is refused as a bad --embedder, or, when none was given, is a configuration error naming
    RAIOX_EMBEDDER: one line, not a traceback."""
    from raiox.kit.errors import ConfigError, first_line
    from raiox.vision import get_embedder

    try:
        return get_embedder(spec)
    except Exception as exc:  # noqa: BLE001 - ValueError (unknown name), OSError, ConfigError, open_clip's errors
        if spec is not None:
            raise typer.BadParameter(first_line(exc), param_hint="--embedder") from None
        if isinstance(exc, ConfigError):
            raise
        from raiox.kit.settings import get_settings

        raise ConfigError(f"RAIOX_EMBEDDER={get_settings().embedder!r} cannot be loaded: {first_line(exc)}") from None


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        widths = ()
    if len(widths) != 3 or min(widths) < 1:
        raise typer.BadParameter(f"three positive channel counts, e.g. 32,64,128 (got {text!r})", param_hint="--widths")
    return widths


def _crop_size(text: str) -> tuple[int, int]:
    rows, _, cols = text.lower().partition("x")
    if not (rows.isdigit() and cols.isdigit()) or int(rows) % 16 or not 192 <= int(rows) <= 384 or int(cols) < 16:
        raise typer.BadParameter("--crop must be ROWSxCOLS with rows a multiple of 16 from 192 to 384 (the net "
                                 f"averages its 1/16-scale map down to 12 rows), got {text!r}")
    return int(rows), int(cols)


@app.command()
def train(
    out: Path = typer.Option(Path("runs/v1"), "--out", help="training folder (data, checkpoints, model)"),
    steps: int = typer.Option(6000, min=0, help="optimiser steps in total (a rerun continues to this many)"),
    batch: int = typer.Option(96, min=1),
    lr: float = typer.Option(2e-3),
    seed: int = typer.Option(0),
    device: str = typer.Option("cpu", help="cpu or cuda"),
    threads: int = typer.Option(2, min=1, help="torch CPU threads"),
    classes: int = typer.Option(1200, min=1, help="training systems to render if OUT/data is empty"),
    per_class: int = typer.Option(10, min=1),
    install: bool = typer.Option(False, help="copy the model and card into the package (raiox/vision/models)"),
    restart_schedule: bool = typer.Option(False, help="on resume keep the weights but start a new warm-up + cosine "
                                                      "to --steps (once: rerunning the same command after a stop "
                                                      "resumes it)"),
    init_from: Path = typer.Option(None, exists=True, dir_okay=False,
                                   help="start a new run from this checkpoint's network weights (fine-tune), or "
                                        "from an exported model (.onnx: its weights, class centres imprinted)"),
    jobs: int = typer.Option(1, min=1, help="processes rendering training data in parallel"),
    crop: str = typer.Option("192x64", help="canonical crop ROWSxCOLS of data rendered here (see render-data)"),
    name: str = typer.Option("raiox-v1", help="model name: OUT/NAME.onnx and NAME.md (the embedder id once installed)"),
    attribute_weight: float = typer.Option(0.0, help="> 0: also train a classifier per design feature (connection, "
                                                     "cone angle, apex, thread, collar) on the embedding, this weight "
                                                     "x their mean loss added to ArcFace's (raiox.vision.attributes)"),
    located_copies: int = typer.Option(1, min=1, help="draw the located crops of OUT/data (render-located) this many "
                                       "times as often as the others"),
    checkpoint_every: float = typer.Option(180.0, min=0.0, help="seconds between validations + checkpoints (each "
                                                               "costs about a minute on 2 CPU threads at full size)"),
    widths: str = typer.Option("32,64,128", help="channels of the network's three residual blocks (raiox-v1 to "
                               "v11: 32,64,128; wider costs about the square of the factor per step)"),
    bf16: bool = typer.Option(False, "--bf16/--fp32", help="the network's forward pass in bfloat16 (autocast; the "
                              "loss, weights and exported model stay float32): about twice the steps per second on "
                              "CPUs with AMX or AVX-512 BF16 (docs/vision.md)"),
    time_budget: float = typer.Option(0.0, min=0.0, help="seconds this run may train (0: no limit): after 100 "
                                      "steps it measures its pace and ends the cosine schedule where the budget "
                                      "runs out, fewer steps than --steps if need be (a timed GPU lease)"),
) -> None:
    """Train the fixture embedder with ArcFace on synthetic renders; resumable; writes ONNX + card."""
    from raiox.vision.card import write_card
    from raiox.vision.datagen import render_dataset
    from raiox.vision.train import ResumeError, TrainConfig, train as run

    import re

    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):  # checked before the (long) rendering, like every option
        raise typer.BadParameter(f"cpu, cuda or cuda:N (got {device!r})", param_hint="--device")
    channels, size = _widths(widths), _crop_size(crop)
    render_dataset(out / "data", classes=classes, per_class=per_class, seed=seed, jobs=jobs, crop=size)  # done: no-op
    cfg = TrainConfig(out=out, steps=steps, batch=batch, lr=lr, seed=seed, device=device, threads=threads,
                      restart_schedule=restart_schedule, init_from=init_from, model_name=name,
                      attribute_weight=attribute_weight, located_copies=located_copies,
                      checkpoint_every_s=checkpoint_every, bf16=bf16, widths=channels,
                      extra={"time_budget_s": time_budget} if time_budget else {})
    try:
        onnx_path = run(cfg)
    except ResumeError as exc:
        raise typer.BadParameter(str(exc), param_hint=exc.option) from exc
    card = write_card(out, onnx_path)
    typer.echo(f"wrote {onnx_path} and {card}")
    if install:
        from raiox.vision.card import install_model

        typer.echo(f"installed {install_model(onnx_path, card)}")


@app.command("train-locator")
def train_locator(
    out: Path = typer.Option(Path("runs/loc"), "--out", help="folder for scenes, checkpoints and the model"),
    scenes: int = typer.Option(500, min=1, help="training scenes to render if OUT/scenes is short"),
    steps: int = typer.Option(600, min=0, help="training steps (0: render the scenes only)"),
    seed: int = typer.Option(0),
    threads: int = typer.Option(1, min=1, help="torch CPU threads"),
    width: float = typer.Option(2.0, help="channel multiplier (1 = 8/16/24 channels; the shipped locator-v2 is 2)"),
    lr: float = typer.Option(3e-3, help="peak learning rate (one-cycle)"),
    occlusion: float = typer.Option(0.5, help="share of scenes with one fixture partly covered (10-30 %)"),
    jobs: int = typer.Option(1, min=1, help="processes rendering scenes in parallel"),
    hard: float = typer.Option(0.0, help="share of scenes under one of the evaluation's hard conditions (noise, "
                                         "blur, angulation beyond the renderer's defaults; occlusion)"),
    warm_start: Path = typer.Option(None, "--warm-start", exists=True, dir_okay=False,
                                    help="a checkpoint (locator-ckpt.pt) to start from: a new schedule of --steps on "
                                         "these scenes"),
    install: bool = typer.Option(False, help="copy the trained model into the package as the shipped localiser "
                                             "(raiox.vision.locator.MODEL_FILE)"),
) -> None:
    """Train the learned fixture localiser on synth scenes of random systems (resumable)."""
    import shutil

    from raiox.vision import locnet
    from raiox.vision.locator import MODEL_FILE

    rendered = locnet.render_scenes(out / "scenes", scenes, seed=seed, occlusion=occlusion, jobs=jobs, hard=hard)
    if steps <= 0:
        typer.echo(f"{rendered} scenes in {out / 'scenes'}; no training (--steps 0)")
        return
    path = locnet.train_locator(out, steps=steps, lr=lr, seed=seed, threads=threads, width=width, warm_start=warm_start)
    typer.echo(f"wrote {path}")
    if install:
        target = Path(__file__).parent / "models"
        shutil.copy2(path, target / MODEL_FILE)
        typer.echo(f"installed {target / MODEL_FILE}")


@app.command("train-ends")
def train_ends(
    out: Path = typer.Option(Path("runs/ends"), "--out", help="folder for strips, checkpoints and the model"),
    scenes: int = typer.Option(2400, min=1, help="training scenes to render if OUT/strips is short"),
    steps: int = typer.Option(3000, min=0),
    seed: int = typer.Option(0),
    threads: int = typer.Option(1, min=1, help="torch CPU threads"),
    jobs: int = typer.Option(1, min=1, help="processes rendering scenes in parallel"),
    occlusion: float = typer.Option(None, help="share of scenes rendered under the occlusion condition (default: "
                                               "a fifth of the 60 % hard-condition scenes)"),
    install: bool = typer.Option(False, help="copy ends-v1.onnx into the package"),
) -> None:
    """Train the ends model (platform / apex ends and width of located fixtures) on synth scenes."""
    import shutil

    from raiox.vision import endsnet

    strips = endsnet.render_strips(out / "strips", scenes, seed=seed, jobs=jobs, occlusion=occlusion)
    typer.echo(f"{strips} strips in {out / 'strips'}")
    path = endsnet.train_ends(out, steps=steps, seed=seed, threads=threads)
    typer.echo(f"wrote {path}")
    if install:
        target = Path(__file__).parent / "models" / "ends-v1.onnx"
        shutil.copy2(path, target)
        typer.echo(f"installed {target}")


@app.command("train-connection")
def train_connection(
    out: Path = typer.Option(Path("runs/connection"), "--out", help="folder for zooms, checkpoints and the model"),
    renders: int = typer.Option(64000, min=1, help="training renders (two zooms each) to make if OUT/zooms is short"),
    steps: int = typer.Option(5000, min=0),
    seed: int = typer.Option(0),
    threads: int = typer.Option(1, min=1, help="torch CPU threads"),
    jobs: int = typer.Option(1, min=1, help="processes rendering in parallel"),
    install: bool = typer.Option(False, help="copy the model (connection.MODEL_FILE) into the package"),
    physical: bool = typer.Option(True, "--physical/--legacy-sizes", help="only systems whose body holds the "
                                  "connection (--legacy-sizes: as connection-v1's zooms); zooms already in "
                                  "OUT/zooms keep the rule they were made with"),
) -> None:
    """Train the connection reader (connection kind and cone angle from a zoom on the platform end)."""
    import shutil

    from raiox.vision import connection, connectionnet

    zooms = connectionnet.render_zooms(out / "zooms", renders, seed=seed, jobs=jobs, physical=physical)
    typer.echo(f"{zooms} zooms in {out / 'zooms'}")
    path = connectionnet.train_connection(out, steps=steps, seed=seed, threads=threads)
    typer.echo(f"wrote {path}")
    if install:
        target = Path(__file__).parent / "models" / connection.MODEL_FILE
        shutil.copy2(path, target)
        typer.echo(f"installed {target}")


@app.command("train-features")
def train_features(
    data: Path = typer.Option(Path("runs/v11/data"), "--data", exists=True, file_okay=False,
                              help="a rendered training set (render-data, render-located) of systems outside the "
                                   "demo catalog"),
    out: Path = typer.Option(Path("runs/features"), "--out", help="folder for the vectors, the model and its card"),
    embedder: str = typer.Option(None, help="the embedder whose vectors it reads (default: RAIOX_EMBEDDER / settings)"),
    shards: int = typer.Option(None, help="crop shards to use (default: all)"),
    located: int = typer.Option(None, help="located-crop shards to use (default: all)"),
    steps: int = typer.Option(6000, min=0),
    seed: int = typer.Option(0),
    threads: int = typer.Option(1, min=1, help="torch CPU threads"),
    name: str = typer.Option("features", help="the model's name: OUT/NAME.onnx and OUT/NAME.md"),
    install: bool = typer.Option(False, help="copy the model and its card into the package as features.MODEL_FILE"),
) -> None:
    """Fit the design-feature reader on an embedder's vectors (apex, thread, collar, taper from the embedding)."""
    import shutil

    from rich.progress import Progress

    from raiox.vision import features, featurenet

    model = _embedder(embedder)
    try:
        with Progress(transient=True) as bar:
            task = bar.add_task(f"embedding with {model.model_id}", total=None)
            path, report = featurenet.train_features(data, out, model, shards, located, steps=steps, seed=seed,
                                                     threads=threads, name=name, progress=lambda: bar.advance(task))
    except FileNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"wrote {path}; held-out accuracy " + ", ".join(f"{k} {v}" for k, v in report["accuracy"].items()))
    if install:
        target = Path(__file__).parent / "models" / features.MODEL_FILE
        shutil.copy2(path, target)
        shutil.copy2(path.with_suffix(".md"), target.with_suffix(".md"))
        typer.echo(f"installed {target}")


@app.command("ensemble-connection")
def ensemble_connection(
    models: list[Path] = typer.Argument(..., exists=True, dir_okay=False,
                                        help="two or more connection models (ONNX) trained on one zoom"),
    out: Path = typer.Option(..., "--out", help="the ensemble's ONNX file"),
) -> None:
    """One connection model that reads the mean of several models' probabilities."""
    from raiox.vision import connectionnet

    try:
        path = connectionnet.ensemble(models, out)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"wrote {path}")


@app.command("ensemble-embedders")
def ensemble_embedders(
    models: list[Path] = typer.Argument(..., exists=True, dir_okay=False,
                                        help="two or more embedding models (ONNX, one-channel crops of one aspect)"),
    out: Path = typer.Option(..., "--out", help="the ensemble's ONNX file (an `onnx:PATH` embedder, or install it "
                                                "as models/NAME.onnx)"),
) -> None:
    """One embedding model whose vector is the normalised sum of several models' (crops shrunk in the graph)."""
    from raiox.vision.ensemble import ensemble

    try:
        path = ensemble(models, out)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"wrote {path}")


@app.command("ensemble-member")
def ensemble_member(
    model: Path = typer.Argument(..., exists=True, dir_okay=False, help="an ensemble file (ensemble-embedders)"),
    index: int = typer.Option(..., "--index", min=0, help="the member, in the order ensemble-embedders was given them"),
    out: Path = typer.Option(..., "--out", help="the member's own ONNX file"),
) -> None:
    """One member of an ensemble file as a model of its own (to fine-tune with `train --init-from`)."""
    from raiox.vision.ensemble import member

    try:
        path = member(model, index, out)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"wrote {path}")


@app.command("eval")
def evaluate(
    embedder: str = typer.Option(None, help="embedder spec (default: RAIOX_EMBEDDER / settings)"),
    gallery: int = typer.Option(None, help="clean references per system (reference k at the line's k-th size, as "
                                           "`raiox catalog demo --refs`; default as its default: one per size of the "
                                           "line, at least 6)"),
    restored: int = typer.Option(None, help="sizes per line also referenced with a cover screw, healing cap, "
                                            "abutment and crown (as `raiox catalog demo --restored`; default as its "
                                            "default)"),
    queries: int = typer.Option(5, help="single-implant hard queries per system"),
    scenes: int = typer.Option(40, min=0, help="multi-implant scenes"),
    limit: int = typer.Option(None, min=1, help="only the first N demo systems (2 or more with --scenes: a "
                                                "multi-implant scene holds 2-3 of them)"),
    seed: int = typer.Option(7000, help="render seed of the gallery and queries (another seed: a fresh set to check "
                                        "figures on)"),
    doc: Path = typer.Option(Path("docs/benchmarks.md"), help="Markdown file whose '## Vision' section is rewritten"),
    write: bool = typer.Option(True, "--write/--no-write"),
    cache: Path = typer.Option(None, help="folder caching the evaluation renders (reused on the next run)"),
    render: bool = typer.Option(True, "--render/--cached-only", help="render missing items, or use only cached ones"),
    also_seed: list[int] = typer.Option([], "--also-seed", help="another evaluation set's seed (repeatable), cached in "
                                        "CACHE-SEED: its located and ground-truth-box figures, and the mean of all "
                                        "sets, follow the main figures"),
    hits: Path = typer.Option(None, help="also write each query's located top-1 / top-5 (every set) to this JSON "
                                         "file, for `raiox vision compare-hits`"),
) -> None:
    """Retrieval top-1/top-5 (model vs raw pixels vs HOG) and localisation on the demo catalog."""
    from dataclasses import replace

    from raiox.vision import evaluate as ev

    if not render and cache is None:
        raise typer.BadParameter("--cached-only reads the renders from --cache FOLDER: give one",
                                 param_hint="--cached-only")
    if limit is not None and limit < 2 and scenes:
        raise typer.BadParameter(f"a multi-implant scene needs 2 or more systems: --limit 2 or more, or --scenes 0 "
                                 f"(got --limit {limit})", param_hint="--limit")
    _embedder(embedder)  # an unknown --embedder refused now, not after the renders
    cfg = ev.EvalConfig(gallery_per_system=gallery, restored_sizes=restored, queries_per_system=queries, scenes=scenes,
                        embedder=embedder, limit_systems=limit, seed=seed)
    for why in ev.reader_problems(cfg.embedder):  # say so now, not in the report's last lines an evaluation later
        typer.echo(f"warning: {why}; this evaluation runs without that model", err=True)
    try:
        res = ev.evaluate(cfg, cache, render)
        others = [ev.evaluate(replace(cfg, seed=s), cache and cache.with_name(f"{cache.name}-{s}"), render, brief=True)
                  for s in also_seed]
    except ev.NoRenders as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    body = ev.markdown(res, "raiox vision eval " + shlex.join(sys.argv[3:] if len(sys.argv) > 3 else []))
    if others:
        body += "\n" + ev.seeds_table([res, *others])
    typer.echo(body)
    if write:
        ev.write_section(doc, body)
    if hits:
        from raiox.vision.compare import write_hits

        write_hits(hits, [res, *others])
        typer.echo(f"wrote {hits}")


@app.command("compare-hits")
def compare_hits(
    first: Path = typer.Argument(..., help="hits file of model A (`raiox vision eval --hits`)"),
    second: Path = typer.Argument(..., help="hits file of model B, evaluated on the same sets"),
) -> None:
    """Two evaluations compared query by query: per-set top-1, discordant queries and the exact McNemar p-value."""
    from raiox.vision import compare

    try:
        typer.echo(compare.markdown(compare.read_hits(first), compare.read_hits(second)))
    except compare.HitsMismatch as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command("eval-locator")
def evaluate_locator(
    per: int = typer.Option(50, "--per",
                            help="scenes per condition (angulation, noise, blur, occlusion, combined, multi)"),
    seed: int = typer.Option(9100, help="scene seed (keep the default to compare localisers)"),
    model: Path = typer.Option(None, exists=True, dir_okay=False,
                               help="localiser ONNX file (default: the shipped locator-v2)"),
    cache: Path = typer.Option(None, help="an .npz file caching the scenes"),
) -> None:
    """Localisation on scenes of random non-catalog systems (not the demo-catalog evaluation set)."""
    from raiox.vision import loceval
    from raiox.vision.onnxrt import session

    if model is not None:
        session(str(model))  # a file that is no model: its one line now, not after rendering every scene
    typer.echo(loceval.summary(loceval.evaluate(per, seed, model, cache)))


@app.command("export-onnx")
def export_onnx(
    model: str = typer.Argument(...,
                                help="open_clip MODEL/TAG, e.g. ViT-B-32/laion2b_s34b_b79k (TAG 'none': untrained)"),
    out: Path = typer.Option(..., "--out", help="ONNX file to write"),
) -> None:
    """Turn an open_clip image tower into an ONNX file usable as RAIOX_EMBEDDER=onnx:PATH."""
    from raiox.vision.embedders import UnknownOpenClipModel
    from raiox.vision.export import export_open_clip

    try:
        path = export_open_clip(model, out)
    except UnknownOpenClipModel as exc:
        raise typer.BadParameter(str(exc), param_hint="MODEL") from None
    typer.echo(f"wrote {path}")
