"""The words a reviewer types into the panel's system searches, as the catalog's terms (`repository.search_systems`
turns them into SQL).

The catalog types its design terms in English or as the trade abbreviates them ("internal hex", "conical",
"CM 11.5°", "tri-channel", "tapered"; shared/docs/implant-geometry.md 4), the panel shows them in pt-BR ("hexágono
interno", "cônica", "CM 11,5°"). A search goes word by word: every word must be found. A word the table below knows
("hexágono", "interno", "cônica", "cone", "morse", "CM", "trilobada", "cônico", "paralelo", ...) is found as any of
its catalog forms (and as typed, for a catalog that types the Portuguese); any other word anywhere in the system's
text, as before. Case and accents never matter: a typed word is folded with `raiox.models.catalog.name_key`, the key
the catalog stores beside each name and maker (and keeps them unique by), and the system's other fields with
`raiox.kit.db.folded`, which leaves Portuguese text the same ("Conexão", "CONEXAO": "conexao"). The table
holds each word once, singular and in one gender: a plural ("hexágonos internos", "roscas quadradas", "cones Morse",
"ápices arredondados", "hexagonais", "níveis") and the other gender are found by rule (`_entry`); an abbreviation
may be typed with dots ("C.M.") and a word with a sentence's final dot.

Following the panel's own glossary (`term.*` in the pt-BR messages), "cônica" is the conical *connection* ("conexão
cônica", cone Morse, CM) and "cônico" the tapered *body* ("implante cônico").

Patterns are PostgreSQL regular expressions (ARE) matched against the folded text: ``\\m`` a word's start, ``\\M``
its end. A two-letter abbreviation (CM, HE, HI) is found only as a word of its own ("he" is not the start of "hex").
"""

import re
from dataclasses import dataclass

from raiox.models.catalog import name_key


def _words(*forms: str) -> str:
    """Any of FORMS as a whole word."""
    return rf"\m({'|'.join(forms)})\M"


def _starts(*forms: str) -> str:
    """A word that starts with any of FORMS."""
    return rf"\m({'|'.join(forms)})"


HE, HI = _words("he"), _words("hi")  # hexágono externo / interno, as Brazilian catalogs abbreviate them
HEX = (_starts("hex"), HE, HI)  # hex, hexagon(al), hexágono
INTERNAL = (_starts("intern"), HI)  # internal, interno/interna
EXTERNAL = (_starts("extern"), HE)
# a conical connection: cone Morse (CM; Neodent's Grand Morse, GM), "conical", "morse taper", "internal cone"
CONICAL = (_words("cm", "gm", "conicas?"), _starts("conical", "morse"), r"\minternal cone")
TRI_CHANNEL = (r"\mtri-?\s?channel", _starts("tri-?\\s?lob"),)
OCTAGON = ("octa", "octogon")  # inside a word too: Straumann's synOcta
TAPERED = (r"(?<!morse )\mtaper",)  # tapered, strong-taper; not a connection's "morse taper"
STRONG_TAPER = (r"\mstrong-?\s?taper",)
PARALLEL = (_starts("parallel", "paralel", "straight", "cylindric", "cilindric"),)  # paralelo, cilíndrico typed too

# pt-BR word (folded: lower case, no accents; singular, one gender: `_entry` finds plurals and the other gender)
# -> its catalog forms
SYNONYMS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("hexagono", "hexagonal", "sextavado"), HEX),
    "interno": INTERNAL,
    "externo": EXTERNAL,
    "he": (HE, r"\mexternal hex", r"\mhexagono externo"),
    "hi": (HI, r"\minternal hex", r"\mhexagono interno"),
    **dict.fromkeys(("conica", "cm", "gm", "morse"), CONICAL),  # GM: Neodent's Grand Morse
    "cone": CONICAL,  # "cone Morse", "cone 11,5°"; as typed it still finds a cone apex, a maker's name
    **dict.fromkeys(("trilobado", "trilobular", "trilobulado", "trilobo", "tricanal"), TRI_CHANNEL),
    **dict.fromkeys(("octogono", "octagono", "octogonal"), OCTAGON),
    "conico": TAPERED,  # the body; "conica" (above) the connection: each is found as typed, not as the other
    "acentuado": STRONG_TAPER,  # "cônico acentuado"
    **dict.fromkeys(("paralelo", "cilindrico"), PARALLEL),
    # the rest of a design, as the catalog names it (collar, thread, apex, level)
    **dict.fromkeys(("colar", "pescoco"), (_starts("collar", "neck"),)),
    "usinado": (_starts("machined"),),
    "tulipa": (_starts("tulip"),),
    **dict.fromkeys(("microrrosca", "microrosca"), (r"\mmicro-?\s?thread",)),
    "rosca": ("thread",),
    "quadrado": (_starts("square"),),
    **dict.fromkeys(("reverso", "invertido"), (_starts("reverse"),)),
    "contraforte": (_starts("buttress"),),
    **dict.fromkeys(("faca", "lamina"), (_starts("knife"),)),
    "progressivo": (_starts("progressive"),),
    "duplo": (_starts("double"),),
    "triplo": (_starts("triple"),),
    "entrada": (_words("leads?"),),  # "dupla entrada": double-lead
    "passo": (_starts("pitch"),),
    **dict.fromkeys(("apice", "apical"), (_starts("apex", "apical"),)),
    "plano": (_starts("flat"),),
    **dict.fromkeys(("domo", "cupula", "arredondado"), (_starts("dome", "rounded"),)),
    "redondo": (_words("round"),),
    "furo": (_words("holes?"),),
    "oblongo": (_starts("oblong"),),
    **dict.fromkeys(("ranhura", "sulco"), (_words("flutes?", "grooves?"),)),
    "osseo": (_starts("bone"),),  # "nível ósseo": bone level
    **dict.fromkeys(("tecidual", "tecido"), (_starts("tissue"),)),
    "nivel": (_starts("level"),),
    "plataforma": (_starts("platform"),),
    "grau": ("°",),  # "CM 16 graus"
}
# pt-BR plural endings (folded) -> the singular's, the longer first: hexagonais -> hexagonal, niveis -> nivel,
# colares -> colar, cones -> cone, apices -> apice
_PLURALS = (("ais", "al"), ("eis", "el"), ("oes", "ao"), ("res", "r"), ("zes", "z"), ("s", ""))
_OTHER_GENDER = {"a": "o", "o": "a"}  # interna -> interno, quadrada -> quadrado
_ABBREVIATION = re.compile(r"[a-z](?:\.[a-z]){1,2}")  # C.M., H.E. (folded, the last dot gone): typed with dots


def _entry(word: str) -> tuple[str, str | None]:
    """A folded typed WORD's singular (pt-BR plural rules, a stem of three letters or more; WORD itself when it is no
    plural) and the SYNONYMS entry it is a form of (that singular, or it in the other gender; None when the table
    does not know the word). The word itself is looked up first: "conicas" is not "conico"'s other gender."""
    singulars = [word[: -len(end)] + singular for end, singular in _PLURALS
                 if word.endswith(end) and len(word) >= len(end) + 3]
    for form in (word, *singulars):
        other = form[:-1] + _OTHER_GENDER[form[-1]] if form[-1] in _OTHER_GENDER else form
        for candidate in (form, other):
            if candidate in SYNONYMS:
                return form, candidate
    return word, None


# around a typed word, not part of it: "(tri-channel)" is the word "tri-channel"
_PUNCTUATION = "()[]{}<>,;:!?\"'“”‘’"
_DECIMAL_COMMA = re.compile(r"(?<=\d),(?=\d)")


@dataclass(frozen=True)
class Word:
    """One typed word: found where the folded text holds any of TEXTS (literally) or matches PATTERN."""
    texts: tuple[str, ...]
    pattern: str | None = None


def search_words(query: str, max_words: int) -> list[Word]:
    """The first MAX_WORDS words of QUERY, folded, each with the ways the catalog may write it."""
    words = []
    for raw in query.split():
        word = name_key(raw.strip(_PUNCTUATION) or raw).replace("º", "°")  # 16º (the ordinal sign) typed for 16°
        word = word.rstrip(".") or word  # "hex." ends a sentence, "C.M." an abbreviation: the text has no dot
        if _ABBREVIATION.fullmatch(word):
            word = word.replace(".", "")
        if not word:
            continue
        singular, entry = _entry(word)
        forms = SYNONYMS[entry] if entry else None
        # an abbreviation only as a word of its own; a plural also as its singular, for a catalog typed in Portuguese
        # ("rosca quadrada" found by "roscas quadradas")
        texts = () if entry and len(word) <= 2 else tuple(dict.fromkeys((word, singular)))
        if _DECIMAL_COMMA.search(word):  # 11,5 as the panel shows it: the catalog types 11.5
            texts += (_DECIMAL_COMMA.sub(".", word),)
        words.append(Word(texts, "|".join(f"({form})" for form in forms) if forms else None))
        if len(words) == max_words:
            break
    return words
