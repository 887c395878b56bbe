"""`raiox vision eval` on a tiny slice of the demo catalog: the figures it writes and the doc section.

Three demo systems, two bare and eight restored references and two hard queries each, one multi-implant scene: enough to
check that the section is rewritten (hand-written notes kept), every method and the localisation
are reported, and a cached rerun renders nothing and gives the same figures.
"""

import json
import re

import pytest

import numpy as np

from typer.testing import CliRunner

from raiox.cli import app
from raiox.vision import connection, features
from raiox.vision import evaluate as ev
from raiox.vision.embedders import DEFAULT_EMBEDDER as MODEL
from raiox.vision.ranking import RERANK_POOL

ARGS = ["vision", "eval", "--limit", "3", "--gallery", "2", "--queries", "2", "--scenes", "1"]


def percent(text: str, row: str) -> list[float]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {row} |"))
    return [float(x) for x in re.findall(r"([\d.]+)%", line)]


def test_eval_writes_its_section_keeps_notes_and_reuses_the_cache(tmp_path, monkeypatch):
    doc = tmp_path / "bench.md"
    doc.write_text("# Benchmarks\n\n## Vision\n\nold figures\n\n"
                   f"{ev.NOTES_BEGIN}\nHand-written: how to read these.\n{ev.NOTES_END}\n\n## Search\n\nkept\n")
    cache = tmp_path / "cache"
    result = CliRunner().invoke(app, ARGS + ["--doc", str(doc), "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    text = doc.read_text()
    assert "old figures" not in text and "## Search\n\nkept" in text
    assert (text.index("| Method | top-1 | top-5 |") < text.index("Hand-written: how to read these.")
            < text.index("## Search"))
    assert text.count(ev.NOTES_BEGIN) == 1
    assert "3 demo systems" in text and "gallery 30 references (6 bare, 24 with a restoration)" in text
    rows = [MODEL, "raw pixels", "HOG", f"{MODEL}, ground-truth boxes"]
    if connection.model_path() is not None:  # the product re-ranks with the connection reader: both are reported
        rows.append(f"{MODEL}, embedding alone (no re-rank)")
        assert f"Connection reader: `{connection.MODEL_FILE}` re-ranks each query's first {RERANK_POOL} systems" in text
    else:
        assert "Connection reader: off" in text
    if features.model_path() is not None:  # the shipped feature reader reads the default embedder's vectors
        rows.append(f"{MODEL}, connection re-rank only (no feature re-rank)")
        rows.append(f"{MODEL}, without the thread count")
        assert "Thread count: the length over thread pitch counted on each query's silhouette" in text
        count = re.search(r"Thread count on the located queries .*?: within 5 % ([\d.]+)%, within 10 % ([\d.]+)%, "
                          r"median error ([\d.]+)% \(n (\d+)\)", text)
        assert count and float(count.group(1)) <= float(count.group(2)) <= 100 and 1 <= int(count.group(4)) <= 9
        assert f"Feature reader: `{features.MODEL_FILE}` adds the design features" in text
        read = re.search(r"Feature reader on the located queries .*?: apex_shape ([\d.]+)%.*?\(n (\d+)\)", text)
        assert read and 0 <= float(read.group(1)) <= 100 and 1 <= int(read.group(2)) <= 9  # 3 systems x 2 + scene
    else:
        assert "Feature reader: off" in text
    for row in rows:
        top1, top5 = percent(text, row)
        assert 0 <= top1 <= top5 <= 100
    group = re.search(rf"look-alike group \(.*?\): {MODEL} ([\d.]+)%, .*?raw pixels ([\d.]+)%", text)
    assert group and float(group.group(1)) >= percent(text, MODEL)[0]  # the right system is in its own group
    recall = float(re.search(r"recall ([\d.]+)%", text).group(1))
    assert recall > 50  # 8-9 fixtures; the localiser finds most
    assert re.search(r"([\d.]+) ms per crop embedding", text)
    turned = re.search(r"Orientation check .*?: (\d+) of (\d+) checked .*?, (\d+) turned, (\d+) of the (\d+) .*?, "
                       r"(\d+) called right", text)
    assert turned, text
    checked, located, n_turned, fixed, wrong, broken = map(int, turned.groups())
    assert checked <= located and n_turned <= checked and fixed <= wrong and broken <= n_turned

    renders = sorted(p.name for p in cache.glob("*.npz"))
    assert len(renders) == 3 * (2 + 2 * 4 + 2) + 1  # per system: 2 bare and 8 restored references, 2 queries
    again = CliRunner().invoke(app, ARGS + ["--no-write", "--cache", str(cache), "--cached-only"])
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in cache.glob("*.npz")) == renders
    assert percent(again.output, f"{MODEL}, ground-truth boxes") == percent(text, f"{MODEL}, ground-truth boxes")

    # a render cached from something else (an older catalog or reference size) is stale: rendered again
    stale = cache / "g001-1.npz"
    data = dict(np.load(stale))
    data["fingerprint"] = np.array("0" * 16)
    np.savez_compressed(stale, **data)
    partial = CliRunner().invoke(app, ARGS + ["--no-write", "--cache", str(cache), "--cached-only"])
    assert partial.exit_code == 0 and "2 demo systems" in partial.output  # system 1 is incomplete: left out
    CliRunner().invoke(app, ARGS + ["--no-write", "--cache", str(cache)])
    assert str(np.load(stale)["fingerprint"]) != "0" * 16

    # every render stale (the renderer's code changed): a clear error, not a crash on an empty set
    monkeypatch.setattr(ev, "renderer_digest", lambda: "another-code")
    none = CliRunner().invoke(app, ARGS + ["--no-write", "--cache", str(cache), "--cached-only"])
    assert none.exit_code == 1 and "no demo system has all its renders" in none.output
    assert "drop --cached-only" in none.output and "Traceback" not in none.output


def test_eval_on_another_seed_renders_a_fresh_set(tmp_path):
    args = ["vision", "eval", "--limit", "2", "--gallery", "1", "--restored", "0", "--queries", "1", "--scenes", "0",
            "--no-write"]
    first, other = tmp_path / "a", tmp_path / "b"
    assert CliRunner().invoke(app, args + ["--cache", str(first)]).exit_code == 0
    result = CliRunner().invoke(app, args + ["--cache", str(other), "--seed", "7001"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in first.glob("*.npz"))
    assert names == sorted(p.name for p in other.glob("*.npz")) and names
    for name in names:  # the same items, drawn again
        assert not np.array_equal(np.load(first / name)["image"], np.load(other / name)["image"]), name


def test_a_change_to_the_renderer_code_makes_cached_renders_stale(monkeypatch):
    from raiox.synth import demo_catalog

    systems, cfg = demo_catalog()[:2], ev.EvalConfig()
    items = [("g000-1", [0], "reference"), ("q001-0", [1], "noise")]

    def prints():
        return [ev.fingerprint(key, members, cond, systems, cfg) for key, members, cond in items]

    before = prints()
    assert len(ev.renderer_digest()) == 16 and prints() == before
    monkeypatch.setattr(ev, "renderer_digest", lambda: "another renderer")
    assert all(a != b for a, b in zip(prints(), before))
    monkeypatch.undo()
    monkeypatch.setattr(ev, "RENDER_ITEM", ev.RENDER_ITEM + 1)
    assert all(a != b for a, b in zip(prints(), before))
    monkeypatch.undo()
    assert prints() == before


def test_gallery_keeps_one_copy_of_references_that_render_identically():
    """Siblings that differ only inside the connection look the same once a crown or abutment fills it:
    with the same seed their restored references can be the same pixels. The catalog import keeps the first (content
    digest), so the evaluation's gallery does too; a different image is kept."""
    from raiox.synth import demo_catalog

    systems = demo_catalog()
    cfg = ev.EvalConfig()
    first, _, _ = ev.render_item("g140-0-crown", [140], "reference", systems, cfg)
    sibling, _, _ = ev.render_item("g143-0-crown", [143], "reference", systems, cfg)
    bare, _, _ = ev.render_item("g143-0", [143], "reference", systems, cfg)
    # demo-141 and demo-144: 8 and 11.5 degree cones with the same screw, under a crown that saturates the head
    assert np.array_equal(first, sibling)
    seen: set[str] = set()
    assert [ev._seen_before(img, seen) for img in (first, sibling, bare, bare.copy())] == [False, True, False, True]


def test_a_sibling_first_counts_for_the_look_alike_group_not_for_top1():
    groups = ["G1", "G1", "G2", "G2"]
    order = np.array([[1, 0, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3], [3, 2, 1, 0]])  # sibling, right, other group, right
    res = ev.scores(order, np.array([0, 0, 2, 3]), [True, True, True, False], ["a"] * 4, groups)
    assert res["top1"] == 0.25 and res["group_top1"] == 0.5  # the last query was not located: a miss for both


def test_a_system_scores_the_mean_of_its_closest_references():
    from raiox.vision.ranking import SCORE_REFERENCES

    assert SCORE_REFERENCES == 2  # the catalog search imports the same constant
    # system 0: one reference almost equal to the query, one far; system 1: two references fairly close
    query = np.array([[1.0, 0.0]])
    gallery = np.array([[0.99, 0.141], [0.0, 1.0], [0.8, 0.6], [0.8, -0.6], [0.7, 0.714]])
    labels = np.array([0, 0, 1, 1, 2])
    assert ev.rank(gallery, labels, query, 3).tolist() == [[1, 2, 0]]  # 0.8, 0.7, 0.495
    assert ev.rank(gallery, labels, query, 3, references=1).tolist() == [[0, 1, 2]]  # best reference alone


@pytest.mark.parametrize("edited, stale, loc_stale", [
    ("conditions.py", True, True),  # the evaluation's hard conditions: every cached evaluation render
    ("scene.py", True, True),  # the renderer itself
    ("specdraw.py", False, True),  # random specs: only the localiser's scenes are drawn from them
    ("synthbridge.py", False, False),  # training-only draws: nothing cached hangs on them
])
def test_the_renderer_digest_covers_the_code_renders_are_drawn_from_and_nothing_else(monkeypatch, edited, stale,
                                                                                      loc_stale):
    from pathlib import Path

    from raiox.vision import loceval

    ev.renderer_digest.cache_clear()
    before = ev.renderer_digest(), loceval._digest()
    read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: read(self) + (b"#" if self.name == edited else b""))
    ev.renderer_digest.cache_clear()
    after = ev.renderer_digest(), loceval._digest()
    monkeypatch.undo()
    ev.renderer_digest.cache_clear()
    assert (after[0] != before[0], after[1] != before[1]) == (stale, loc_stale)
    assert (ev.renderer_digest(), loceval._digest()) == before


def test_the_orientation_check_turns_a_query_only_where_its_reverse_matches_the_gallery_by_the_margin():
    from raiox.vision.ranking import ORIENTATION_MARGIN

    rng = np.random.default_rng(3)
    gallery = rng.standard_normal((4, 16)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    g_lab = np.array([0, 0, 1, 1])
    up = np.stack([gallery[0], -gallery[2], -gallery[0]])  # right way up; upside down; upside down but unlocated
    down = [-gallery[0], gallery[2], None]  # the reverse crops' vectors (None: not located)
    vectors = {id(v): v for v in down if v is not None}
    sets = ev.Sets(systems=[0, 1], gallery=[], g_lab=g_lab, restored=0, queries=[1, 1, None], q_lab=np.array([0, 1, 0]),
                   q_cond=["noise"] * 3, oracle_g=[], oracle_q=[], loc={}, q_reverse=[v for v in down[:2]] + [None],
                   q_platform_ok=[np.True_, np.False_, None])
    embed = lambda crops: np.stack([vectors[id(c)] for c in crops])
    turned, reverse = ev.turned_over(sets, gallery, up, embed, 2)
    assert turned == [False, True, False]
    np.testing.assert_array_equal(reverse, [down[1]])  # each reverse crop embedded once, kept for orient
    oriented = ev.orient(up, reverse, turned)
    np.testing.assert_array_equal(oriented[1], gallery[2])
    np.testing.assert_array_equal(oriented[[0, 2]], up[[0, 2]])
    counts = ev.orientation_counts(turned, sets.q_platform_ok)  # numpy booleans count like Python ones
    assert counts == {"checked": 2, "unchecked_wrong": 0, "turned": 1, "fixed": 1, "broken": 0, "wrong_before": 1,
                      "located": 2, "platform_correct": 1.0}
    # the second query not checked (its ends looked sure): it stays wrong, and the line says so
    unchecked = ev.orientation_counts([False] * 3, sets.q_platform_ok, [down[0], None, None])
    assert unchecked["checked"] == 1 and unchecked["unchecked_wrong"] == 1 and unchecked["platform_correct"] == 0.5
    assert ("1 of 2 checked" in ev.orientation_line(unchecked)
            and "1 of them not checked" in ev.orientation_line(unchecked))
    # a reverse reading only slightly better than the crop's own is not enough
    close = np.stack([gallery[0] * 0.99 + gallery[1] * 0.01] * 3)
    assert ev.turned_over(ev.Sets(**{**sets.__dict__, "q_reverse": [down[0], None, None]}),
                          gallery, close * (1 - ORIENTATION_MARGIN / 2), embed, 2)[0] == [False, False, False]


def test_eval_also_seed_reports_each_set_and_their_mean(tmp_path):
    """`--also-seed` evaluates another set (cached beside the first, CACHE-SEED) and adds a line per set and their
    mean; the main figures stay the first set's."""
    cache = tmp_path / "cache"
    hits = tmp_path / "hits.json"
    result = CliRunner().invoke(app, ARGS + ["--no-write", "--cache", str(cache), "--also-seed", "7001",
                                             "--hits", str(hits)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cache-7001").is_dir() and any((tmp_path / "cache-7001").glob("*.npz"))
    rows = {line.split("|")[1].strip(): [float(x) for x in re.findall(r"([\d.]+)%", line)]
            for line in result.output.splitlines() if re.match(r"\| (\d+|mean of 2) \|", line)}
    assert set(rows) == {"7000", "7001", "mean of 2"}
    assert rows["7000"][:2] == percent(result.output, MODEL)  # the section's own set first
    for column in range(4):
        assert rows["mean of 2"][column] == pytest.approx((rows["7000"][column] + rows["7001"][column]) / 2, abs=0.06)
    assert all(0 <= top1 <= top5 <= 100 for top1, top5, *_ in rows.values())
    assert "Pooled over the 2 sets'" in result.output
    record = json.loads(hits.read_text())  # `--hits`: each set's queries, in order, for `compare-hits`
    assert record["embedder"] == MODEL and [s["seed"] for s in record["sets"]] == [7000, 7001]
    for s, seed in zip(record["sets"], ("7000", "7001")):
        assert len(s["labels"]) == len(s["top1"]) == len(s["top5"])
        assert round(100 * sum(s["top1"]) / len(s["top1"]), 1) == rows[seed][0]
        assert all(t5 for t1, t5 in zip(s["top1"], s["top5"]) if t1)


def test_wilson_interval_matches_the_published_values_and_narrows_with_more_trials():
    """Newcombe (1998), Statistics in Medicine 17:857, table I, method 3; all or nothing stays inside [0, 1]."""
    for hits, n, published in ((81, 263, (0.2553, 0.3662)), (15, 148, (0.0624, 0.1605)), (0, 20, (0.0, 0.1611)),
                               (1, 29, (0.0061, 0.1718))):
        assert tuple(round(x, 4) for x in ev.wilson(hits, n)) == published
    assert ev.wilson(0, 10)[0] == 0.0 and ev.wilson(10, 10)[1] == 1.0 and ev.wilson(0, 10)[1] > 0.2
    wide, narrow = ev.wilson(880, 1000), ev.wilson(4400, 5000)
    assert wide[0] < narrow[0] < 0.88 < narrow[1] < wide[1]
    with pytest.raises(ValueError):
        ev.wilson(0, 0)


def test_pooled_line_weights_each_set_by_its_fixtures():
    """Two sets of 100 and 300 fixtures at 90 % and 80 % top-1 pool to 82.5 %, not the 85 % mean of the rows."""
    def result(top1, top5, n):
        hits = (np.arange(n) < round(top1 * n), np.arange(n) < round(top5 * n))
        return {"embedder": "m", "methods": {"m": {"top1": top1, "top5": top5, "n": n, "hits": hits}}}

    line = ev.pooled_line([result(0.9, 1.0, 100), result(0.8, 0.99, 300)])
    assert "2 sets' 400 fixtures" in line
    figures = [float(x) for x in re.findall(r"([\d.]+)%", line)]
    assert figures[0] == 82.5 and figures[3] == pytest.approx(99.2)
    low, high = ev.wilson(330, 400)
    assert figures[1:3] == [round(low * 100, 1), round(high * 100, 1)]


def test_eval_warns_up_front_when_a_configured_reader_would_read_nothing(tmp_path, monkeypatch):
    """A feature reader fitted on another embedder is named before the evaluation runs, and its report says off."""
    monkeypatch.setenv(features.MODEL_ENV, str(features.model_path("raiox-v11")))
    result = CliRunner().invoke(app, ARGS + ["--no-write", "--cache", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    warning = next(line for line in result.output.splitlines() if line.startswith("warning:"))
    assert ("reads the vectors of `raiox-v11`" in warning
            and result.output.index(warning) < result.output.index("| Method"))
    assert "Feature reader: off" in result.output
