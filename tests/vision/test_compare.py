"""Paired comparison of two evaluations (`raiox.vision.compare`, `raiox vision compare-hits`)."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from raiox.cli import app
from raiox.vision import compare


def results(model: str, sets: dict[int, tuple[list[int], list[bool], list[bool]]]) -> list[dict]:
    """``evaluate``-shaped results: per seed the query labels and the product method's top-1 / top-5 hits."""
    return [{"embedder": model, "config": SimpleNamespace(seed=seed), "labels": np.array(labels),
             "methods": {model: {"hits": (np.array(top1), np.array(top5))}}}
            for seed, (labels, top1, top5) in sets.items()]


def test_mcnemar_exact_p_values():
    """Two-sided exact binomial on the discordant pairs: 10 vs 0 is 2 / 2**10; an even split, or none, is 1."""
    assert compare.mcnemar_p(10, 0) == pytest.approx(2 / 1024) == compare.mcnemar_p(0, 10)
    assert compare.mcnemar_p(5, 5) == 1.0 and compare.mcnemar_p(0, 0) == 1.0
    assert compare.mcnemar_p(3, 1) == pytest.approx(2 * (1 + 4) / 16)
    assert compare.mcnemar_p(30, 10) < 0.01 < compare.mcnemar_p(12, 8)


def test_paired_counts_discordant_queries_per_set_and_pooled(tmp_path):
    a = results("A", {7000: ([0, 1, 2, 3], [True, True, False, False], [True] * 4),
                      7001: ([4, 5], [True, False], [True, True])})
    b = results("B", {7000: ([0, 1, 2, 3], [True, False, True, True], [True] * 4),
                      7001: ([4, 5], [False, False], [True, False])})
    compare.write_hits(tmp_path / "a.json", a)
    compare.write_hits(tmp_path / "b.json", b)
    ha, hb = compare.read_hits(tmp_path / "a.json"), compare.read_hits(tmp_path / "b.json")
    top1 = compare.paired(ha, hb)
    assert [(r["seed"], r["a_only"], r["b_only"]) for r in top1["rows"]] == [(7000, 1, 2), (7001, 1, 0)]
    assert top1["total"] == {"n": 6, "a": 3, "b": 3, "a_only": 2, "b_only": 2} and top1["p"] == 1.0
    assert compare.paired(ha, hb, "top5")["total"]["a_only"] == 1
    text = compare.markdown(ha, hb)
    assert "| all | 6 | 50.0% | 50.0% | 2 | 2 |" in text and "top-5 100.0% vs 83.3%" in text


def test_files_of_other_sets_or_queries_are_refused(tmp_path):
    base = results("A", {7000: ([0, 1], [True, True], [True, True])})
    other_seed = results("B", {7001: ([0, 1], [True, False], [True, True])})
    other_queries = results("B", {7000: ([1, 0], [True, False], [True, True])})
    ha = compare.hits_record(base)
    with pytest.raises(compare.HitsMismatch, match="seeds"):
        compare.paired(ha, compare.hits_record(other_seed))
    with pytest.raises(compare.HitsMismatch, match="different queries"):
        compare.paired(ha, compare.hits_record(other_queries))
    (tmp_path / "bad.json").write_text(json.dumps({"version": 99, "sets": []}))
    (tmp_path / "broken.json").write_text("{")
    for name in ("bad.json", "broken.json", "missing.json"):
        with pytest.raises(compare.HitsMismatch, match="not a hits file"):
            compare.read_hits(tmp_path / name)


def test_compare_hits_command(tmp_path):
    compare.write_hits(tmp_path / "a.json", results("A", {7000: ([0, 1, 2], [True, True, True], [True] * 3)}))
    compare.write_hits(tmp_path / "b.json", results("B", {7000: ([0, 1, 2], [False, True, False], [True] * 3)}))
    result = CliRunner().invoke(app, ["vision", "compare-hits", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert result.exit_code == 0, result.output
    assert "| 7000 | 3 | 100.0% | 33.3% | 2 | 0 |" in result.output and "p = 0.5 (2 vs 0" in result.output
    (tmp_path / "c.json").write_text("[]")
    result = CliRunner().invoke(app, ["vision", "compare-hits", str(tmp_path / "a.json"), str(tmp_path / "c.json")])
    assert result.exit_code == 1 and "not a hits file" in result.output
