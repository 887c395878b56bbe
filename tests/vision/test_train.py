"""`raiox vision render-data` / `raiox vision train` on tiny settings (torch CPU, the `test` extra).

A handful of random systems, a few renders each, 6-10 steps of batch 8 on one thread: enough to
check that rendering resumes per shard, training is seeded and resumes exactly, and that the
exported ONNX file and the model card are what `onnx:PATH` and the docs promise.
"""

import copy
import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from raiox.cli import app
from raiox.vision import get_embedder
from raiox.vision import train as train_mod
from raiox.vision.datagen import render_dataset
from raiox.vision.train import TrainConfig, train

CLASSES, PER_CLASS, STEPS = 6, 3, 6
TINY = dict(batch=8, threads=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """One shard of 6 random systems x 3 renders, as `raiox vision train` renders it itself."""
    out = tmp_path_factory.mktemp("train-data") / "data"
    assert render_dataset(out, classes=CLASSES, per_class=PER_CLASS, seed=0) == CLASSES * PER_CLASS
    return out


def folder(tmp_path, data, name):
    out = tmp_path / name
    shutil.copytree(data, out / "data")
    return out


def probe_batch():
    return np.random.default_rng(7).random((5, 1, 192, 64), dtype=np.float32)


def said(result) -> str:
    """A CLI answer's words, unwrapped from Rich's error panel (where a long tmp path moves the line breaks)."""
    return " ".join(result.output.replace("│", " ").split())


def run_onnx(path, x=None):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: probe_batch() if x is None else x})[0]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, data):
    """`raiox vision train` through the CLI: 6 steps from scratch on the shared data."""
    out = folder(tmp_path_factory.mktemp("cli"), data, "run")
    before = (out / "data" / "shard-000.npz").stat().st_mtime_ns
    result = CliRunner().invoke(app, [
        "vision", "train", "--out", str(out), "--steps", str(STEPS), "--batch", "8", "--threads", "1",
        "--classes", str(CLASSES), "--per-class", str(PER_CLASS), "--seed", "0",
    ])
    assert result.exit_code == 0, result.output
    assert (out / "data" / "shard-000.npz").stat().st_mtime_ns == before  # data already there: not re-rendered
    return out


def test_render_data_writes_shards_and_resumes(tmp_path):
    out = tmp_path / "run"
    args = ["vision", "render-data", "--out", str(out), "--classes", "6", "--per-class", "2", "--shard-size", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = out / "data"
    shards = sorted(p.name for p in data.glob("shard-*.npz"))
    assert shards == ["shard-000.npz", "shard-001.npz", "shard-002.npz"]
    first = {name: dict(np.load(data / name)) for name in shards}
    for part in first.values():
        assert part["crops"].dtype == np.uint8 and part["crops"].shape[1:] == (192, 64)
        assert len(part["crops"]) == len(part["labels"]) > 0
        assert part["crops"].max() > 100  # a bright fixture, not an empty crop
    assert set(first["shard-000.npz"]["labels"]) <= {0, 1} and set(first["shard-002.npz"]["labels"]) <= {4, 5}
    meta = json.loads((data / "meta.json").read_text())
    assert meta["classes"] == 6 and meta["per_class"] == 2 and meta["jitter"] == "gt"
    assert meta["crops"] == sum(len(p["labels"]) for p in first.values())

    # an interrupted rendering: shards 1 and 2 are missing, and shard 1's half-written temporary file is
    # left behind. The rerun (two processes) keeps shard 0 and renders the others again, identically; the
    # leftover is neither counted nor trained on.
    kept = (data / "shard-000.npz").stat().st_mtime_ns
    for name in ("shard-001.npz", "shard-002.npz"):
        (data / name).unlink()
    (data / "shard-001.tmp.npz").write_bytes(b"PK\x03\x04 half a zip")
    result = CliRunner().invoke(app, args + ["--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert (data / "shard-000.npz").stat().st_mtime_ns == kept
    for name in ("shard-001.npz", "shard-002.npz"):
        again = dict(np.load(data / name))
        np.testing.assert_array_equal(again["labels"], first[name]["labels"])
        np.testing.assert_array_equal(again["crops"], first[name]["crops"])
    assert f"{meta['crops']} crops" in result.output
    crops, labels, located = train_mod.load_shards(data)
    assert len(labels) == meta["crops"] and not located.any()


def test_trained_onnx_serves_through_onnx_path(cli_run, data):
    model = cli_run / "raiox-v1.onnx"
    out = run_onnx(model)
    assert out.shape == (5, 512) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    assert np.abs(out[0] - out[1]).max() > 1e-3  # different inputs, different vectors

    embedder = get_embedder(f"onnx:{model}")
    assert embedder.model_id.startswith("onnx:raiox-v1.onnx#") and embedder.dim == 512
    crops = np.load(data / "shard-000.npz")["crops"][:4].astype(np.float32) / 255
    vectors = embedder.embed(list(crops))
    assert vectors.shape == (4, 512)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(vectors, run_onnx(model, crops[:, None]), atol=1e-5)


def test_model_card_and_state(cli_run):
    state = json.loads((cli_run / "train-state.json").read_text())
    assert state["step"] == STEPS and state["config"]["seed"] == 0 and state["config"]["batch"] == 8
    assert [h["step"] for h in state["history"]] == [STEPS]
    assert np.isfinite(state["history"][-1]["loss"])
    card = (cli_run / "raiox-v1.md").read_text()
    assert card.startswith("# Model card: raiox-v1")
    assert "- Date: 20" in card and " UTC;" in card
    assert f"Data: {CLASSES * PER_CLASS} synthetic crops of {CLASSES} random systems ({PER_CLASS} renders each)" in card
    assert "physical sizes only" in card  # the data's spec rule (meta.json), session 18's default
    assert f"Training: {STEPS} steps, batch 8, AdamW lr 0.002" in card and "seed 0, device cpu" in card
    assert f"at step {STEPS}; final training loss {state['history'][-1]['loss']:.3f}" in card


def test_checkpoint_interval_is_a_train_option(tmp_path, data):
    """`--checkpoint-every 0` validates and saves after every step (the default, 180 s, only at the end here)."""
    out = folder(tmp_path, data, "often")
    result = CliRunner().invoke(app, [
        "vision", "train", "--out", str(out), "--steps", "3", "--batch", "8", "--threads", "1",
        "--classes", str(CLASSES), "--per-class", str(PER_CLASS), "--checkpoint-every", "0",
    ])
    assert result.exit_code == 0, result.output
    state = json.loads((out / "train-state.json").read_text())
    assert [h["step"] for h in state["history"]] == [1, 2, 3] and state["config"]["checkpoint_every_s"] == 0.0


def test_bf16_trains_the_same_net_in_bfloat16_and_exports_float32(tmp_path, data, cli_run):
    """`--bf16`: the forward pass under bfloat16 autocast; the run is recorded, its weights and ONNX stay float32
    and differ from the float32 run's only by the rounding (same seed, same batches)."""
    out = folder(tmp_path, data, "bf16")
    result = CliRunner().invoke(app, [
        "vision", "train", "--out", str(out), "--steps", str(STEPS), "--batch", "8", "--threads", "1",
        "--classes", str(CLASSES), "--per-class", str(PER_CLASS), "--seed", "0", "--bf16",
    ])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "train-state.json").read_text())["config"]["bf16"] is True
    assert json.loads((cli_run / "train-state.json").read_text())["config"]["bf16"] is False
    weights = torch.load(out / "ckpt.pt", weights_only=False)["net"]
    assert all(w.dtype in (torch.float32, torch.int64) for w in weights.values())
    bf16, fp32 = run_onnx(out / "raiox-v1.onnx"), run_onnx(cli_run / "raiox-v1.onnx")
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    assert 1e-6 < np.abs(bf16 - fp32).max() < 0.5  # not the float32 run's weights, nor far from them


def test_widths_train_a_wider_or_narrower_net_that_exports_and_fine_tunes_only_at_its_widths(tmp_path, data):
    """`--widths`: the residual blocks' channels; the export serves 512-d vectors, `from_onnx` reads the widths
    back, and a fine-tune or resume at other widths is refused with a clear error."""
    from raiox.vision.net import from_onnx

    out = folder(tmp_path, data, "narrow")
    args = ["vision", "train", "--steps", "2", "--batch", "8", "--threads", "1", "--classes", str(CLASSES),
            "--per-class", str(PER_CLASS)]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--widths", "8,16,24"])
    assert result.exit_code == 0, result.output
    model = out / "raiox-v1.onnx"
    assert run_onnx(model).shape == (5, 512)
    net = from_onnx(model)
    assert net.widths == (8, 16, 24) and net.blocks[2].a[0].out_channels == 24
    assert json.loads((out / "train-state.json").read_text())["config"]["widths"] == [8, 16, 24]
    refused = CliRunner().invoke(app, [*args, "--out", str(folder(tmp_path, data, "wide")), "--init-from", str(model)])
    assert (refused.exit_code == 2
            and "24] wide, not [32, 64, 128]" in said(refused))
    again = CliRunner().invoke(app, [*args, "--out", str(out), "--steps", "3"])  # resume at the default widths
    assert again.exit_code == 2 and "other widths" in said(again)
    tuned = folder(tmp_path, data, "tuned")
    result = CliRunner().invoke(app, [*args, "--out", str(tuned), "--init-from", str(model), "--widths", "8,16,24"])
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(app, [*args, "--out", str(tuned), "--widths", "8,16"]).exit_code == 2


def test_training_is_seeded(tmp_path, data, cli_run):
    again = train(TrainConfig(out=folder(tmp_path, data, "again"), steps=STEPS, seed=0, **TINY))
    np.testing.assert_allclose(run_onnx(again), run_onnx(cli_run / "raiox-v1.onnx"), atol=1e-5)


def test_rerun_with_more_steps_continues(tmp_path, cli_run):
    out = tmp_path / "longer"
    shutil.copytree(cli_run, out)
    first = json.loads((out / "train-state.json").read_text())
    train(TrainConfig(out=out, steps=2 * STEPS, seed=0, **TINY))
    state = json.loads((out / "train-state.json").read_text())
    assert state["step"] == 2 * STEPS
    assert [h["step"] for h in state["history"]] == [STEPS, 2 * STEPS]
    assert state["history"][0] == first["history"][0]  # the first stage's record is kept
    assert torch.load(out / "ckpt.pt", weights_only=False)["state"]["step"] == 2 * STEPS
    assert np.abs(run_onnx(out / "raiox-v1.onnx") - run_onnx(cli_run / "raiox-v1.onnx")).max() > 1e-4


def test_interrupted_training_resumes_exactly(tmp_path, data, monkeypatch):
    steps, stop = 6, 3
    straight = train(TrainConfig(out=folder(tmp_path, data, "straight"), steps=steps, checkpoint_every_s=0, **TINY))

    out = folder(tmp_path, data, "interrupted")
    saves, real_save = [], train_mod._save

    def save_then_die(*args, **kwargs):  # checkpoint_every_s=0: one checkpoint per step
        real_save(*args, **kwargs)
        saves.append(1)
        if len(saves) == stop:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(train_mod, "_save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(out=out, steps=steps, checkpoint_every_s=0, **TINY))
    assert torch.load(out / "ckpt.pt", weights_only=False)["state"]["step"] == stop
    assert not (out / "raiox-v1.onnx").exists()
    monkeypatch.setattr(train_mod, "_save", real_save)

    resumed = train(TrainConfig(out=out, steps=steps, checkpoint_every_s=0, **TINY))
    a = json.loads((tmp_path / "straight" / "train-state.json").read_text())
    b = json.loads((out / "train-state.json").read_text())
    assert b["step"] == steps and [h["step"] for h in b["history"]] == list(range(1, steps + 1))
    np.testing.assert_allclose([h["loss"] for h in b["history"]], [h["loss"] for h in a["history"]], rtol=1e-5)
    np.testing.assert_allclose(run_onnx(resumed), run_onnx(straight), atol=1e-5)


@pytest.mark.parametrize("rerun_flag", [False, True], ids=["plain-resume", "same-command"])
def test_resume_continues_a_restarted_schedule(tmp_path, cli_run, monkeypatch, rerun_flag):
    """A run restarted with --restart-schedule, killed and resumed (plainly, or by rerunning the same
    command), keeps the restarted schedule (warm-up + cosine from the restart to --steps), neither a
    fresh one over all steps nor a second restart."""
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    shutil.copytree(cli_run, straight)
    shutil.copytree(cli_run, broken)
    longer = dict(steps=2 * STEPS, checkpoint_every_s=0, **TINY)
    train(TrainConfig(out=straight, restart_schedule=True, **longer))

    saves, real_save = [], train_mod._save

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        saves.append(1)
        if len(saves) == 3:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(train_mod, "_save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(out=broken, restart_schedule=True, **longer))
    monkeypatch.setattr(train_mod, "_save", real_save)
    train(TrainConfig(out=broken, restart_schedule=rerun_flag, **longer))

    a = json.loads((straight / "train-state.json").read_text())
    b = json.loads((broken / "train-state.json").read_text())
    assert a["restarts"] == b["restarts"] == [STEPS]
    np.testing.assert_allclose([h["loss"] for h in b["history"]], [h["loss"] for h in a["history"]], rtol=1e-5)
    np.testing.assert_allclose(run_onnx(broken / "raiox-v1.onnx"), run_onnx(straight / "raiox-v1.onnx"), atol=1e-5)


def test_init_from_carries_learnt_class_centres_to_a_larger_dataset(tmp_path, cli_run, monkeypatch):
    """Fine-tuning on a grown dataset (more classes) starts the known classes' ArcFace rows from the
    checkpoint; the new classes start fresh. Checked on the head the run starts with."""
    old = torch.load(cli_run / "ckpt.pt", weights_only=False)["arc"]["weight"]
    seen = {}
    real_init = train_mod._carry_class_rows

    def spy(arc, weight):
        real_init(arc, weight)
        seen["start"] = arc.weight.detach().clone()

    monkeypatch.setattr(train_mod, "_carry_class_rows", spy)
    out = tmp_path / "grown"
    shutil.copytree(cli_run / "data", out / "data")
    train(TrainConfig(out=out, steps=1, classes=CLASSES + 4, init_from=cli_run / "ckpt.pt", **TINY))
    start = seen["start"]
    assert start.shape == (CLASSES + 4, old.shape[1])
    torch.testing.assert_close(start[:CLASSES], old)
    assert not torch.allclose(start[CLASSES:].norm(dim=1), old.norm(dim=1)[:4])  # fresh rows: small random init


def test_occlusion_augmentation_covers_part_of_the_fixture_like_radiographs_do():
    """Occluders in radiographs are cone cuts (white bands) and neighbouring metal (bright ellipses):
    the augmentation covers a part of the crop, often near-saturated, and leaves the rest alone."""
    import torch

    from raiox.vision.train import occlude

    x = torch.rand(64, 1, 192, 64, generator=torch.Generator().manual_seed(0)) * 0.5
    assert torch.equal(occlude(x, torch.Generator().manual_seed(1), p=0.0), x)
    y = occlude(x, torch.Generator().manual_seed(1), p=1.0)
    assert torch.equal(y, occlude(x, torch.Generator().manual_seed(1), p=1.0))  # seeded
    covered = (y != x).float().mean((1, 2, 3))
    assert (covered > 0).float().mean() > 0.9 and covered.max() < 0.6  # a part, never the whole crop
    bright = ((y >= 0.85) & (y != x)).flatten(1).any(1).float().mean()
    assert 0.5 < bright < 0.95  # mostly metal-bright, some grey strips


def test_located_jitter_draws_the_localisers_kind_of_box_errors():
    from raiox.vision.canonical import box_frame
    from raiox.vision.datagen import jitter_box, located_box

    truth = np.array([[100, 100], [140, 100], [140, 220], [100, 220]], np.float32)  # platform edge first, axis +y
    rng = np.random.default_rng(0)

    def errors(draw):
        boxes = [draw(truth, rng) for _ in range(3000)]
        platform = np.array([(b[0] + b[1])[1] / 2 - 100 for b in boxes]) / 120
        apex = np.array([(b[2] + b[3])[1] / 2 - 220 for b in boxes]) / 120
        width = np.array([box_frame(b)[3] for b in boxes]) / 40
        return platform, apex, width

    platform, apex, width = errors(located_box)
    assert 0.01 < np.median(np.abs(platform)) < 0.04 and np.percentile(np.abs(platform), 90) > 0.08
    assert np.mean(platform > 0.1) > 2 * np.mean(platform < -0.1)  # a platform edge is cut short more often
    assert np.mean(apex < -0.1) > 2 * np.mean(apex > 0.1)  # so is the apex
    assert 0.93 < np.median(width) < 0.97
    gt_platform, _, gt_width = errors(jitter_box)
    assert np.percentile(np.abs(gt_platform), 90) < 0.08 and 0.98 < np.median(gt_width) < 1.02


def test_render_data_refuses_an_unknown_jitter(tmp_path):
    result = CliRunner().invoke(app, ["vision", "render-data", "--out", str(tmp_path), "--classes", "2",
                                      "--jitter", "wild"])
    assert result.exit_code != 0 and "--jitter" in result.output
    assert not (tmp_path / "data").exists()


def test_an_exported_model_without_the_nets_weights_is_refused(tmp_path):
    import onnx

    from raiox.vision.embedders import shipped_model
    from raiox.vision.interim import build_interim
    from raiox.vision.net import from_onnx

    model = onnx.load(str(shipped_model("raiox-v1")))
    kept = [i for i in model.graph.initializer if not i.name.startswith("net.head.2.")]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    onnx.save(model, str(tmp_path / "headless.onnx"))
    with pytest.raises(ValueError, match="no head weights"):
        from_onnx(tmp_path / "headless.onnx")
    with pytest.raises(ValueError, match="convolutions"):
        from_onnx(build_interim(tmp_path / "other.onnx", seed=1))


def test_a_shipped_model_imports_into_torch_and_its_norms_calibrate():
    """`--init-from MODEL.onnx` rebuilds the torch net from the exported graph (BatchNorm folded into the
    convolutions): eval mode gives the file's vectors; calibrated norms keep that and make train mode
    (batch statistics) compute the same features on a batch like the calibration one."""
    from raiox.vision.embedders import shipped_model
    from raiox.vision.net import Exported, calibrate_norms, from_onnx

    path = shipped_model("raiox-v1")
    net = from_onnx(path)
    x = torch.from_numpy(probe_batch())
    want = run_onnx(path)
    np.testing.assert_allclose(Exported(net).eval()(x).detach().numpy(), want, atol=1e-5)
    batch = torch.from_numpy(np.random.default_rng(3).random((32, 1, 192, 64), dtype=np.float32))
    net.eval()
    before = net.blocks(net.stem(batch)).detach()
    calibrate_norms(net, batch)
    np.testing.assert_allclose(Exported(net).eval()(x).detach().numpy(), want, atol=1e-4)
    net.train()
    with torch.no_grad():
        after = net.blocks(net.stem(batch))
    assert torch.allclose(after, before, atol=1e-3 * float(before.abs().max()))
    net.eval()  # and without calibration train mode is far off: the check above can fail
    raw = from_onnx(path).train()
    with torch.no_grad():
        assert not torch.allclose(raw.blocks(raw.stem(batch)), before, atol=1e-3 * float(before.abs().max()))


def test_fine_tuning_from_an_exported_model_imprints_the_class_centres(tmp_path, cli_run, monkeypatch):
    """A run initialised from an ``.onnx`` starts every class centre at the mean direction of its
    training crops under that model (not at random), so fine-tuning starts from the model's geometry."""
    from torch.nn import functional as F

    seen = {}
    real = train_mod._from_shipped

    def spy(cfg, net, arc, crops, labels, train_idx, gen):
        out = real(cfg, net, arc, crops, labels, train_idx, gen)
        seen["arc"], seen["net"] = arc.weight.detach().clone(), copy.deepcopy(out)  # before the step trains it
        seen["crops"], seen["labels"], seen["idx"] = crops, labels, train_idx
        return out

    monkeypatch.setattr(train_mod, "_from_shipped", spy)
    out = folder(tmp_path, cli_run / "data", "from-onnx")
    train(TrainConfig(out=out, steps=1, init_from=cli_run / "raiox-v1.onnx", **TINY))
    net, idx, labels = seen["net"].eval(), seen["idx"], seen["labels"]
    with torch.no_grad():
        emb = F.normalize(net(torch.from_numpy(seen["crops"][idx]).float().div(255)[:, None]), dim=1)
    for c in np.unique(labels[idx]):
        centre = F.normalize(emb[labels[idx] == c].sum(0), dim=0)
        torch.testing.assert_close(seen["arc"][c], centre, atol=1e-4, rtol=1e-4)
    assert json.loads((out / "train-state.json").read_text())["init_from"].endswith("raiox-v1.onnx")


def test_bf16_fine_tune_imprints_the_class_centres_under_bfloat16_too(tmp_path, cli_run, monkeypatch):
    """With ``--bf16`` the imprint's embeddings run as training does (autocast): centres in the same directions
    as a float32 imprint's, within bfloat16's rounding, and not bit-identical to them."""
    centres = {}
    real = train_mod._from_shipped

    def spy(cfg, net, arc, crops, labels, train_idx, gen):
        out = real(cfg, net, arc, crops, labels, train_idx, gen)
        centres[cfg.bf16] = arc.weight.detach().clone()
        centres["trained"] = torch.from_numpy(np.unique(labels[train_idx]).astype(np.int64))  # held-out rows stay
        return out

    monkeypatch.setattr(train_mod, "_from_shipped", spy)
    for bf16 in (False, True):
        out = folder(tmp_path, cli_run / "data", f"imprint-{bf16}")
        train(TrainConfig(out=out, steps=1, init_from=cli_run / "raiox-v1.onnx", bf16=bf16, **TINY))
    seen = centres["trained"]
    cos = (centres[True][seen] * centres[False][seen]).sum(1)
    assert cos.min() > 0.98 and centres[True].dtype == torch.float32
    assert (centres[True][seen] - centres[False][seen]).abs().max() > 1e-6


def test_a_wider_crop_trains_exports_and_is_cut_at_its_size(tmp_path):
    """Crops rendered at another size (here 192 x 96) train a net whose ONNX input has that size; the
    embedder then asks for canonical crops cut at it, and `analyze` cuts them so."""
    from raiox.synth import demo_catalog, render_scene
    from raiox.vision.embedders import OnnxEmbedder, crop_size
    from raiox.vision.pipeline import analyze

    assert render_dataset(tmp_path / "data", classes=2, per_class=2, seed=0, crop=(192, 96)) == 4
    assert np.load(tmp_path / "data" / "shard-000.npz")["crops"].shape[1:] == (192, 96)
    path = train(TrainConfig(out=tmp_path, steps=1, **TINY))
    from raiox.vision.card import write_card

    assert "Input `image`: float32 (N, 1, 192, 96)" in write_card(tmp_path, path).read_text()
    embedder = OnnxEmbedder(path, "wide")
    assert crop_size(embedder) == (192, 96) and crop_size(get_embedder("raiox-v1")) == (192, 64)
    shapes = []

    class Spy:
        model_id, dim, crop_size = "spy", 512, (192, 96)

        def embed(self, crops):
            shapes.extend(c.shape for c in crops)
            return embedder.embed(crops)

    scene = render_scene([demo_catalog()[0].spec], seed=2)
    found = analyze(scene.image, Spy())
    checked = sum(f.reverse is not None for f in found)  # the reverse reading of those whose ends were unsure
    assert found and shapes == [(192, 96)] * (len(found) + checked)


@pytest.mark.parametrize("crop", ["200x96", "176x88", "400x96"])
def test_render_data_refuses_a_crop_the_net_cannot_pool(tmp_path, crop):
    result = CliRunner().invoke(app, ["vision", "render-data", "--out", str(tmp_path), "--classes", "1",
                                      "--crop", crop])
    assert (result.exit_code != 0
            and "multiple of 16 from 192 to 384" in " ".join(result.output.replace("│", " ").split()))
    assert not (tmp_path / "data").exists()


def test_a_taller_crop_pools_to_the_same_twelve_rows_and_exports(tmp_path):
    """256 x 128 crops (the fixture at about its film resolution): the 1/16-scale map's 16 rows are averaged
    into the head's 12 as adaptive pooling would, through a MatMul that ONNX exports (export checks the file
    against torch); a shipped model's weights load unchanged and serve at the new size."""
    import torch
    from torch.nn import functional as F

    from raiox.vision.embedders import OnnxEmbedder, crop_size, shipped_model
    from raiox.vision.net import from_onnx, row_pool
    from raiox.vision.train import export

    for n in (12, 16, 18, 24):
        x = torch.randn(2, 3, n)
        torch.testing.assert_close(x @ row_pool(n, 12), F.adaptive_avg_pool1d(x, 12))
    net = from_onnx(shipped_model("raiox-v10")).eval()
    path = export(net, tmp_path / "tall.onnx", (256, 128))
    embedder = OnnxEmbedder(path, "tall")
    assert crop_size(embedder) == (256, 128)
    rng = np.random.default_rng(0)
    vecs = embedder.embed([rng.random((256, 128), dtype=np.float32) for _ in range(3)])
    assert vecs.shape == (3, 512) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    result = CliRunner().invoke(app, ["vision", "render-data", "--out", str(tmp_path), "--classes", "1",
                                      "--per-class", "1", "--crop", "256x128"])
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "data" / "shard-000.npz")["crops"].shape[1:] == (256, 128)


def test_dataset_specs_are_the_specs_the_shards_were_rendered_from(tmp_path, monkeypatch):
    """The attribute heads' targets come from the specs drawn again from a dataset's seed; they must be the
    systems its crops show (checked on what the renderer was handed, older data without a shard size too)."""
    import raiox.synth

    from raiox.vision.datagen import dataset_specs

    handed, real = [], raiox.synth.render_fixture_crop
    monkeypatch.setattr(raiox.synth, "render_fixture_crop",
                        lambda spec, **kw: (handed.append(spec), real(spec, **kw))[1])
    out = tmp_path / "data"
    render_dataset(out, classes=5, per_class=2, shard_size=2, seed=3)
    first_render = handed[::2]  # a class's first render is its spec at the drawn size
    assert dataset_specs(out) == first_render and len(first_render) == 5
    meta = json.loads((out / "meta.json").read_text())
    assert meta["shard_size"] == 2
    del meta["shard_size"]
    (out / "meta.json").write_text(json.dumps(meta))
    assert dataset_specs(out) == first_render


def test_physical_datasets_hand_the_renderer_only_sizes_whose_body_holds_the_connection(tmp_path, monkeypatch):
    """The demo catalog's rule (session 17) in the training data: the old draws include systems and size variants
    whose body cannot hold the connection (rendered as another system's look); a physical dataset none."""
    import raiox.synth

    from raiox.vision.datagen import dataset_specs, shard_specs
    from raiox.vision.synthbridge import holds_connection

    legacy, physical = shard_specs(0, 0, 100)[0], shard_specs(0, 0, 100, physical=True)[0]
    assert sum(not holds_connection(s) for s in legacy) >= 5 and all(holds_connection(s) for s in physical)
    handed, real = {}, raiox.synth.render_fixture_crop
    for rule in (False, True):
        handed[rule] = []
        monkeypatch.setattr(raiox.synth, "render_fixture_crop",
                            lambda spec, _h=handed[rule], **kw: (_h.append(spec), real(spec, **kw))[1])
        render_dataset(tmp_path / str(rule), classes=12, per_class=6, shard_size=12, seed=2, physical=rule)
        assert json.loads((tmp_path / str(rule) / "meta.json").read_text())["physical"] is rule
        assert dataset_specs(tmp_path / str(rule)) == handed[rule][::6]
    assert any(not holds_connection(s) for s in handed[False])
    assert all(holds_connection(s) for s in handed[True]) and len(handed[True]) == 72
    resized = [s["diameter_mm"] != handed[True][k - k % 6]["diameter_mm"] for k, s in enumerate(handed[True])]
    assert sum(resized) >= 20  # sizes still vary (about 2 in 3 renders) where the body allows


def test_a_dataset_resumes_with_the_spec_rule_it_was_started_with(tmp_path):
    """Data rendered before the rule (no ``physical`` in meta.json) resumes as it was drawn, whatever the default."""
    from raiox.vision.datagen import dataset_specs

    out = tmp_path / "data"
    render_dataset(out, classes=8, per_class=2, shard_size=4, seed=2, physical=False)
    before = np.load(out / "shard-001.npz")["crops"]
    specs = dataset_specs(out)
    meta = json.loads((out / "meta.json").read_text())
    del meta["physical"]
    (out / "meta.json").write_text(json.dumps(meta))
    (out / "shard-001.npz").unlink()
    render_dataset(out, classes=8, per_class=2, shard_size=4, seed=2)  # the default is physical
    assert json.loads((out / "meta.json").read_text())["physical"] is False
    np.testing.assert_array_equal(np.load(out / "shard-001.npz")["crops"], before)
    assert dataset_specs(out) == specs


def test_attribute_heads_cover_the_spec_schema():
    from raiox.synth import SPEC_SCHEMA, demo_catalog
    from raiox.vision.attributes import HEADS, attribute_row

    props = SPEC_SCHEMA["properties"]
    enums = {"connection": props["connection"]["properties"]["kind"],
             "apex_shape": props["apex"]["properties"]["shape"],
             "apex_hole": props["apex"]["properties"]["hole"], "profile": props["thread"]["properties"]["profile"],
             "collar": props["collar"]["properties"]["kind"]}
    for head, enum in enums.items():
        assert set(HEADS[head][0]) == set(enum["enum"]), head
    rows = np.array([attribute_row(s.spec) for s in demo_catalog()])
    conical = np.array([s.spec["connection"]["kind"] == "conical" for s in demo_catalog()])
    cone = list(HEADS).index("cone_angle")
    assert (rows[conical, cone] >= 0).all() and (rows[~conical, cone] == -1).all()
    assert (np.delete(rows, cone, axis=1) >= 0).all()  # every other feature of every demo system has its class


def test_training_with_attribute_heads(tmp_path, data, monkeypatch):
    """`--attribute-weight` trains a classifier per design feature on the embedding: the heads are saved with
    the checkpoint, learn (their weights move), report validation accuracy, and the card says so; the serving
    graph is unchanged in shape. A rerun without them is refused with a clear message, not a crash."""
    from raiox.vision import net as net_mod
    from raiox.vision.attributes import HEADS, SIZES

    built = []

    class Spy(net_mod.AttributeHeads):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            built.append(self.linear.weight.detach().clone())

    monkeypatch.setattr(net_mod, "AttributeHeads", Spy)
    out = folder(tmp_path, data, "heads")
    args = ["vision", "train", "--out", str(out), "--steps", str(STEPS), "--batch", "8", "--threads", "1",
            "--classes", str(CLASSES), "--per-class", str(PER_CLASS)]
    result = CliRunner().invoke(app, [*args, "--attribute-weight", "0.5"])
    assert result.exit_code == 0, result.output
    saved = torch.load(out / "ckpt.pt", weights_only=False)
    assert saved["heads"]["linear.weight"].shape == (sum(SIZES), 512)
    assert (saved["heads"]["linear.weight"] - built[0]).abs().max() > 1e-6  # trained (a warm-up of tiny steps)
    acc = json.loads((out / "train-state.json").read_text())["history"][-1]["val_attributes"]
    assert set(acc) == set(HEADS) and all(0 <= v <= 1 for v in acc.values())
    assert "auxiliary heads classify each crop's design features" in (out / "raiox-v1.md").read_text()
    assert run_onnx(out / "raiox-v1.onnx").shape == (5, 512)
    again = CliRunner().invoke(app, [*args[:5], str(2 * STEPS), *args[6:]])
    assert again.exit_code == 2 and "trained with attribute heads" in said(again)  # however the panel wraps it
    assert torch.load(out / "ckpt.pt", weights_only=False)["state"]["step"] == STEPS  # nothing trained or lost


def test_located_crops_come_from_the_localisers_boxes_and_weigh_in_training(tmp_path, data):
    """`render-located`: scenes of the dataset's systems (never a validation one), cropped where the shipped
    localiser finds them, labelled with the dataset's classes; `--located-copies` draws them more often."""
    out = folder(tmp_path, data, "loc")
    args = ["vision", "render-located", "--out", str(out), "--scenes", "4", "--seed", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (shard,) = sorted((out / "data").glob("shard-loc*.npz"))
    got = np.load(shard)
    assert len(got["labels"]) >= 3 and f"{len(got['labels'])} located crops" in result.output
    assert got["crops"].shape[1:] == (192, 64) and got["crops"].dtype == np.uint8  # the dataset's crop size
    assert set(got["labels"].tolist()) <= set(range(1, CLASSES))  # class 0 is held out for validation
    before = shard.stat().st_mtime_ns
    assert CliRunner().invoke(app, args).exit_code == 0 and shard.stat().st_mtime_ns == before  # resumable
    meta = (out / "data" / "meta.json").read_text()
    assert render_dataset(out / "data", classes=2, per_class=1) == CLASSES * PER_CLASS + len(got["labels"])
    assert (out / "data" / "meta.json").read_text() == meta  # `train`'s no-op render keeps the dataset's meta
    crops, labels, located = train_mod.load_shards(out / "data")
    assert located.sum() == len(got["labels"]) and not located[: CLASSES * PER_CLASS].any()
    idx = train_mod.split_classes(labels)[0]
    pool = train_mod.weigh_located(idx, located, 3)
    counts = np.bincount(pool, minlength=len(labels))
    assert (counts[idx[located[idx]]] == 3).all() and (counts[idx[~located[idx]]] == 1).all()
    assert train_mod.weigh_located(idx, located, 1) is idx
    train(TrainConfig(out=out, steps=2, located_copies=3, checkpoint_every_s=1e9, **TINY))
    assert json.loads((out / "train-state.json").read_text())["config"]["located_copies"] == 3


@pytest.mark.parametrize("bad", [["--widths", "8,16"], ["--device", "bogus"], ["--batch", "0"], ["--threads", "0"],
                                 ["--classes", "-3"]])
def test_bad_training_options_are_refused_before_anything_is_rendered(tmp_path, bad):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["vision", "train", "--out", str(out), "--classes", "2", *bad])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert not (out / "data").exists()  # refused at once, not after rendering the whole dataset


@pytest.mark.parametrize("bad", [["--per-class", "0"], ["--shard-size", "0"], ["--classes", "-3"], ["--jobs", "0"]])
def test_bad_rendering_options_are_refused(tmp_path, bad):
    result = CliRunner().invoke(app, ["vision", "render-data", "--out", str(tmp_path / "run"), *bad])
    assert result.exit_code == 2 and not (tmp_path / "run" / "data").exists(), result.output


def test_time_budget_ends_the_schedule_where_the_budget_runs_out(tmp_path, data):
    """`--time-budget` (a timed GPU lease): after 100 steps the run measures its pace, lowers --steps to what fits
    and anneals the cosine to zero there; the run ends normally (checkpoint, ONNX, state)."""
    import torch

    out = folder(tmp_path, data, "budget")
    result = CliRunner().invoke(app, [
        "vision", "train", "--out", str(out), "--steps", "1000000", "--batch", "8", "--threads", "1",
        "--classes", str(CLASSES), "--per-class", str(PER_CLASS), "--widths", "4,8,16", "--time-budget", "4",
    ])
    assert result.exit_code == 0, result.output
    state = json.loads((out / "train-state.json").read_text())
    assert 100 < state["step"] == state["config"]["steps"] < 1000000
    assert torch.load(out / "ckpt.pt", weights_only=False)["sched"]["_last_lr"][0] < 1e-5
    assert (out / "raiox-v1.onnx").exists()
