"""The panel's system searches (the catalog page, a case's "Outro sistema do catálogo"): pt-BR design words, word by
word, find the systems whose terms the catalog types in English or abbreviates, and nothing else."""

import pytest

from raiox.models import ImplantSystem
from raiox.review import i18n, repository

DEMO = "Synthetica Demo Implants"
SYSTEMS = [  # id, maker, name, connection, body shape, the spec's connection kind (the demo catalog's forms)
    ("syn-cm11", DEMO, "Series 01A Tapered V-thread 0.8 mm, dome apex, CM 11.5°", "CM 11.5°", "tapered", "conical"),
    ("syn-cm16", DEMO, "Series 01B Tapered V-thread 0.8 mm, dome apex, CM 16°", "CM 16°", "tapered", "conical"),
    ("syn-hi", DEMO, "Series 05B Parallel square-thread 1 mm, cone apex, internal hex", "internal hex", "parallel",
     "internal_hex"),
    ("syn-he", DEMO, "Series 05C Parallel square-thread 1 mm, flat apex, external hex", "external hex", "parallel",
     "external_hex"),
    ("syn-tri", DEMO, "Series 05D Strong-taper knife-thread 2 mm, cone apex, tri-channel", "tri-channel",
     "strong-taper", "tri_channel"),
    ("nobel-cc", "Nobel Biocare", "NobelParallel CC", "conical", "parallel", None),
    ("ank-cx", "Dentsply", "Ankylos C/X", "morse taper", "parallel", None),  # a cone, but not a tapered body
    ("acme-he", "Acme Dental", "Hexa Classic", "HE", "cilíndrico", None),  # typed as Brazilian catalogs do; "cm" inside
    ("plain-hi", "Plain Implants", "Line P", None, None, "internal_hex"),  # only its geometry spec names the connection
]
CONICAL = {"syn-cm11", "syn-cm16", "nobel-cc", "ank-cx"}


@pytest.fixture
async def catalog(session):
    for system_id, manufacturer, name, connection, body, kind in SYSTEMS:
        session.add(ImplantSystem(id=system_id, manufacturer=manufacturer, name=name, connection=connection,
                                  body_shape=body, attributes={},
                                  spec={"connection": {"kind": kind}} if kind else None))
    await session.flush()
    return session


async def _found(session, query: str) -> set[str]:
    return {system.id for system in await repository.search_systems(session, query, limit=500)}


@pytest.mark.parametrize(("query", "expected"), [
    ("hexágono", {"syn-hi", "syn-he", "acme-he", "plain-hi"}),
    ("Hexágono Interno", {"syn-hi", "plain-hi"}),
    ("hexagono interno", {"syn-hi", "plain-hi"}),
    ("hexágono externo", {"syn-he", "acme-he"}),
    ("HE", {"syn-he", "acme-he"}),  # a word of its own: not the start of "hex"
    ("hi", {"syn-hi", "plain-hi"}),
    ("cônica", CONICAL),
    ("conica", CONICAL),
    ("CÔNICA", CONICAL),
    ("cone morse", CONICAL),  # not the cone apexes
    ("Cone Morse", CONICAL),
    ("CM", CONICAL),  # not Acme (a "cm" inside a word)
    ("CM 16°", {"syn-cm16"}),
    ("cm 16º", {"syn-cm16"}),  # the ordinal sign typed for the degree
    ("cone morse 16 graus", {"syn-cm16"}),
    ("CM 11,5°", {"syn-cm11"}),  # as the panel shows it
    ("trilobada", {"syn-tri"}),
    ("trilobular", {"syn-tri"}),
    ("trilobada (tri-channel)", {"syn-tri"}),
    ("cônico", {"syn-cm11", "syn-cm16", "syn-tri"}),  # tapered bodies; not the "morse taper" connection
    ("cônico acentuado", {"syn-tri"}),
    ("paralelo", {"syn-hi", "syn-he", "nobel-cc", "ank-cx", "acme-he"}),
    ("nobel cônica", {"nobel-cc"}),
    ("ápice plano", {"syn-he"}),
    ("rosca quadrada", {"syn-hi", "syn-he"}),
    ("nobel", {"nobel-cc"}),  # other words as before: anywhere, whole or in part
    ("series 01", {"syn-cm11", "syn-cm16"}),
    ("cone", {"syn-hi", "syn-tri"} | CONICAL),  # a cone apex too
    ("hexágono cônica", set()),
])
async def test_pt_br_design_words_find_the_systems_typed_in_catalog_terms(catalog, query, expected):
    assert await _found(catalog, query) == expected


PARALLEL = {"syn-hi", "syn-he", "nobel-cc", "ank-cx", "acme-he"}


@pytest.mark.parametrize(("query", "expected"), [
    ("hexágonos internos", {"syn-hi", "plain-hi"}),  # plurals, and the feminine, as the singular
    ("HEXÁGONOS EXTERNOS", {"syn-he", "acme-he"}),
    ("hexagonais internas", {"syn-hi", "plain-hi"}),
    ("cônicas", CONICAL),
    ("Conicas", CONICAL),
    ("cones Morse", CONICAL),
    ("cones morse 16 graus", {"syn-cm16"}),
    ("roscas quadradas", {"syn-hi", "syn-he"}),
    ("rosca quadrado", {"syn-hi", "syn-he"}),  # the other gender
    ("ápices arredondados", {"syn-cm11", "syn-cm16"}),
    ("apices planos", {"syn-he"}),
    ("ápice arredondada", {"syn-cm11", "syn-cm16"}),
    ("paralelas", PARALLEL),
    ("cilíndricos", PARALLEL),
    ("cônicos", {"syn-cm11", "syn-cm16", "syn-tri"}),  # the body, still not the connection
    ("trilobadas", {"syn-tri"}),
    ("GM", CONICAL),  # abbreviations: any case, accents, dots
    ("gm", CONICAL),
    ("C.M.", CONICAL),
    ("c.m 16°", {"syn-cm16"}),
    ("h.e.", {"syn-he", "acme-he"}),
    ("HÉ", {"syn-he", "acme-he"}),
    ("Hi", {"syn-hi", "plain-hi"}),
    ("hexágono externo.", {"syn-he", "acme-he"}),  # a sentence's final dot
    ("hexas", set()),  # a word the table does not know stays as typed
])
async def test_plural_gender_and_abbreviated_forms_find_what_the_singular_finds(catalog, query, expected):
    assert await _found(catalog, query) == expected


async def test_names_and_makers_are_found_by_the_key_the_catalog_keeps_them_unique_by(session):
    """The search folded with SQL (lower(), which leaves a non-ASCII capital as the database's LC_CTYPE says, and a
    fixed list of accented letters) while the catalog keeps names unique by `name_key` (Unicode case folding, every
    accent, spaces collapsed): "øster" did not find "ØSTER" under a "C" locale, nor "presny" "Přesný". The maker and
    the name are now searched on their stored keys, the typed words folded the same way in Python."""
    for system_id, manufacturer, name in (("cx", "Conexão", "Torque Tite"), ("st", "Straumann", "Bone Level"),
                                          ("os", "ØSTER Dental", "Přesný  Kónus"), ("pc", "Plain Co", "50% a_b")):
        session.add(ImplantSystem(id=system_id, manufacturer=manufacturer, name=name, attributes={}))
    await session.flush()
    for query, expected in (("conexao", {"cx"}), ("CONEXÃO torque", {"cx"}), ("STRAUMANN", {"st"}),
                            ("straumann bone", {"st"}), ("øster", {"os"}), ("Øster dental", {"os"}),
                            ("presny", {"os"}), ("PŘESNÝ kónus", {"os"}), ("přesný kónus", {"os"}),
                            ("%", {"pc"}), ("a_b", {"pc"}), ("a%b", set()), ("ab", set())):
        assert await _found(session, query) == expected, query


def _plural(word: str) -> str:
    for singular, plural in (("al", "ais"), ("el", "eis"), ("r", "res"), ("z", "zes")):
        if word.endswith(singular):
            return word[: -len(singular)] + plural
    return word + "s"


def test_every_word_of_the_table_is_found_in_the_plural_and_the_other_gender():
    """The table lists each word once (singular; one gender): a rule, not a list, finds its other forms."""
    from raiox.review.search_terms import SYNONYMS, search_words

    def pattern(query: str) -> str | None:
        return search_words(query, 1)[0].pattern

    for word in (w for w in SYNONYMS if len(w) > 2):
        forms = [_plural(word)]
        if word[-1] in "ao" and (other := word[:-1] + {"a": "o", "o": "a"}[word[-1]]) not in SYNONYMS:
            forms += [other, other + "s"]
        for form in forms:
            assert pattern(form) == pattern(word), (word, form)
    assert pattern("conicas") != pattern("conicos")  # the connection and the body: each its own word


async def test_every_term_the_panel_shows_in_pt_br_finds_the_systems_typed_with_it(session):
    """The panel's glossary (term.* messages) and the search agree: what the reader sees finds what was typed."""
    messages = i18n.catalog("pt_BR")
    terms = {key.removeprefix("term."): shown for key, shown in messages.items() if key.startswith("term.")}
    assert len(terms) >= 8
    for n, english in enumerate(terms):
        session.add(ImplantSystem(id=f"t-{n}", manufacturer="Maker", name=f"Line {n}", connection=english,
                                  body_shape=None, attributes={}))
    session.add(ImplantSystem(id="other", manufacturer="Maker", name="Plain", connection="something else",
                              attributes={}))
    await session.flush()
    for n, (english, shown) in enumerate(terms.items()):
        found = await _found(session, shown)
        assert f"t-{n}" in found and "other" not in found, (english, shown, found)


async def test_the_demo_catalog_is_found_by_its_designs_in_pt_br(session):
    """On the built-in demo catalog (connections typed "CM 11.5°", "internal hex"...): each pt-BR query finds exactly
    the systems whose geometry has that design."""
    from raiox.synth import demo_catalog

    demos = demo_catalog()
    for demo in demos:
        session.add(ImplantSystem(id=demo.id, manufacturer=demo.manufacturer, name=demo.name, spec=demo.spec,
                                  connection=demo.attributes["connection"], body_shape=demo.attributes["body_shape"],
                                  attributes=demo.attributes))
    await session.flush()

    def having(test) -> set[str]:
        return {demo.id for demo in demos if test(demo.spec["connection"], demo.attributes["body_shape"])}

    conical = having(lambda connection, _: connection["kind"] == "conical")
    assert conical and len(conical) < len(demos)
    for query, expected in [
        ("cônica", conical), ("cone morse", conical), ("CM", conical),
        ("hexágono interno", having(lambda connection, _: connection["kind"] == "internal_hex")),
        ("hexágono externo", having(lambda connection, _: connection["kind"] == "external_hex")),
        ("hexágono", having(lambda connection, _: connection["kind"] in ("internal_hex", "external_hex"))),
        ("trilobada", having(lambda connection, _: connection["kind"] == "tri_channel")),
        ("CM 16°", having(lambda connection, _: connection.get("cone_angle_deg") == 16)),
        ("cm 11,5", having(lambda connection, _: connection.get("cone_angle_deg") == 11.5)),
        ("cônico", having(lambda _, body: body in ("tapered", "strong-taper"))),
        ("paralelo", having(lambda _, body: body == "parallel")),
    ]:
        assert expected and await _found(session, query) == expected, query
