"""POST /webhooks/jotform with real multipart and urlencoded bodies modelled on Jotform's captures."""

import asyncio
import json
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select, text

from fakes.jotform import FORM_ID, multipart_body, webhook_fields
from raiox.models import Case, CaseEvent, CaseImage



SECRET = "test-webhook-secret"
URL = f"/webhooks/jotform?token={SECRET}"
BOUNDARY = "------------------------d74496d66958873e"
FILES = ["raio x; paciente 1, frente.png", "panorâmica (2) & perfil.jpg"]


def submission(sid: str = "6084250982513018472", files=FILES, **answers) -> dict:
    urls = [f"https://www.jotform.com/uploads/raioxclinic/{FORM_ID}/{sid}/" + _quote(f) for f in files]
    content = {"id": sid, "form_id": FORM_ID, "answers": {
        "3": {"name": "nomeDentista", "text": "Nome do dentista", "type": "control_fullname",
              "answer": answers.get("name", {"first": "João", "last": "da Silva"})},
        "4": {"name": "email", "text": "E-mail", "type": "control_email", "answer": "joao@clinica.com.br"},
        "5": {"name": "telefone", "text": "Telefone", "type": "control_phone",
              "answer": answers.get("phone", {"full": "(11) 98765-4321"})},
        "6": {"name": "dataCirurgia", "text": "Data", "type": "control_datetime",
              "answer": {"month": "11", "day": "18", "year": "2025"}},
        "7": {"name": "observacoes", "text": "Observações", "type": "control_textarea",
              "answer": "Implante antigo: qual sistema?"},
        "9": {"name": "radiografias", "text": "Radiografias", "type": "control_fileupload", "answer": urls},
    }}
    return content


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name)


def multipart(fields: dict) -> dict:
    return {"content": multipart_body(fields, BOUNDARY),
            "headers": {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}}


def urlencoded(fields: dict) -> dict:
    return {"content": urlencode(fields).encode(),
            "headers": {"content-type": "application/x-www-form-urlencoded"}}


@pytest.fixture
async def reader(committed):
    """A session for reading what the webhook committed (tables are emptied after each test)."""
    from raiox.kit.db import get_sessionmaker

    async with get_sessionmaker()() as session:
        yield session


async def jobs_for(reader, task: str) -> list[dict]:
    rows = await reader.execute(text("SELECT args FROM procrastinate_jobs WHERE task_name = :t"), {"t": task})
    return [r[0] for r in rows]


async def test_multipart_webhook_creates_case_images_and_job(api, reader):
    fields = webhook_fields(submission(), webhook_url=f"https://api.raiox.example/webhooks/jotform?token={SECRET}")
    response = await api.post(URL, **multipart(fields))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["submission_id"] == "6084250982513018472" and body["duplicate"] is False
    case = (await reader.execute(select(Case).where(Case.jotform_submission_id == body["submission_id"]))).scalar_one()
    assert str(case.id) == body["case_id"]
    assert (case.status, case.form_id, case.source) == ("received", FORM_ID, "webhook")
    assert case.client_name == "João da Silva"
    assert case.client_email == "joao@clinica.com.br"
    assert case.client_phone == "(11) 98765-4321"
    assert case.notes == "Implante antigo: qual sistema?"
    assert case.payload["fields"]["dataCirurgia"] == "2025-11-18"
    assert case.submitted_at is not None
    assert case.answers["radiografias"][0].startswith("https://www.jotform.com/uploads/")
    images = (await reader.execute(select(CaseImage).where(CaseImage.case_id == case.id)
                                    .order_by(CaseImage.position))).scalars().all()
    assert [i.filename for i in images] == FILES
    assert {i.status for i in images} == {"pending"} and {i.question for i in images} == {"radiografias"}
    assert await jobs_for(reader, "process_case") == [{"case_id": str(case.id)}]
    events = (await reader.execute(select(CaseEvent).where(CaseEvent.case_id == case.id))).scalars().all()
    assert [(e.to_status, e.actor) for e in events] == [("received", "jotform:webhook")]


async def test_stored_payload_never_keeps_the_token(api, reader):
    fields = webhook_fields(submission(), webhook_url=f"https://api.raiox.example/webhooks/jotform?token={SECRET}&a=1")
    response = await api.post(URL, **multipart(fields))
    case = await reader.get(Case, response.json()["case_id"])
    assert SECRET not in json.dumps(case.payload) and SECRET not in json.dumps(case.answers)
    assert case.payload["webhookURL"] == "https://api.raiox.example/webhooks/jotform?a=1"
    assert "rawRequest" not in case.payload


async def test_urlencoded_old_style_payload(api, reader):
    content = submission("5012345678901234567", files=["x-ray.png"], phone={"area": "81", "phone": "999888559"},
                         name={"first": "Maria", "middle": "", "last": "Lima"})
    full = webhook_fields(content)
    old = {k: full[k] for k in ("formID", "submissionID", "webhookURL", "ip", "formTitle", "pretty", "username",
                                "rawRequest", "type")}
    response = await api.post(URL, **urlencoded(old))
    assert response.status_code == 200, response.text
    case = await reader.get(Case, response.json()["case_id"])
    assert (case.client_name, case.client_phone) == ("Maria Lima", "(81) 999888559")
    images = (await reader.execute(select(CaseImage).where(CaseImage.case_id == case.id))).scalars().all()
    assert [i.filename for i in images] == ["x-ray.png"]


async def test_duplicate_delivery_yields_one_case_and_one_job(api, reader):
    fields = webhook_fields(submission())
    first = await api.post(URL, **multipart(fields))
    second = await api.post(URL, **urlencoded(fields))
    assert first.status_code == second.status_code == 200
    assert first.json()["case_id"] == second.json()["case_id"]
    assert (first.json()["duplicate"], second.json()["duplicate"]) == (False, True)
    assert (await reader.execute(select(func.count()).select_from(Case))).scalar_one() == 1
    assert len(await jobs_for(reader, "process_case")) == 1
    assert (await reader.execute(select(func.count()).select_from(CaseImage))).scalar_one() == len(FILES)


async def test_duplicate_of_a_delivered_case_says_so_and_gives_its_status(api, reader):
    """`status` stays "received" (the contract: the submission has its case); `duplicate` and `case_status` tell a
    re-sent webhook of a case already delivered from a new one, without changing the case."""
    from raiox.cases.service import transition

    fields = webhook_fields(submission())
    first = (await api.post(URL, **multipart(fields))).json()
    assert (first["duplicate"], first["status"], first["case_status"]) == (False, "received", "received")
    case = await reader.get(Case, first["case_id"])
    for status in ("processing", "awaiting_review", "approved", "delivered"):
        await transition(reader, case, status, actor="test", reason="moved on")
    await reader.commit()
    again = await api.post(URL, **urlencoded(fields))
    assert again.status_code == 200
    assert again.json() == {"submission_id": first["submission_id"], "case_id": first["case_id"], "duplicate": True,
                            "status": "received", "case_status": "delivered"}
    reader.expire_all()
    assert (await reader.get(Case, first["case_id"])).status == "delivered"
    assert len(await jobs_for(reader, "process_case")) == 1


async def test_webhook_answer_fields_are_documented_in_openapi(api):
    schema = (await api.get("/openapi.json")).json()["components"]["schemas"]["WebhookAccepted"]
    assert {"duplicate", "status", "case_status"} <= schema["properties"].keys()
    assert "delivered" in schema["properties"]["case_status"]["description"]


async def test_webhook_form_body_is_documented_in_openapi(api):
    """Both shapes Jotform posts, the fields the parser reads (submissionID, rawRequest required; formID), and a
    capture-shaped body the webhook takes is valid against the documented schema; one without submissionID is not."""
    validator = pytest.importorskip("openapi_schema_validator")
    body = (await api.get("/openapi.json")).json()["paths"]["/webhooks/jotform"]["post"]["requestBody"]
    assert body["required"] and set(body["content"]) == {"application/x-www-form-urlencoded", "multipart/form-data"}
    schema = body["content"]["multipart/form-data"]["schema"]
    assert schema == body["content"]["application/x-www-form-urlencoded"]["schema"]
    assert set(schema["required"]) == {"submissionID", "rawRequest"}
    assert {"formID", "webhookURL", "formTitle", "username", "ip", "pretty", "type"} <= set(schema["properties"])
    fields = webhook_fields(submission())
    validator.validate(fields, schema)
    assert (await api.post(URL, **multipart(fields))).status_code == 200  # what the document allows, the webhook takes
    with pytest.raises(pytest.importorskip("jsonschema").ValidationError, match="submissionID"):
        validator.validate({k: v for k, v in fields.items() if k != "submissionID"}, schema)


async def test_concurrent_deliveries_yield_one_case(api, reader):
    fields = webhook_fields(submission("7000000000000000001"))
    responses = await asyncio.gather(*[api.post(URL, **multipart(fields)) for _ in range(12)])
    assert [r.status_code for r in responses] == [200] * 12
    assert len({r.json()["case_id"] for r in responses}) == 1
    assert sum(not r.json()["duplicate"] for r in responses) == 1
    assert (await reader.execute(select(func.count()).select_from(Case))).scalar_one() == 1
    assert len(await jobs_for(reader, "process_case")) == 1
    assert (await reader.execute(select(func.count()).select_from(CaseImage))).scalar_one() == len(FILES)


@pytest.mark.parametrize("url", ["/webhooks/jotform", "/webhooks/jotform?token=wrong", "/webhooks/jotform?token="])
async def test_missing_or_wrong_token_is_401_and_creates_nothing(api, reader, url):
    response = await api.post(url, **multipart(webhook_fields(submission())))
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert (await reader.execute(select(func.count()).select_from(Case))).scalar_one() == 0


async def test_unconfigured_secret_is_503_with_clear_message(api, settings_env):
    settings_env(webhook_secret="")
    response = await api.post(URL, **multipart(webhook_fields(submission())))
    assert response.status_code == 503
    assert "RAIOX_WEBHOOK_SECRET" in response.json()["detail"]


@pytest.mark.parametrize(("mutate", "status", "detail"), [
    (lambda f: f.update(rawRequest="{not json"), 400, "rawRequest is not valid JSON"),
    (lambda f: f.update(rawRequest="[1, 2]"), 400, "rawRequest must be a JSON object"),
    (lambda f: f.pop("rawRequest"), 400, "missing rawRequest"),
    (lambda f: f.pop("submissionID"), 400, "missing submissionID"),
    (lambda f: f.update(submissionID="1; DROP TABLE cases"), 400, "digits"),
    (lambda f: f.update(rawRequest="[" * 100000 + "]" * 100000), 400, "rawRequest is nested more than"),
    (lambda f: f.update(rawRequest='{"a": ' * 40 + "1" + "}" * 40), 400, "rawRequest is nested more than"),
    (lambda f: f.update(formID="999999999999999"), 422, "not the configured form"),
])
async def test_malformed_payloads_get_a_clear_4xx(api, reader, settings_env, capsys, mutate, status, detail):
    from raiox.kit.logging import configure_logging

    configure_logging()  # log to this test's captured stderr
    settings_env(jotform_form_id=FORM_ID)
    fields = webhook_fields(submission())
    mutate(fields)
    response = await api.post(URL, **multipart(fields))
    assert response.status_code == status
    assert detail in response.json()["detail"]
    assert (await reader.execute(select(func.count()).select_from(Case))).scalar_one() == 0
    logged = capsys.readouterr().err
    assert "webhook_rejected" in logged and detail in logged and SECRET not in logged


async def test_json_body_is_415_and_broken_multipart_is_400(api):
    response = await api.post(URL, json={"submissionID": "1"})
    assert response.status_code == 415 and "multipart/form-data" in response.json()["detail"]
    broken = await api.post(URL, content=b"--xyz\r\nContent-Disposition: form-data\r\n\r\nabc",
                               headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert broken.status_code == 400


async def test_field_map_overrides_detection(api, reader, settings_env):
    settings_env(jotform_field_map=json.dumps({"name": "nomePaciente", "notes": "7", "images": "radiografias"}))
    content = submission()
    content["answers"]["8"] = {"name": "nomePaciente", "type": "control_fullname", "text": "Paciente",
                               "answer": {"first": "Pedro", "last": "Alves"}}
    raw = json.loads(webhook_fields(content)["rawRequest"])
    raw["outrosArquivos"] = ["https://www.jotform.com/uploads/raioxclinic/1/2/laudo.pdf"]
    fields = webhook_fields(content, raw=raw)
    response = await api.post(URL, **multipart(fields))
    case = await reader.get(Case, response.json()["case_id"])
    assert case.client_name == "Pedro Alves"
    images = (await reader.execute(select(CaseImage).where(CaseImage.case_id == case.id))).scalars().all()
    assert sorted(i.filename for i in images) == sorted(FILES)  # the other upload question is not an image one


async def test_the_tooth_the_dentist_names_is_stored_on_the_case(api, reader, settings_env):
    content = submission()
    content["answers"]["8"] = {"name": "denteRegiao", "type": "control_textbox", "text": "Dente / região",
                               "answer": "região de\n46"}
    response = await api.post(URL, **multipart(webhook_fields(content)))
    case = await reader.get(Case, response.json()["case_id"])
    assert case.tooth == "região de 46" and case.payload["fields"]["denteRegiao"] == "região de\n46"
    without = await api.post(URL, **multipart(webhook_fields(submission(sid="6084250982513018473"))))
    assert (await reader.get(Case, without.json()["case_id"])).tooth is None


async def test_a_long_mapped_tooth_answer_is_cut_to_the_columns_length(api, reader, settings_env):
    settings_env(jotform_field_map=json.dumps({"tooth": "7"}))  # the notes question: any answer is taken
    content = submission()
    content["answers"]["7"]["answer"] = "dente 6 " + "e mais " * 30  # its 59th character is a blank
    response = await api.post(URL, **multipart(webhook_fields(content)))
    case = await reader.get(Case, response.json()["case_id"])
    assert case.tooth == "dente 6 " + "e mais " * 7 + "e…"  # cut, the blank before the ellipsis dropped


async def test_only_radiographs_become_images_without_field_map(api, reader):
    """A form with a radiograph upload, a referral upload (PDF) and URL answers: only the films are the case's images;
    the other URL lists are not downloaded (no failed images polluting the case)."""
    content = submission("6084250982513018123")
    sid, folder = content["id"], f"https://www.jotform.com/uploads/raioxclinic/{FORM_ID}/{content['id']}"
    content["answers"]["10"] = {"name": "laudoEncaminhamento", "text": "Encaminhamento", "type": "control_fileupload",
                                "answer": [f"{folder}/encaminhamento.pdf"]}
    content["answers"]["11"] = {"name": "site", "text": "Site", "type": "control_textbox",
                                "answer": "https://clinica.example.com"}
    raw = json.loads(webhook_fields(content)["rawRequest"])
    raw["links"] = ["https://clinica.example.com/caso/1", "https://youtu.be/abc"]
    response = await api.post(URL, **multipart(webhook_fields(content, raw=raw)))
    assert response.status_code == 200, response.text
    assert response.json()["submission_id"] == sid
    images = (await reader.execute(select(CaseImage).where(CaseImage.case_id == response.json()["case_id"])
                                   .order_by(CaseImage.position))).scalars().all()
    assert [(i.question, i.filename) for i in images] == [("radiografias", f) for f in FILES]


async def test_ignored_url_lists_are_logged_once_per_submission_not_per_delivery(api, reader):
    """Every delivery (and a verification or reconciliation) parses the submission again: the questions left out of
    its images are logged once, when its case is created, with the case's id."""
    import structlog.testing

    content = submission("6084250982513018124")
    raw = json.loads(webhook_fields(content)["rawRequest"])
    raw["links"] = ["https://clinica.example.com/caso/1"]
    with structlog.testing.capture_logs() as logs:
        first = await api.post(URL, **multipart(webhook_fields(content, raw=raw)))
        again = await api.post(URL, **urlencoded(webhook_fields(content, raw=raw)))
    assert again.json()["duplicate"] is True
    ignored = [e for e in logs if e["event"] == "upload_fields_ignored"]
    assert len(ignored) == 1 and ignored[0]["case_id"] == first.json()["case_id"]
    assert ignored[0]["submission_id"] == content["id"] and list(ignored[0]["fields"]) == ["links"]
    assert "clinica.example.com" not in json.dumps(ignored[0])


async def test_unusual_multipart_goes_through_the_general_parser(api, reader):
    fields = webhook_fields(submission("6084250982513018999"))
    parts = [f'--xYz\r\nContent-Disposition: form-data; name="{k}"\r\nContent-Type: text/plain; charset=utf-8'
             f"\r\n\r\n{v}\r\n" for k, v in fields.items()]
    body = ("".join(parts) + "--xYz--\r\n").encode()
    response = await api.post(URL, content=body, headers={"content-type": 'multipart/form-data; boundary="xYz"'})
    assert response.status_code == 200, response.text
    case = await reader.get(Case, response.json()["case_id"])
    assert case.client_name == "João da Silva"
    with_file = ('--xYz\r\nContent-Disposition: form-data; name="f"; filename="a.png"\r\n'
                 '\r\nPNG\r\n--xYz--\r\n').encode()
    response = await api.post(URL, content=with_file, headers={"content-type": "multipart/form-data; boundary=xYz"})
    assert response.status_code == 400


def test_split_multipart_fast_path():
    from raiox.intake.formdata import split_multipart

    body = multipart_body({"a": "1", "b": "x\r\ny: z", "rawRequest": '{"k": "ç"}'}, BOUNDARY)
    assert split_multipart(body, BOUNDARY) == {"a": "1", "b": "x\r\ny: z", "rawRequest": '{"k": "ç"}'}
    assert split_multipart(body[:-10], BOUNDARY) is None  # no closing boundary: not the simple shape


@pytest.mark.parametrize("urlencoded", [False, True])
async def test_a_body_of_exactly_max_fields_is_accepted(api, reader, urlencoded):
    """MAX_FIELDS is a limit, not an off-by-one: 2000 fields (Jotform's and padding) make a case."""
    from raiox.intake.formdata import MAX_FIELDS

    fields = _padded(MAX_FIELDS - len(_fields()))
    assert len(fields) == MAX_FIELDS
    if urlencoded:
        request = {"content": urlencode(fields).encode(),
                   "headers": {"content-type": "application/x-www-form-urlencoded"}}
    else:
        request = multipart(fields)
    response = await api.post(URL, **request)
    assert response.status_code == 200, response.text
    assert (await reader.execute(select(func.count()).select_from(Case))).scalar_one() == 1


def test_split_urlencoded_reads_as_parse_qsl_does_and_keeps_utf8():
    from urllib.parse import parse_qsl

    from raiox.intake.formdata import split_urlencoded

    body = "a=1&&b=x+y%2Bz&empty=&bare&a=2&t=%C3%A7%zz%4&k%C3%A9y=S%C3%A3o"
    assert split_urlencoded(body.encode()) == dict(parse_qsl(body, keep_blank_values=True))
    assert split_urlencoded("q=ção &r=%E3".encode()) == {"q": "ção ", "r": "ã"}


def invalid_count() -> float:
    from raiox.kit.metrics import REGISTRY

    return REGISTRY.get_sample_value("raiox_webhooks_total", {"outcome": "invalid"}) or 0.0


@pytest.mark.parametrize("encode", [multipart, urlencoded])
async def test_nul_surrogates_and_nan_are_made_storable_and_the_case_kept(api, reader, encode):
    content = submission("6084250982513018100", name={"first": "Jo\x00ão", "last": "da Silva"})
    content["answers"]["7"]["answer"] = "Jos\ud800 \x00implante"
    raw = json.loads(webhook_fields(content)["rawRequest"])
    raw["q20_medida"] = float("nan")
    raw["q21_nu\x00l"] = ["x\udfff"]
    fields = webhook_fields(content, raw=raw)
    fields["formTitle"], fields["pretty"] = "a\x00b", "Nome:Jo\x00ão"  # raw text fields hold no surrogates
    assert "\\u0000" in fields["rawRequest"] and "\\ud800" in fields["rawRequest"]  # JSON escapes, as sent
    response = await api.post(URL, **encode(fields))
    assert response.status_code == 200, response.text
    case = await reader.get(Case, response.json()["case_id"])
    assert case.client_name == "João da Silva"
    assert case.notes == "Jos\ufffd implante"
    assert case.payload["formTitle"] == "ab"
    assert case.answers["q20_medida"] == "nan" and case.answers["q21_nul"] == ["x\ufffd"]
    images = (await reader.execute(select(CaseImage).where(CaseImage.case_id == case.id))).scalars().all()
    assert len(images) == len(FILES)


async def test_chunked_body_over_the_limit_is_413_without_reading_the_rest(api, reader, capsys):
    from raiox.intake.formdata import MAX_BODY
    from raiox.kit.logging import configure_logging

    configure_logging()
    sent = 0
    chunk = b"a=" + b"x" * (1024 * 1024 - 2)

    async def body():  # no Content-Length: httpx sends it chunked
        nonlocal sent
        for _ in range(64):
            sent += 1
            yield chunk

    before = invalid_count()
    response = await api.post(URL, content=body(), headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413 and response.json()["error"] == "too_large"
    assert sent <= MAX_BODY // len(chunk) + 2  # stopped right after the limit, not after all 64 MiB
    assert invalid_count() == before + 1 and "webhook_rejected" in capsys.readouterr().err
    assert (await reader.execute(select(func.count()).select_from(Case))).scalar_one() == 0


def _fields() -> dict:
    return webhook_fields(submission("6084250982513018200"))


MP = f"multipart/form-data; boundary={BOUNDARY}"


def _padded(extra: int) -> dict:
    """Jotform's fields plus EXTRA more (`x0`, `x1`...)."""
    return {**_fields(), **{f"x{i}": "" for i in range(extra)}}
CLOSE = f"--{BOUNDARY}--\r\n".encode()
FILE_PART = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="f"; filename="a.png"\r\n'
             "Content-Type: image/png\r\n\r\nPNG\r\n").encode()


@pytest.mark.parametrize(("body", "content_type", "status", "code", "detail"), [
    (lambda: multipart_body(_fields(), BOUNDARY), "multipart/form-data", 400, "bad_request", "without a boundary"),
    (lambda: multipart_body(_fields(), BOUNDARY).replace(b"\r\n", b"\n"), MP, 400, "bad_request",
     "malformed multipart body"),
    (lambda: multipart_body(_fields(), BOUNDARY), "multipart/form-data; boundary=other", 400, "bad_request",
     "does not use the boundary"),
    (lambda: multipart_body(_fields(), BOUNDARY)[:-len(CLOSE)] + FILE_PART + CLOSE, MP, 400, "bad_request",
     "carries a file"),
    # cut short before its closing boundary: Starlette's parser would silently drop the last field
    (lambda: multipart_body(_fields(), BOUNDARY)[:-len(CLOSE)], MP, 400, "bad_request", "closing boundary"),
    (lambda: json.dumps(_fields()).encode(), "application/json", 415, "unsupported_media_type",
     "multipart/form-data"),
    # more fields than MAX_FIELDS (2000), whichever parser reads the body: urlencoded, multipart's fast path
    # (Jotform's shape), multipart's general parser (a part with a Content-Type header)
    (lambda: urlencode(_padded(2001 - len(_fields()))).encode(), "application/x-www-form-urlencoded", 400,
     "bad_request", "urlencoded body has more than 2000 fields"),
    (lambda: (urlencode(_fields()) + "&" * 5000).encode(), "application/x-www-form-urlencoded", 200, None, None),
    (lambda: multipart_body(_padded(2001 - len(_fields())), BOUNDARY), MP, 400, "bad_request",
     "multipart body has more than 2000 fields"),
    (lambda: multipart_body(_padded(2001 - len(_fields())), BOUNDARY).replace(
        b'name="x0"\r\n', b'name="x0"\r\nContent-Type: text/plain\r\n', 1), MP, 400, "bad_request",
     "multipart body has more than 2000 fields"),
])
async def test_malformed_bodies_get_typed_errors_logged_and_counted(api, reader, capsys, body, content_type, status,
                                                                    code, detail):
    from raiox.kit.logging import configure_logging

    configure_logging()
    before = invalid_count()
    response = await api.post(URL, content=body(), headers={"content-type": content_type})
    assert response.status_code == status, response.text
    if status == 200:  # empty pairs (`&&`) are no fields: not counted
        assert invalid_count() == before
        return
    assert response.json()["error"] == code and detail in response.json()["detail"]
    logged = capsys.readouterr().err
    assert "webhook_rejected" in logged and detail in logged
    assert invalid_count() == before + 1
    assert (await reader.execute(select(func.count()).select_from(Case))).scalar_one() == 0


@pytest.mark.parametrize("uploads", [["file:///etc/passwd", "ftp://www.jotform.com/x.png", "http://[::1/x.png"],
                                     "https://evil.example/x.png"])
async def test_every_submitted_upload_is_recorded_whatever_its_scheme(api, reader, uploads):
    content = submission("6084250982513018300")
    raw = json.loads(webhook_fields(content)["rawRequest"])
    raw["radiografias"] = uploads
    response = await api.post(URL, **multipart(webhook_fields(content, raw=raw)))
    assert response.status_code == 200, response.text
    images = (await reader.execute(select(CaseImage).where(CaseImage.case_id == response.json()["case_id"])
                                    .order_by(CaseImage.position))).scalars().all()
    expected = uploads if isinstance(uploads, list) else [uploads]
    assert [i.source_url for i in images] == expected and {i.status for i in images} == {"pending"}


async def test_an_upload_url_longer_than_an_index_entry_keeps_its_case(api, reader):
    """A btree entry holds ~2.7 kB: the images' uniqueness is on the URL's digest, so a long upload URL is
    stored whole (not lost with its case), and the same long URL twice is still one image."""
    import random
    import string

    noise = "".join(random.Random(7).choices(string.ascii_letters + string.digits, k=6000))  # incompressible
    long_name = f"radiografia-{noise}.png"
    fields = webhook_fields(submission("7300000000000000001", files=[long_name, long_name, "b.png"]))
    response = await api.post(URL, **multipart(fields))
    assert response.status_code == 200, response.text
    images = (await reader.execute(select(CaseImage).where(CaseImage.case_id == response.json()["case_id"])
                                   .order_by(CaseImage.position))).scalars().all()
    assert [len(i.source_url) > 6000 for i in images] == [True, False]
    assert (await api.post(URL, **urlencoded(fields))).json()["duplicate"] is True


PT_TITLE = "Implante São João – ção"
PT_PRETTY = "Nome do dentista:João da Silva, Observações:Implante antigo: região de 46 – ção"


def _body_with(fields: dict, encoding: str, shape: str) -> dict:
    """FIELDS as a webhook body whose text fields are ENCODING bytes, sent in SHAPE: `escaped` (urlencoded,
    percent-escapes), `raw` (urlencoded, the bytes as they are), `simple` (multipart as Jotform sends it) or
    `general` (multipart whose parts carry a Content-Type: Starlette's parser, not the fast path)."""
    from urllib.parse import quote_plus

    if shape in ("escaped", "raw"):
        def escape(value: bytes) -> bytes:  # raw: only what the syntax needs escaped, other bytes as they are
            if shape == "escaped":
                return quote_plus(value, safe="").encode()
            return value.replace(b"%", b"%25").replace(b"&", b"%26").replace(b"+", b"%2B").replace(b"=", b"%3D")

        body = b"&".join(escape(k.encode()) + b"=" + escape(v.encode(encoding)) for k, v in fields.items())
        return {"content": body, "headers": {"content-type": "application/x-www-form-urlencoded"}}
    extra = b"Content-Type: text/plain\r\n" if shape == "general" else b""
    parts = [b"--" + BOUNDARY.encode() + b'\r\nContent-Disposition: form-data; name="' + k.encode() + b'"\r\n' + extra +
             b"\r\n" + v.encode(encoding) + b"\r\n" for k, v in fields.items()]
    return {"content": b"".join(parts) + b"--" + BOUNDARY.encode() + b"--\r\n",
            "headers": {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}}


@pytest.mark.parametrize("shape", ["escaped", "raw", "simple", "general"])
async def test_pt_br_top_level_fields_are_read_as_utf8(api, reader, shape):
    """formTitle and pretty (plain text, unlike rawRequest's \\u escapes) keep their accents and dashes, whether a
    urlencoded body percent-escapes the UTF-8 bytes or sends them raw, and in either multipart parser."""
    fields = dict(webhook_fields(submission("6084250982513018300")), formTitle=PT_TITLE, pretty=PT_PRETTY)
    response = await api.post(URL, **_body_with(fields, "utf-8", shape))
    assert response.status_code == 200, response.text
    case = await reader.get(Case, response.json()["case_id"])
    assert (case.payload["formTitle"], case.payload["pretty"]) == (PT_TITLE, PT_PRETTY)
    assert case.client_name == "João da Silva"
    images = (await reader.execute(select(CaseImage).where(CaseImage.case_id == case.id)
                                    .order_by(CaseImage.position))).scalars().all()
    assert [i.filename for i in images] == FILES


@pytest.mark.parametrize("shape", ["escaped", "raw", "simple", "general"])
async def test_top_level_text_not_in_utf8_is_read_as_latin1_and_the_case_kept(api, reader, shape):
    """A sender that writes Latin-1 (not UTF-8) in a text field: that field is read as Latin-1, every byte kept and
    the case created; the other fields (rawRequest, ASCII JSON) as sent."""
    fields = dict(webhook_fields(submission("6084250982513018400")), formTitle="Implante São João")
    response = await api.post(URL, **_body_with(fields, "latin-1", shape))
    assert response.status_code == 200, response.text
    case = await reader.get(Case, response.json()["case_id"])
    assert case.payload["formTitle"] == "Implante São João" and case.client_name == "João da Silva"
    images = (await reader.execute(select(CaseImage).where(CaseImage.case_id == case.id))).scalars().all()
    assert len(images) == len(FILES)
