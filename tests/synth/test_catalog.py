import re
from collections import defaultdict

import numpy as np

from raiox.synth import ASPECTS, demo_catalog, validate_spec

BRANDS = re.compile(r"straumann|nobel|neodent|astra|zimmer|biohorizons|osstem|megagen|dentium|ankylos|camlog|"
                    r"s\.i\.n|conex[aã]o|bicon|signo|implacil|intraoss|titaniumfix|medens|hiossen|kyocera", re.I)


def _flatten(spec, prefix=""):
    out = {}
    for k, v in spec.items():
        if isinstance(v, dict):
            out.update(_flatten(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def test_catalog_size_ids_and_names():
    cat = demo_catalog()
    assert len(cat) >= 120
    assert [s.id for s in cat] == [f"demo-{i:03d}" for i in range(1, len(cat) + 1)]
    assert len({s.name for s in cat}) == len(cat)
    for s in cat:
        assert not BRANDS.search(s.name) and not BRANDS.search(s.manufacturer)
        assert s.attributes["synthetic"] is True
        assert s.spec["diameter_mm"] in s.attributes["diameters"]
        assert s.spec["length_mm"] in s.attributes["lengths"]


def test_catalog_is_deterministic_and_copies():
    a, b = demo_catalog(), demo_catalog()
    assert [s.spec for s in a] == [s.spec for s in b]
    a[0].spec["length_mm"] = 99
    assert demo_catalog()[0].spec["length_mm"] != 99


def test_catalog_spans_the_realistic_ranges():
    cat = demo_catalog()
    specs = [s.spec for s in cat]
    assert min(s["diameter_mm"] for s in specs) <= 3.0 and max(s["diameter_mm"] for s in specs) >= 6.0
    assert min(s["length_mm"] for s in specs) <= 7 and max(s["length_mm"] for s in specs) >= 16
    pitches = {s["thread"]["pitch_mm"] for s in specs}
    assert min(pitches) <= 0.6 and max(pitches) >= 2.0
    assert {s["thread"]["leads"] for s in specs} == {1, 2, 3}
    angles = {s["connection"].get("cone_angle_deg") for s in specs}
    assert {8, 11, 11.5, 16, 22, 24} <= angles
    assert {s["thread"]["profile"] for s in specs} == {"v", "square", "buttress", "reverse_buttress", "knife"}
    assert {s["connection"]["kind"] for s in specs} == {"external_hex", "internal_hex", "conical", "tri_channel"}


def test_look_alike_groups_differ_in_exactly_their_aspect():
    groups = defaultdict(list)
    for s in demo_catalog():
        groups[s.group].append(s)
    assert len(groups) >= 25
    seen_aspects = set()
    for name, members in groups.items():
        assert len(members) >= 3, name
        aspect = members[0].attributes["look_alike_aspect"]
        seen_aspects.add(aspect)
        allowed = ASPECTS[aspect]
        flat = [_flatten(m.spec) for m in members]
        for i in range(len(flat)):
            for j in range(i + 1, len(flat)):
                keys = set(flat[i]) | set(flat[j])
                diff = {k for k in keys if flat[i].get(k) != flat[j].get(k)}
                assert diff, f"{name}: {members[i].id} and {members[j].id} are identical"
                assert all(any(k == p or k.startswith(p + ".") for p in allowed) for k in diff), (name, diff)
    assert seen_aspects == set(ASPECTS)


def test_every_cone_carries_the_platform_and_screw_of_its_angle():
    """A conical connection's platform and internal screw go with its angle (Neodent CM 11.5 deg: 2.5 /
    1.8 mm, GM 16 deg: 3.0 / 1.6 mm; docs/implant-geometry notes): cone-angle siblings differ in the
    whole cone, not in the angle alone, as real lines that share a body do; a platform is narrower only where
    the body could not hold it (``_fit_connection``)."""
    from raiox.synth.catalog import _CONE_PLATFORM

    cones = [s for s in demo_catalog() if s.spec["connection"]["kind"] == "conical"]
    assert len({s.spec["connection"]["cone_angle_deg"] for s in cones}) >= 5
    narrowed = 0
    for s in cones:
        c, d = s.spec["connection"], s.spec["diameter_mm"]
        full = min(_CONE_PLATFORM[c["cone_angle_deg"]], round(d - 1.0, 2))
        assert full - 0.6 <= c["platform_mm"] <= full, (s.id, c)
        narrowed += c["platform_mm"] < full
        assert c["screw_mm"] == {22: 2.0, 11.5: 1.8, 8: 1.8}.get(c["cone_angle_deg"], 1.6), (s.id, c)
    by_group = defaultdict(set)
    for s in cones:
        if s.attributes["look_alike_aspect"] == "cone_angle":
            by_group[s.group].add(s.spec["connection"]["platform_mm"])
    assert by_group and all(len(p) >= 3 for p in by_group.values()), by_group
    assert 0 < narrowed < len(cones) / 4


def test_every_size_of_a_line_holds_its_connection():
    """A line lists only the diameters whose body keeps a wall around the connection: where it could not, the
    renderer would cut the connection to the core and draw another system (a 22 degree cone in a 3.8 mm body
    rendered as ~12 degrees, next to its 8 degree sibling)."""
    from raiox.synth import line_size, with_size
    from raiox.synth.catalog import CONNECTION_CUT_MM
    from raiox.synth.geometry import build_tables

    cut_before = 0
    for s in demo_catalog():
        for d in s.attributes["diameters"]:
            assert build_tables(with_size(s.spec, d, s.spec["length_mm"])).void_cut <= CONNECTION_CUT_MM, (s.id, d)
        for k in range(8):
            assert build_tables(line_size(s, k)).void_cut <= CONNECTION_CUT_MM, (s.id, k)
        if s.spec["connection"]["kind"] == "conical" and s.spec["connection"]["cone_angle_deg"] == 22:
            narrow = with_size(s.spec, s.spec["diameter_mm"] - 0.7, s.spec["length_mm"])
            cut_before += build_tables(narrow).void_cut > CONNECTION_CUT_MM
    assert cut_before >= 5  # the rule bites: 22 degree lines lose their narrow sizes


def test_catalog_is_json_serialisable():
    import json

    for s in demo_catalog():
        json.dumps({"id": s.id, "name": s.name, "spec": s.spec, "attributes": s.attributes, "group": s.group})


def test_look_alikes_project_differently():
    """Every pair inside a group gives a different projection (same pose, 12 px/mm; 11 vs 11.5 degree
    cones would differ by only ~0.02 mm, so groups never pair them)."""
    import numpy as np

    from raiox.synth.geometry import project_fixture

    groups = defaultdict(list)
    for s in demo_catalog():
        groups[s.group].append(s)
    for name, members in groups.items():
        maps = [project_fixture(m.spec, 12.0, axial_rot=0.3, samples=10).solid for m in members]
        for i in range(len(maps)):
            for j in range(i + 1, len(maps)):
                h = min(maps[i].shape[0], maps[j].shape[0])
                w = min(maps[i].shape[1], maps[j].shape[1])
                diff = np.abs(maps[i][:h, :w] - maps[j][:h, :w])
                assert diff.max() > 0.1 and diff.mean() > 0.002, (name, members[i].id, members[j].id, diff.max())


def test_line_sizes_cover_the_line_and_keep_the_design():
    from raiox.synth import line_size

    for system in demo_catalog()[::9]:
        assert line_size(system, 0) == system.spec
        sizes = set()
        for k in range(6):
            spec = line_size(system, k)
            validate_spec(spec)
            assert spec["thread"]["pitch_mm"] == system.spec["thread"]["pitch_mm"]
            assert spec["thread"]["profile"] == system.spec["thread"]["profile"]
            assert spec["apex"] == system.spec["apex"]
            assert spec["connection"]["kind"] == system.spec["connection"]["kind"]
            sizes.add((spec["diameter_mm"], spec["length_mm"]))
            if k:
                assert spec["diameter_mm"] in system.attributes["diameters"] or spec == system.spec
                assert spec["length_mm"] in system.attributes["lengths"] or spec == system.spec
        assert len(sizes) >= 4  # six references span several sizes of the line, not one size six times
    rng = np.random.default_rng(1)
    drawn = line_size(demo_catalog()[0], None, rng)
    assert drawn["length_mm"] in demo_catalog()[0].attributes["lengths"] + [demo_catalog()[0].spec["length_mm"]]


def test_demo_references_cover_every_size_of_the_line():
    """`raiox catalog demo` stores one reference per (diameter, length) of a line (at least six), so a
    query of any catalogued size meets a reference of its own proportions."""
    from raiox.synth import line_size, reference_count
    from raiox.synth.catalog import MIN_REFERENCES

    counts = []
    for system in demo_catalog()[::7]:
        n = reference_count(system)
        counts.append(n)
        pairs = {(d, l) for d in system.attributes["diameters"] for l in system.attributes["lengths"]}
        stored = {(line_size(system, k)["diameter_mm"], line_size(system, k)["length_mm"]) for k in range(n)}
        catalogued = {p for p in pairs if p in stored}
        buildable = {(s["diameter_mm"], s["length_mm"]) for s in (line_size(system, k) for k in range(len(pairs) + 1))}
        assert catalogued == {p for p in pairs if p in buildable}  # every size the design can take is stored
        assert n >= MIN_REFERENCES
    assert max(counts) > MIN_REFERENCES  # long lines get more than the minimum


def test_reference_plan_adds_restored_references_at_the_first_sizes():
    """Half of the queries carry a crown, abutment, healing cap or cover screw: the demo catalogue stores
    the fixture under each of them too, at the first sizes of its line, beside the bare references."""
    from raiox.synth import reference_count, reference_plan, render_reference
    from raiox.synth.catalog import RESTORATIONS, RESTORED_SIZES, Reference

    system = demo_catalog()[5]
    plan = reference_plan(system)
    bare = [r for r in plan if r.prosthesis == "none"]
    assert [r.size for r in bare] == list(range(reference_count(system)))
    restored = [(r.size, r.prosthesis) for r in plan if r.prosthesis != "none"]
    assert restored == [(k, kind) for k in range(RESTORED_SIZES) for kind in RESTORATIONS]
    assert len({r.seed for r in plan}) == len(plan)  # every render its own bone and noise
    assert all(Reference.from_tag(r.tag) == r for r in plan)
    assert len(reference_plan(system, clean=3, restored_sizes=0)) == 3
    # no more sizes than bare ones
    assert len(reference_plan(system, clean=1, restored_sizes=5)) == 1 + len(RESTORATIONS)

    spec = system.spec
    plain = render_reference(spec, seed=4)
    crowned = render_reference(spec, seed=4, prosthesis="crown")
    top = slice(0, plain.shape[0] // 4)  # the fixture sits centred, platform up: the crown lies above it
    assert crowned[top].mean() > plain[top].mean() + 0.02
