"""The words a reviewer types into the panel's system searches, as the catalog's terms (`repository.search_systems`
turns them into SQL).

The catalog types its design terms in English or as the trade abbreviates them ("internal hex", "conical",
"CM 11.5°", "tri-channel", "tapered"; shared/docs/implant-geometry.md 4), the panel shows them in pt-BR ("hexágono
interno", "cônica", "CM 11,5°"). A search goes word by word: every word must be found. A word the table below knows
("hexágono", "interno", "cônica", "cone", "morse", "CM", "trilobada", "cônico", "paralelo", ...) is found as any of
its catalog forms (and as typed, for a catalog that types the Portuguese); any other word anywhere in the system's
text, as before. Case and accents never matter (the text is folded on both sides, `raiox.kit.db.folded`).

Following the panel's own glossary (`term.*` in the pt-BR messages), "cônica" is the conical *connection* ("conexão
cônica", cone Morse, CM) and "cônico" the tapered *body* ("implante cônico").

Patterns are PostgreSQL regular expressions (ARE) matched against the folded text: ``\\m`` a word's start, ``\\M``
its end. A two-letter abbreviation (CM, HE, HI) is found only as a word of its own ("he" is not the start of "hex").
"""

import re
from dataclasses import dataclass

from raiox.kit.db import fold_text


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

# pt-BR word (folded: lower case, no accents) -> its catalog forms
SYNONYMS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("hexagono", "hexagonos", "hexagonal", "hexagonais", "sextavado"), HEX),
    **dict.fromkeys(("interno", "interna", "internos", "internas"), INTERNAL),
    **dict.fromkeys(("externo", "externa", "externos", "externas"), EXTERNAL),
    "he": (HE, r"\mexternal hex", r"\mhexagono externo"),
    "hi": (HI, r"\minternal hex", r"\mhexagono interno"),
    **dict.fromkeys(("conica", "conicas", "cm", "morse"), CONICAL),
    "cone": CONICAL,  # "cone Morse", "cone 11,5°"; as typed it still finds a cone apex, a maker's name
    **dict.fromkeys(("trilobada", "trilobado", "trilobular", "trilobulada", "trilobulado", "trilobo", "tricanal"),
                    TRI_CHANNEL),
    **dict.fromkeys(("octogono", "octagono", "octogonal", "octogonais"), OCTAGON),
    **dict.fromkeys(("conico", "conicos"), TAPERED),
    **dict.fromkeys(("acentuado", "acentuada"), STRONG_TAPER),  # "cônico acentuado"
    **dict.fromkeys(("paralelo", "paralela", "paralelos", "paralelas", "cilindrico", "cilindrica"), PARALLEL),
    # the rest of a design, as the catalog names it (collar, thread, apex, level)
    **dict.fromkeys(("colar", "pescoco"), (_starts("collar", "neck"),)),
    **dict.fromkeys(("usinado", "usinada"), (_starts("machined"),)),
    "tulipa": (_starts("tulip"),),
    **dict.fromkeys(("microrrosca", "microrroscas", "microrosca", "microroscas"), (r"\mmicro-?\s?thread",)),
    **dict.fromkeys(("rosca", "roscas"), ("thread",)),
    **dict.fromkeys(("quadrada", "quadrado"), (_starts("square"),)),
    **dict.fromkeys(("reversa", "reverso", "invertida", "invertido"), (_starts("reverse"),)),
    "contraforte": (_starts("buttress"),),
    **dict.fromkeys(("faca", "lamina"), (_starts("knife"),)),
    **dict.fromkeys(("progressiva", "progressivo"), (_starts("progressive"),)),
    **dict.fromkeys(("dupla", "duplo"), (_starts("double"),)),
    **dict.fromkeys(("tripla", "triplo"), (_starts("triple"),)),
    **dict.fromkeys(("entrada", "entradas"), (_words("leads?"),)),  # "dupla entrada": double-lead
    "passo": (_starts("pitch"),),
    **dict.fromkeys(("apice", "apices", "apical"), (_starts("apex", "apical"),)),
    **dict.fromkeys(("plano", "plana"), (_starts("flat"),)),
    **dict.fromkeys(("domo", "cupula", "arredondado", "arredondada"), (_starts("dome", "rounded"),)),
    **dict.fromkeys(("redondo", "redonda"), (_words("round"),)),
    **dict.fromkeys(("furo", "furos"), (_words("holes?"),)),
    **dict.fromkeys(("oblongo", "oblonga"), (_starts("oblong"),)),
    **dict.fromkeys(("ranhura", "ranhuras", "sulco", "sulcos"), (_words("flutes?", "grooves?"),)),
    **dict.fromkeys(("osseo", "ossea"), (_starts("bone"),)),  # "nível ósseo": bone level
    **dict.fromkeys(("tecidual", "tecido"), (_starts("tissue"),)),
    "nivel": (_starts("level"),),
    "plataforma": (_starts("platform"),),
    **dict.fromkeys(("grau", "graus"), ("°",)),  # "CM 16 graus"
}

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
        word = fold_text(raw.strip(_PUNCTUATION) or raw).replace("º", "°")  # 16º (the ordinal sign) typed for 16°
        if not word:
            continue
        forms = SYNONYMS.get(word)
        texts = () if forms and len(word) <= 2 else (word,)  # an abbreviation only as a word of its own
        if _DECIMAL_COMMA.search(word):  # 11,5 as the panel shows it: the catalog types 11.5
            texts += (_DECIMAL_COMMA.sub(".", word),)
        words.append(Word(texts, "|".join(f"({form})" for form in forms) if forms else None))
        if len(words) == max_words:
            break
    return words
