"""Jotform submissions -> `Submission`: the webhook body (`rawRequest`, never `pretty`) or the API's copy.

`rawRequest` keeps one key per answered question, `q<qid>_<name>`; file uploads are the exception:
their URLs are listed under the bare question `<name>` and the question id is only in `temp_upload`
(see docs: shared/docs/jotform-notes.md). Which question means what (name, e-mail, phone, images,
notes, tooth) comes from RAIOX_JOTFORM_FIELD_MAP (meaning -> question name, qid or `q<qid>_<name>`), and
falls back to auto-detection: answer shapes (`{first,last}`, `{full}`/`{area,phone}`), question types
(API copies) and question names (the tooth: names and answers only, `_is_tooth`). Images: the `images`
questions when mapped, every URL listed under them; otherwise the `temp_upload` questions, plus Jotform upload
URLs under other bare keys (`_detected_uploads`);
other URL lists (links, Jotform's own lists) are left out, named in `Submission.ignored` (question names only),
which `intake.service.ingest_on` logs as `upload_fields_ignored` once, when the submission's case is created (a
submission is parsed again on every webhook delivery, its verification and reconciliation).
"""

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from raiox.intake.clean import MAX_DEPTH, storable
from raiox.kit.errors import BadRequest, Unprocessable
from raiox.kit.settings import _origin

QKEY = re.compile(r"^q(\d+)_(.+)$")
SUBMISSION_ID = re.compile(r"^[0-9]{1,40}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
URL_SHAPED = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)
UPLOAD_PATH = re.compile(r"^/uploads/[^/]+/[0-9]+/[^/]+/[^/]")  # /uploads/<user>/<form id>/<folder>/<file>
JOTFORM_HOST = re.compile(r"(^|\.)jotform\.com$")
# upload question names: films, or documents (referrals, reports) whose office/PDF files are no films
RADIOGRAPH_HINT = re.compile(r"(?i)radiog|raio|rx|x_?ray|periap|panor|tomog|cbct|dicom|imag|foto|photo|film|exame")
DOCUMENT_HINT = re.compile(r"(?i)docum|laudo|encaminh|referral|pdf|receita|pedido|termo|consent|contrat|relatorio"
                           r"|report|atestado")
DOCUMENT_FILE = re.compile(r"(?i)\.(pdf|docx?|odt|rtf|txt|xlsx?|ods|csv|pptx?|odp)$")
SECRET_PARAMS = {"token", "apikey", "api_key", "secret"}
MEANINGS = ("name", "email", "phone", "images", "notes", "tooth")
NAME_HINT = re.compile(r"(?i)dentist|client|solicit|nome|name")
EMAIL_HINT = re.compile(r"(?i)e-?mail")
PHONE_HINT = re.compile(r"(?i)phone|telefone|fone|celular|whats")
NOTES_HINT = re.compile(r"(?i)obs|note|coment|comment|mensag|message|descri|detalhe")
# cases.tooth's length: a longer answer is no tooth or region (free text: notes); a mapped one is cut. The one-page
# report has room for this much beside the longest result (tests/review/test_browser.py)
TOOTH_MAX = 60
# tooth / region (FDI "36", "região de 46", "anterior superior"): question-name words, accents and case folded
TOOTH_WORDS = {"dente", "dentes", "elemento", "elementos", "tooth", "teeth"}
PLACE_WORDS = {"regiao", "regioes", "local", "localizacao", "posicao", "sitio", "region", "location", "site"}
IMPLANT_WORDS = {"implante", "implantes", "implant", "implants"}
REGION_WORDS = {"regiao", "regioes", "region"}  # alone: the dentist's city or state as well
COUNT_WORDS = {"quantos", "quantas", "quantidade", "qtd", "qtde", "total", "many", "count"}  # "quantos dentes"
YES_NO = {"sim", "nao", "yes", "no", "s", "n"}
# an answer that names a place in the mouth: an FDI tooth number (permanent 11-48, deciduous 51-85) or a region word
DENTAL_PLACE = re.compile(r"(?<!\d)([1-4][1-8]|[5-8][1-5])(?!\d)|anterior|posterior|superior|inferior|maxila|mandib"
                          r"|molar|incisiv|canino|arcada|quadrante|sextante")
NAME_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
TYPE_HINTS = {"control_fullname": "name", "control_email": "email", "control_phone": "phone",
              "control_textarea": "notes"}


@dataclass
class Upload:
    question: str  # the bare question name, e.g. "radiografias"
    url: str
    filename: str


@dataclass
class Submission:
    submission_id: str
    form_id: str | None
    answers: dict  # rawRequest (or the API answers in the same shape)
    payload: dict = field(default_factory=dict)  # other top-level webhook fields, secrets stripped
    client_name: str | None = None
    client_email: str | None = None
    client_phone: str | None = None
    notes: str | None = None
    tooth: str | None = None  # the tooth or region the dentist names ("36", "região de 46"), on one line
    submitted_at: datetime | None = None
    uploads: list[Upload] = field(default_factory=list)
    fields: dict = field(default_factory=dict)  # question name -> display text (dates as YYYY-MM-DD)
    ignored: dict = field(default_factory=dict)  # URL-list question left out of the images -> why (names only)


def strip_secrets(value: str, secrets: list[str]) -> str:
    """Drop secret query parameters from a URL-looking string and mask any known secret in it."""
    if "://" in value and "?" in value:
        try:
            parts = urlsplit(value)
        except ValueError:  # not a URL after all (e.g. an unclosed IPv6 bracket): only masked below
            parts = None
        if parts is not None:
            query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                     if k.lower() not in SECRET_PARAMS]
            value = urlunsplit(parts._replace(query=urlencode(query)))
    for secret in secrets:
        if secret:
            value = value.replace(secret, "***")
    return value


def _qkeys(answers: dict) -> list[tuple[int, str, str]]:
    """(qid, name, key) of every `q<qid>_<name>` answer, in question order."""
    found = [(int(m.group(1)), m.group(2), key) for key in answers if (m := QKEY.match(key))]
    return sorted(found)


def _resolve(answers: dict, ref: str) -> str | None:
    """The answers key a field-map reference (name, qid or q<qid>_<name>) points at."""
    ref = ref.strip()
    if ref in answers:
        return ref
    for qid, name, key in _qkeys(answers):
        if ref in (str(qid), name):
            return key
    return None


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        if {"first", "last"} & value.keys():
            parts = [value.get(k, "") for k in ("prefix", "first", "middle", "last", "suffix")]
            return " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip()) or None
        if "full" in value or "phone" in value:
            full = str(value.get("full") or "").strip()
            if full:
                return full
            area, number = str(value.get("area") or "").strip(), str(value.get("phone") or "").strip()
            return (f"({area}) {number}" if area else number) or None
        if {"year", "month", "day"} <= value.keys():  # YYYY-MM-DD; what was typed when it is no calendar date
            try:
                return date(int(value["year"]), int(value["month"]), int(value["day"])).isoformat()
            except (TypeError, ValueError, OverflowError):
                return "/".join(str(value[k]).strip() for k in ("day", "month", "year")
                                if str(value[k]).strip()) or None
        joined = ", ".join(str(v).strip() for v in value.values() if isinstance(v, str | int) and str(v).strip())
        return joined or None
    if isinstance(value, list):
        return ", ".join(t for v in value if (t := _text(v))) or None
    if isinstance(value, int | float):
        return str(value)
    return None


def _is_name(value: object) -> bool:
    return isinstance(value, dict) and bool({"first", "last"} & value.keys())


def _is_phone(value: object) -> bool:
    return isinstance(value, dict) and ("full" in value or {"area", "phone"} <= value.keys())


def _is_email(value: object) -> bool:
    return isinstance(value, str) and bool(EMAIL.match(value.strip()))


def _unaccented(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _folded(text: str) -> str:
    """TEXT lower-cased, without accents ("Região" -> "regiao")."""
    return _unaccented(text).lower()


def _name_words(name: str) -> set[str]:
    """The words of a question name, folded: "localDoImplante" -> {local, do, implante}; "região_dente2" -> {regiao,
    dente, 2}."""
    return {w.lower() for w in NAME_WORD.findall(_unaccented(name))}


def one_line(text: str | None) -> str | None:
    """TEXT on one line: control characters and runs of blanks become one space (None when nothing is left)."""
    return " ".join(CONTROL.sub(" ", text or "").split()) or None


def clipped(text: str | None, limit: int) -> str | None:
    """TEXT cut to LIMIT characters, an ellipsis saying it was cut."""
    return text if text is None or len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _is_tooth(name: str, value: object) -> bool:
    """Whether question NAME with answer VALUE says where the implant is, without a field map.

    The name must say tooth (dente(s), elemento(s), tooth), or place and implant together (local do implante, região
    do implante, posição do implante); "região" alone (the dentist's city or state, too) only with an answer that
    names a place in the mouth (an FDI number, anterior, superior, molar...). Never a count (quantos dentes), an
    answer that is no short text (a name, a date, a file list), longer than TOOTH_MAX or yes/no."""
    words = _name_words(name)
    if words & COUNT_WORDS or not isinstance(value, str | int | list) or isinstance(value, bool):
        return False
    if isinstance(value, list) and not all(isinstance(v, str | int) for v in value):
        return False
    text = one_line(_text(value))
    if not text or len(text) > TOOTH_MAX or _folded(text).strip(".!") in YES_NO:
        return False
    if words & TOOTH_WORDS or (words & PLACE_WORDS and words & IMPLANT_WORDS):
        return True
    return bool(words & REGION_WORDS) and bool(DENTAL_PLACE.search(_folded(text)))


def _detect(answers: dict, types: Mapping[str, str]) -> dict[str, str]:
    """Auto-detected meaning -> answers key, for the meanings the field map leaves open."""
    found: dict[str, str] = {}
    qkeys = _qkeys(answers)
    for _qid, _name, key in qkeys:  # question types (API copies) are the strongest evidence
        meaning = TYPE_HINTS.get(types.get(key, ""))
        if meaning and meaning not in found and _text(answers[key]):
            found[meaning] = key
    rules = [
        ("name", lambda n, v: _is_name(v) and NAME_HINT.search(n)),
        ("name", lambda n, v: _is_name(v)),
        ("email", lambda n, v: _is_email(v) and EMAIL_HINT.search(n)),
        ("email", lambda n, v: _is_email(v)),
        ("phone", lambda n, v: _is_phone(v)),
        ("phone", lambda n, v: isinstance(v, str) and PHONE_HINT.search(n) and v.strip()),
        ("notes", lambda n, v: isinstance(v, str) and NOTES_HINT.search(n) and v.strip()),
        ("tooth", _is_tooth),  # names and answers only (no types): the webhook and the API copy agree
    ]
    for meaning, rule in rules:
        if meaning in found:
            continue
        for _qid, name, key in qkeys:
            if rule(name, answers[key]):
                found[meaning] = key
                break
    return found


def _upload_origins(hosts: Iterable[str]) -> set[str]:
    origins = set()
    for host in hosts:
        try:
            origins.add(_origin(host))
        except ValueError:
            continue
    return origins


def is_upload_url(url: str, upload_origins: set[str] | frozenset[str] = frozenset()) -> bool:
    """Whether URL has the shape of a Jotform upload: http(s) on a jotform.com host (www, eu, hipaa, an Enterprise
    subdomain) or an origin of RAIOX_JOTFORM_UPLOAD_HOSTS, path `/uploads/<user>/<form id>/<folder>/<file>`. The
    folder is not checked against the submission (it is not always its id: jotform-notes.md, 1.3)."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        origin = _origin(url.strip()) if host else ""
    except ValueError:
        return False
    if parts.scheme.lower() not in ("http", "https") or not host:
        return False
    return bool((JOTFORM_HOST.search(host) or origin in upload_origins) and UPLOAD_PATH.match(parts.path))


def _declared_uploads(answers: dict) -> dict[str, str]:
    """Upload question name -> its `q<qid>_<name>` key, from `temp_upload` (Jotform's own list of the form's file
    upload questions; the API copy gets the same from the question types)."""
    temp = answers.get("temp_upload")
    if not isinstance(temp, dict):
        return {}
    return {m.group(2): key for key in temp if isinstance(key, str) and (m := QKEY.match(key))}


def _configured_uploads(answers: dict, refs: str) -> list[str]:
    """The upload question names RAIOX_JOTFORM_FIELD_MAP's `images` names (bare name, qid or `q<qid>_<name>`).
    rawRequest keeps an upload question's id only in `temp_upload`, so qids and full keys are resolved there."""
    declared = _declared_uploads(answers)
    names = []
    for ref in (r.strip() for r in refs.split(",")):
        if not ref:
            continue
        if ref in answers and not QKEY.match(ref):
            name = ref
        elif m := QKEY.match(ref):
            name = m.group(2)
        elif ref.isdigit():
            by_qid = [n for n, key in declared.items() if QKEY.match(key).group(1) == ref]
            by_qid += [n for qid, n, _key in _qkeys(answers) if str(qid) == ref]
            name = by_qid[0] if by_qid else ref
        else:
            name = ref
        if name not in names:
            names.append(name)
    return names


def _url_strings(value: object) -> list[str]:
    urls = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [u.strip() for u in urls if isinstance(u, str) and u.strip()]


def _detected_uploads(answers: dict, upload_origins: set[str], ignored: dict[str, str]) -> dict[str, list[str]]:
    """Upload question name -> URLs, without a field map.

    - `temp_upload` questions (Jotform says they are file uploads): every string listed, whatever its host (the EU,
      HIPAA and Enterprise upload hosts are unconfirmed); one the downloader refuses is recorded failed, never lost.
    - Any other bare key (older payloads may lack `temp_upload`): only the Jotform upload URLs it lists.
    - A question named like documents (laudo, encaminhamento, documentos...) next to one named like radiographs that
      holds files: its office/PDF files (a referral) are left out; its images stay (a film put in the wrong field).
    Everything left out is named in IGNORED (question -> why), never its URLs or file names."""
    found: dict[str, list[str]] = {name: _url_strings(answers.get(name)) for name in _declared_uploads(answers)}
    for key, value in answers.items():
        if QKEY.match(key) or key in found or not isinstance(value, list):
            continue
        urls = _url_strings(value)
        if not any(URL_SHAPED.match(u) for u in urls):
            continue
        uploads = [u for u in urls if is_upload_url(u, upload_origins)]
        if uploads:
            found[key] = uploads
        if len(uploads) < len(urls):
            ignored[key] = (f"{len(urls) - len(uploads)} of {len(urls)} value(s) not Jotform upload URLs "
                            "(not a temp_upload question)")
    radiographs = any(urls and RADIOGRAPH_HINT.search(name) for name, urls in found.items())
    for name, urls in found.items():
        if radiographs and DOCUMENT_HINT.search(name) and not RADIOGRAPH_HINT.search(name):
            kept = [u for u in urls if not DOCUMENT_FILE.search(_filename(u))]
            if len(kept) < len(urls):
                ignored[name] = f"{len(urls) - len(kept)} document file(s) in a documents question"
                found[name] = kept
    return found


def _filename(url: str) -> str:
    try:
        return unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "upload"
    except ValueError:
        return "upload"


def _uploads(questions: dict[str, list[str]]) -> list[Upload]:
    """Every string listed under an upload question, whatever its scheme: the downloader decides (and
    records why it refuses one), so a submitted file never vanishes without a trace."""
    uploads, seen = [], set()
    for question, urls in questions.items():
        for url in urls:
            if url not in seen:
                seen.add(url)
                uploads.append(Upload(question=question, url=url, filename=_filename(url)))
    return uploads


def interpret(submission: Submission, field_map: Mapping[str, str], types: Mapping[str, str] | None = None, *,
              upload_hosts: Iterable[str] = ()) -> None:
    """Fill name/e-mail/phone/notes/uploads/fields of SUBMISSION from its answers. UPLOAD_HOSTS (the origins of
    RAIOX_JOTFORM_UPLOAD_HOSTS) count as upload hosts besides jotform.com's."""
    answers = submission.answers
    keys: dict[str, str] = {}
    for meaning in ("name", "email", "phone", "notes", "tooth"):
        if field_map.get(meaning):
            key = _resolve(answers, field_map[meaning])
            if key:
                keys[meaning] = key
    for meaning, key in _detect(answers, types or {}).items():
        if meaning not in field_map or not field_map.get(meaning):
            keys.setdefault(meaning, key)
    submission.client_name = _text(answers.get(keys.get("name", ""), None))
    email = _text(answers.get(keys.get("email", ""), None))
    submission.client_email = email if email and _is_email(email) else None
    submission.client_phone = _text(answers.get(keys.get("phone", ""), None))
    submission.notes = _text(answers.get(keys.get("notes", ""), None))
    submission.tooth = clipped(one_line(_text(answers.get(keys.get("tooth", ""), None))), TOOTH_MAX)
    ignored: dict[str, str] = {}
    if field_map.get("images"):
        names = _configured_uploads(answers, field_map["images"])
        questions = {name: _url_strings(answers.get(name)) for name in names}
        for name in _declared_uploads(answers):
            if name not in questions and _url_strings(answers.get(name)):
                ignored[name] = "upload question not in RAIOX_JOTFORM_FIELD_MAP images"
        for key, value in answers.items():
            if (not QKEY.match(key) and key not in questions and key not in ignored and isinstance(value, list)
                    and any(URL_SHAPED.match(u) for u in _url_strings(value))):
                ignored[key] = "URL list not in RAIOX_JOTFORM_FIELD_MAP images"
    else:
        questions = _detected_uploads(answers, _upload_origins(upload_hosts), ignored)
    # question names only: URLs and file names may name patients (or carry a key)
    submission.ignored = {name[:100]: why for name, why in list(ignored.items())[:20]}
    submission.uploads = _uploads(questions)
    submission.fields = {name: text for _qid, name, key in _qkeys(answers) if (text := _text(answers[key]))}


def _submit_date(answers: dict) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(answers["submitDate"]) / 1000, UTC)
    except (KeyError, TypeError, ValueError, OSError, OverflowError):
        return None


def from_webhook(form: Mapping[str, str], *, field_map: Mapping[str, str], secrets: list[str],
                 upload_hosts: Iterable[str] = ()) -> Submission:
    """Parse the webhook's form fields (multipart or urlencoded). 400/422 with a clear reason if malformed.

    Every string is made storable first (`raiox.intake.clean`): a NUL or a lone surrogate never loses a case."""
    form = storable(dict(form), "webhook body")
    submission_id = str(form.get("submissionID") or "").strip()
    if not submission_id:
        raise BadRequest("missing submissionID: not a Jotform webhook payload")
    if not SUBMISSION_ID.match(submission_id):
        raise BadRequest("submissionID must be a string of digits")
    raw = form.get("rawRequest")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise BadRequest("missing rawRequest: the answers of the submission are not in the payload")
    try:
        answers = json.loads(raw, strict=False)  # strict=False: raw control characters in strings are kept
    except RecursionError:
        raise BadRequest(f"rawRequest is nested more than {MAX_DEPTH} levels deep") from None
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"rawRequest is not valid JSON: {exc}") from None
    if not isinstance(answers, dict):
        raise BadRequest("rawRequest must be a JSON object")
    answers = storable(answers, "rawRequest")
    payload = {k: strip_secrets(v, secrets) for k, v in form.items() if k != "rawRequest" and isinstance(v, str)}
    form_id = str(form.get("formID") or "").strip() or None
    if form_id and not SUBMISSION_ID.match(form_id):
        raise Unprocessable("formID must be a string of digits")
    submission = Submission(submission_id, form_id, answers, payload, submitted_at=_submit_date(answers))
    interpret(submission, field_map, upload_hosts=upload_hosts)
    return submission


def _api_created_at(value: object, zone: tzinfo) -> datetime | None:
    """The API's `created_at`, "YYYY-MM-DD HH:MM:SS" with no zone, in the account's time zone (Jotform does not document
    it; practitioners' code reads it so: jotform-notes §3.5), taken in ZONE (RAIOX_JOTFORM_TIMEZONE), as UTC."""
    try:
        return datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone).astimezone(UTC)
    except ValueError:
        return None


def api_ids_problem(content: Mapping) -> str | None:
    """Why the API copy CONTENT's `id` or `form_id` is not one the webhook would accept (1 to 40 digits, as
    `from_webhook` checks submissionID and formID), or None. The values are not repeated: they may be anything."""
    if not SUBMISSION_ID.match(str(content.get("id") or "")):
        return "id must be a string of 1 to 40 digits"
    form_id = content.get("form_id")
    if form_id not in (None, "") and not SUBMISSION_ID.match(str(form_id)):
        return "form_id must be a string of 1 to 40 digits"
    return None


def from_api(content: dict, *, field_map: Mapping[str, str], zone: tzinfo = UTC) -> Submission:
    """The API's copy (`GET /submission/{id}` content, or an item of a submissions list), made storable. 422 when
    its `id` or `form_id` is not what the webhook accepts (`SUBMISSION_ID`: 1 to 40 digits; the form id may be absent).
    ZONE: the Jotform account's time zone, which its `created_at` is written in (RAIOX_JOTFORM_TIMEZONE)."""
    content = storable(content, "Jotform API submission")
    if problem := api_ids_problem(content):
        raise Unprocessable(problem)
    answers: dict = {}
    types: dict[str, str] = {}
    for qid, question in (content.get("answers") or {}).items():
        if not isinstance(question, dict) or not question.get("name"):
            continue
        name, answer = str(question["name"]), question.get("answer")
        key = f"q{qid}_{name}"
        if question.get("type") == "control_fileupload":
            answers[name] = answer if isinstance(answer, list) else [answer] if answer else []
            answers.setdefault("temp_upload", {})[key] = []
        elif answer is not None:
            answers[key] = answer
            types[key] = str(question.get("type") or "")
    submission = Submission(
        str(content.get("id") or ""), str(content.get("form_id") or "") or None, answers,
        {"source": "jotform_api", "status": content.get("status"), "created_at": content.get("created_at")},
        submitted_at=_api_created_at(content.get("created_at"), zone),
    )
    interpret(submission, field_map, types)
    return submission
