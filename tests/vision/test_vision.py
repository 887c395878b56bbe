import numpy as np
import pytest

from raiox.vision import Detection, FixtureEmbedding, analyze, canonical_crop, embed_reference, get_embedder, locate
from raiox.vision.detect import box_iou
from raiox.vision.embedders import DEFAULT_EMBEDDER, crop_size, shipped_embedders, shipped_model
from raiox.vision.interim import build_interim

from .standin import Fixture, render


@pytest.fixture(scope="module")
def embedder():
    return get_embedder()


@pytest.fixture(scope="module")
def scene():
    return render(
        [Fixture(250, 150, 10, abutment=True, crown=True), Fixture(560, 250, -80, length=180, radius=36)],
        seed=3,
    )


def test_embed_shape_norm_and_determinism(embedder):
    rng = np.random.default_rng(0)
    crops = [rng.random((192, 64), dtype=np.float32) for _ in range(3)] + [rng.random((100, 40), dtype=np.float32)]
    a, b = embedder.embed(crops), embedder.embed(crops)
    assert a.shape == (4, embedder.dim) == (4, 512)
    assert a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(a, b)
    assert embedder.embed([]).shape == (0, 512)


def test_default_embedder_is_shipped_model(embedder):
    assert embedder.model_id == "raiox-v12"  # shipped: no fallback to the random projection
    assert crop_size(embedder) == (256, 128)  # it takes the canonical crop at its own input size
    assert get_embedder() is embedder  # cached


def test_locate_finds_fixtures_and_ignores_other_metal(scene):
    found = locate(scene.image, method="classical")
    assert all(isinstance(d, Detection) and 0 <= d.confidence <= 1 for d in found)
    assert len(found) == 2  # not the crown, the abutment, the filling or the text
    for fx in scene.fixtures:
        best = max(found, key=lambda d: box_iou(d.box, fx.box()))
        assert box_iou(best.box, fx.box()) >= 0.5
        platform = best.box[:2].mean(0)
        assert np.hypot(*(platform - fx.box()[:2].mean(0))) < np.hypot(*(platform - fx.box()[2:].mean(0)))


@pytest.mark.parametrize("method", ["classical", "auto"])
def test_locate_on_empty_image(method):
    rng = np.random.default_rng(0)
    assert locate((0.3 + 0.02 * rng.standard_normal((300, 400))).astype(np.float32), method=method) == []


def test_canonical_crop_platform_up(scene):
    crop = canonical_crop(scene.image, scene.fixtures[0].box())
    assert crop.shape == (192, 64) and crop.min() >= 0 and crop.max() <= 1
    # the apex rounds off: the last rows of metal are narrower than the first
    rows = np.nonzero((crop > 0.5).sum(1))[0]
    top = (crop[rows[:10]] > 0.5).sum(1).mean()
    bottom = (crop[rows[-10:]] > 0.5).sum(1).mean()
    assert top > bottom


@pytest.mark.parametrize("turn", ["rot90", "flipud", "fliplr"])
def test_canonicalisation_invariance(embedder, turn):
    image = render([Fixture(300, 180, 15, length=230, radius=40, abutment=True)], seed=5).image
    moved = {"rot90": np.rot90, "flipud": np.flipud, "fliplr": np.fliplr}[turn](image).copy()
    boxes_a, boxes_b = locate(image, method="classical"), locate(moved, method="classical")
    assert len(boxes_a) == len(boxes_b) == 1
    a = analyze(image, embedder, boxes=[boxes_a[0].box])
    b = analyze(moved, embedder, boxes=[boxes_b[0].box])
    assert float(a[0].embedding @ b[0].embedding) > 0.95


def test_manual_boxes(scene, embedder):
    gt = scene.fixtures[0].box()
    auto = analyze(scene.image, embedder, boxes=[d.box for d in locate(scene.image, method="classical")])
    manual = analyze(scene.image, embedder, boxes=[gt])
    assert len(manual) == 1 and isinstance(manual[0], FixtureEmbedding)
    assert manual[0].confidence == 1.0
    np.testing.assert_allclose(manual[0].box, gt, atol=1e-4)
    best = max(auto, key=lambda f: box_iou(f.box, gt))
    assert float(best.embedding @ manual[0].embedding) > 0.8  # boxes differ by a few pixels
    x0, y0 = gt.min(0)
    x1, y1 = gt.max(0)
    upright = analyze(scene.image, embedder, boxes=[(x0, y0, x1, y1)])[0]
    assert upright.box[:2, 1].mean() < upright.box[2:, 1].mean()  # platform found at the top
    with pytest.raises(ValueError):
        analyze(scene.image, embedder, boxes=[(1, 2, 3)])


def test_embed_reference(scene, embedder):
    ref = embed_reference(scene.image, embedder)
    assert ref.shape == (512,)
    blank = embed_reference(np.full((200, 100), 0.2, np.float32), embedder)
    assert blank.shape == (512,) and abs(np.linalg.norm(blank) - 1) < 1e-5


def test_onnx_path_backend(tmp_path, scene):
    path = build_interim(tmp_path / "other.onnx", seed=7)
    other = get_embedder(f"onnx:{path}")
    assert other.model_id.startswith("onnx:other.onnx#")
    assert other.dim == 512
    vecs = other.embed([canonical_crop(scene.image, scene.fixtures[0].box())])
    assert vecs.shape == (1, 512)
    assert not np.allclose(vecs, get_embedder("raiox-v0").embed([canonical_crop(scene.image, scene.fixtures[0].box())]))


def test_onnx_path_rgb_square_input(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weights = np.arange(3 * 8, dtype=np.float32).reshape(3, 8) / 10
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["x"], ["p"]),
            helper.make_node("Flatten", ["p"], ["f"], axis=1),
            helper.make_node("MatMul", ["f", "w"], ["y"]),
        ],
        "rgb",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "rgb.onnx"))
    emb = get_embedder(f"onnx:{tmp_path / 'rgb.onnx'}")
    assert emb.dim == 8
    out = emb.embed([np.ones((192, 64), np.float32)])
    assert out.shape == (1, 8) and abs(np.linalg.norm(out) - 1) < 1e-5


def test_bad_specs(tmp_path):
    with pytest.raises(FileNotFoundError):
        get_embedder(f"onnx:{tmp_path / 'missing.onnx'}")
    with pytest.raises(ValueError) as err:
        get_embedder("no-such-model")
    assert "raiox-v11, raiox-v10, raiox-v9, " in str(err.value)  # the shipped models, newest first


def test_shipped_embedders_newest_first():
    names = shipped_embedders()
    assert names[0] == DEFAULT_EMBEDDER and names[-1] == "raiox-v0"  # numerically: raiox-v10 before raiox-v9
    assert names.index("raiox-v10") < names.index("raiox-v9")
    assert all(shipped_model(n) is not None and shipped_model(n).with_suffix(".md").is_file() or n == "raiox-v0"
               for n in names)  # each trained model ships with its card


def test_embedder_from_settings(monkeypatch):
    from raiox.kit.settings import get_settings

    monkeypatch.setenv("RAIOX_EMBEDDER", "raiox-v0")
    get_settings.cache_clear()
    try:
        assert get_embedder(None).model_id == "raiox-v0"
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_a_drawn_box_is_fitted_to_the_tilted_implant_it_frames():
    """An operator's axis-aligned box around a tilted implant is cropped along the implant's own axis (the
    localiser's box of it), not along the drawn box's sides; a box around no implant stays as drawn."""
    from raiox.synth import demo_catalog, render_scene
    from raiox.vision.detect import orient_box
    from raiox.vision.pipeline import fit_box

    spec = next(s.spec for s in demo_catalog() if s.id == "demo-004")
    scene = render_scene([spec], seed=11)  # one implant, about 40 degrees off the vertical
    truth = np.asarray(scene.boxes[0], dtype=np.float32)
    lo, hi = truth.min(axis=0), truth.max(axis=0)
    drawn = np.r_[lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)]
    assert box_iou(orient_box(scene.image, drawn), truth) < 0.5  # the drawn box's sides miss the implant's axis
    assert box_iou(fit_box(scene.image, drawn), truth) > 0.8
    height, width = scene.image.shape[:2]
    corner = (np.array([0, 0, 0.15 * width, 0.3 * height], np.float32) if lo[0] > 0.2 * width
              else np.array([0.85 * width, 0.7 * height, width, height], np.float32))
    assert np.allclose(fit_box(scene.image, corner), orient_box(scene.image, corner))
