"""rawRequest / API copy interpretation (answer shapes from jotform-notes.md), and log hygiene."""

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from fakes.jotform import FORM_ID, raw_request, webhook_fields, webhook_request
from raiox.intake.parse import from_api, from_webhook, is_upload_url, strip_secrets

SID = "6084250982513018472"
UPLOADS = f"https://www.jotform.com/uploads/raioxclinic/{FORM_ID}/{SID}"


def raw_form(raw: dict, **top) -> dict:
    return {"submissionID": "6084250982513018472", "formID": FORM_ID, "rawRequest": json.dumps(raw), **top}


def test_shapes_and_auto_detection_without_field_map():
    raw = {
        "slug": "submit/243231271343446", "submitDate": "1735599791882", "event_id": "1735599791882_x_y",
        "q2_paciente": {"first": "Paulo", "last": "Dias"},
        "q3_nomeDoDentista": {"prefix": "Dr.", "first": "Carla", "middle": "", "last": "Mendes", "suffix": ""},
        "q4_contato": "carla@odonto.com.br", "q5_celular": {"area": "21", "phone": "99887766"},
        "q6_obs": "Implante de 2012", "q8_data": {"month": "1", "day": "2", "year": "2024"},
        "q9_hora": {"timeInput": "12:42", "hourSelect": "12", "minuteSelect": "42", "ampm": "AM"},
        "q10_vazio": {"month": "", "day": "", "year": ""},
        "temp_upload": {"q11_exames": ["a b.png#jotformfs-1#uuid"]},
        "exames": ["https://www.jotform.com/uploads/u/243231271343446/1/a%20b%3B%20c%2C%20d.png"],
        "outros": ["https://www.jotform.com/uploads/u/2/3/laudo%20final.pdf"],
        "validatedNewRequiredFieldIDs": "{\"new\":1}",
    }
    sub = from_webhook(raw_form(raw), field_map={}, secrets=[])
    assert sub.client_name == "Dr. Carla Mendes"  # the name question whose name says dentist wins
    assert (sub.client_email, sub.client_phone, sub.notes) == ("carla@odonto.com.br", "(21) 99887766",
                                                              "Implante de 2012")
    assert [(u.question, u.filename) for u in sub.uploads] == [("exames", "a b; c, d.png"),
                                                              ("outros", "laudo final.pdf")]
    assert sub.fields["data"] == "2024-01-02" and "vazio" not in sub.fields
    assert sub.submitted_at.year == 2024


def test_a_date_answer_that_is_no_calendar_date_keeps_what_was_typed():
    raw = {"q8_data": {"month": "2", "day": "30", "year": "2025"},
           "q9_outra": {"month": "45", "day": "13", "year": "abc"},
           "q10_boa": {"month": "02", "day": "28", "year": "2025"}}
    fields = from_webhook(raw_form(raw), field_map={}, secrets=[]).fields
    assert (fields["data"], fields["outra"], fields["boa"]) == ("30/2/2025", "13/45/abc", "2025-02-28")


@pytest.mark.parametrize(("change", "ok"), [
    ({}, True), ({"form_id": None}, True), ({"form_id": ""}, True), ({"id": "9" * 40}, True),
    ({"id": "9" * 41}, False), ({"id": ""}, False), ({"id": "12a"}, False), ({"id": None}, False),
    ({"form_id": "9" * 41}, False), ({"form_id": "24323127134344x"}, False), ({"form_id": " 1"}, False),
])
def test_api_copy_ids_are_checked_as_the_webhook_checks_them(change, ok):
    """`id` and `form_id` of an API copy: 1 to 40 digits, as the webhook's submissionID and formID (a 422 otherwise,
    which reconciliation and verification log as unreadable and skip)."""
    from raiox.kit.errors import Unprocessable

    content = {**api_copy(), **change}
    if ok:
        assert from_api(content, field_map={}).submission_id == str(content["id"])
    else:
        with pytest.raises(Unprocessable, match="must be a string of 1 to 40 digits"):
            from_api(content, field_map={})


def test_api_copy_uses_question_types():
    content = {"id": "6084250982513018472", "form_id": FORM_ID, "created_at": "2025-11-18 10:11:12",
               "status": "ACTIVE", "answers": {
                   "1": {"name": "head", "type": "control_head", "text": "Título"},
                   "3": {"name": "quem", "type": "control_fullname", "answer": {"first": "Ana", "last": "Reis"}},
                   "4": {"name": "correio", "type": "control_email", "answer": "ana@x.com"},
                   "5": {"name": "fone", "type": "control_phone", "answer": {"full": "(11) 1234-5678"}},
                   "6": {"name": "texto", "type": "control_textarea", "answer": "ver raiz"},
                   "7": {"name": "arquivos", "type": "control_fileupload",
                         "answer": ["https://www.jotform.com/uploads/u/1/2/x%20y.jpg"]}}}
    sub = from_api(content, field_map={})
    assert (sub.client_name, sub.client_email, sub.client_phone, sub.notes) == ("Ana Reis", "ana@x.com",
                                                                                "(11) 1234-5678", "ver raiz")
    assert [u.filename for u in sub.uploads] == ["x y.jpg"]
    assert sub.submitted_at == datetime(2025, 11, 18, 10, 11, 12, tzinfo=UTC)  # no zone given: read as UTC
    # the account's clock (RAIOX_JOTFORM_TIMEZONE): 10:11 in São Paulo is 13:11 UTC
    in_brazil = from_api(content, field_map={}, zone=ZoneInfo("America/Sao_Paulo")).submitted_at
    assert in_brazil == datetime(2025, 11, 18, 13, 11, 12, tzinfo=UTC) and in_brazil.utcoffset() == timedelta(0)


def test_field_map_by_qid_and_full_key():
    raw = {"q3_a": {"first": "X", "last": "Y"}, "q4_b": {"first": "Z", "last": "W"}, "q7_c": "texto"}
    sub = from_webhook(raw_form(raw), field_map={"name": "q4_b", "notes": "7"}, secrets=[])
    assert (sub.client_name, sub.notes) == ("Z W", "texto")


def clinic_form(**extra_answers) -> dict:
    """A submission (API copy) of a form with a radiograph upload question, a documents upload question (a referral
    PDF and a photo), a website and a links checkbox: the answers of a real clinic form."""
    answers = {
        "3": {"name": "nomeDentista", "type": "control_fullname", "text": "Nome",
              "answer": {"first": "Carla", "last": "Mendes"}},
        "4": {"name": "email", "type": "control_email", "text": "E-mail", "answer": "carla@odonto.com.br"},
        "9": {"name": "radiografias", "type": "control_fileupload", "text": "Radiografias",
              "answer": [f"{UPLOADS}/periapical%2036.png", f"{UPLOADS}/panor%C3%A2mica.dcm"]},
        "10": {"name": "documentosEncaminhamento", "type": "control_fileupload", "text": "Encaminhamento",
               "answer": [f"{UPLOADS}/encaminhamento%20Dr%20Reis.pdf", f"{UPLOADS}/foto%20do%20pedido.jpg"]},
        "11": {"name": "siteDaClinica", "type": "control_textbox", "text": "Site", "answer": "https://odonto.com.br"},
        "12": {"name": "links", "type": "control_checkbox", "text": "Links",
               "answer": ["https://odonto.com.br/casos/1", "https://youtu.be/abc"]},
        **extra_answers,
    }
    return {"id": SID, "form_id": FORM_ID, "created_at": "2025-11-18 10:11:12", "status": "ACTIVE",
            "answers": answers}


def uploads_of(sub) -> list[tuple[str, str]]:
    return [(u.question, u.filename) for u in sub.uploads]


RADIOGRAPHS = [("radiografias", "periapical 36.png"), ("radiografias", "panorâmica.dcm")]


def test_only_the_radiographs_become_images_not_other_url_lists():
    content = clinic_form()
    raw = raw_request(content)
    raw["linksUteis"] = ["https://odonto.com.br/casos/1", "https://www.jotform.com/form/243231271343446"]
    raw["assinaturaWidget"] = ["https://widgets.example.net/signature/abc.png"]
    sub = from_webhook(webhook_fields(content, raw=raw), field_map={}, secrets=[])
    # the referral PDF is left out (a documents question next to a radiograph one); its photo stays, unsure
    assert uploads_of(sub) == [*RADIOGRAPHS, ("documentosEncaminhamento", "foto do pedido.jpg")]
    # the questions left out are named (logged once, when the case is created: test_intake_webhook)
    assert {"linksUteis", "assinaturaWidget", "documentosEncaminhamento"} <= set(sub.ignored)
    logged = json.dumps(sub.ignored)
    assert "odonto.com.br" not in logged and "widgets.example.net" not in logged and "encaminhamento%20" not in logged
    assert "Dr Reis" not in logged
    api = from_api(content, field_map={})  # the API's copy of the same submission: the same images
    assert uploads_of(api) == uploads_of(sub)


def test_upload_urls_of_another_form_or_without_temp_upload_are_kept():
    """Older payloads may lack `temp_upload`; an upload URL's folder and form are not checked (jotform-notes.md 1.3):
    Jotform upload URLs under any bare key are kept, the downloader sends the key only for the configured form."""
    content = clinic_form()
    raw = raw_request(content)
    del raw["temp_upload"]
    raw["exames"] = ["https://eu.jotform.com/uploads/raioxclinic/70936128142151/55555/rx%20antiga.jpg",
                     "https://odonto.com.br/rx.jpg"]
    sub = from_webhook(webhook_fields(content, raw=raw), field_map={}, secrets=[])
    assert uploads_of(sub) == [*RADIOGRAPHS, ("documentosEncaminhamento", "foto do pedido.jpg"),
                               ("exames", "rx antiga.jpg")]


def test_a_temp_upload_question_keeps_every_url_and_no_radiograph_question_keeps_documents():
    """Jotform declares the question an upload one: its strings all stay, whatever the host (EU, HIPAA, Enterprise
    hosts are unconfirmed), failed with a reason at download rather than dropped. Without a question named like
    radiographs, a documents question is all there is: its PDFs stay too (a scanned film?)."""
    raw = {"temp_upload": {"q9_documentos": ["a#jotformfs-1#u", "b#jotformfs-1#u"]},
           "documentos": ["https://uploads.clinic-enterprise.example/uploads/u/1/2/rx.pdf", "file:///etc/passwd"]}
    sub = from_webhook(raw_form(raw), field_map={}, secrets=[])
    assert uploads_of(sub) == [("documentos", "rx.pdf"), ("documentos", "passwd")]


def test_an_empty_radiograph_question_keeps_the_documents():
    content = clinic_form()
    content["answers"]["9"]["answer"] = []
    sub = from_api(content, field_map={})
    assert uploads_of(sub) == [("documentosEncaminhamento", "encaminhamento Dr Reis.pdf"),
                               ("documentosEncaminhamento", "foto do pedido.jpg")]


@pytest.mark.parametrize("ref", ["radiografias", "9", "q9_radiografias", " radiografias , 77"])
def test_field_map_images_by_name_qid_or_full_key(ref):
    """rawRequest keeps an upload question's id only in `temp_upload`: a qid or full key resolves through it."""
    content = clinic_form()
    raw = raw_request(content)
    sub = from_webhook(webhook_fields(content, raw=raw), field_map={"images": ref}, secrets=[])
    assert uploads_of(sub) == RADIOGRAPHS
    assert uploads_of(from_api(content, field_map={"images": ref})) == RADIOGRAPHS


def test_field_map_images_takes_every_url_of_the_mapped_questions_only():
    content = clinic_form()
    sub = from_webhook(webhook_fields(content), field_map={"images": "radiografias,10"}, secrets=[])
    assert uploads_of(sub) == [*RADIOGRAPHS, ("documentosEncaminhamento", "encaminhamento Dr Reis.pdf"),
                               ("documentosEncaminhamento", "foto do pedido.jpg")]


@pytest.mark.parametrize(("url", "expected"), [
    (f"{UPLOADS}/a%20b.png", True),
    ("https://eu.jotform.com/uploads/u/243231271343446/1/a.png", True),
    ("https://hipaa.jotform.com/uploads/!team_12/243231271343446/1/a.png", True),
    ("https://clinic.jotform.com/uploads/u/70936128142151/1/a.png", True),  # an Enterprise subdomain
    ("http://127.0.0.1:9000/uploads/u/1/2/a.png", True),  # an origin of RAIOX_JOTFORM_UPLOAD_HOSTS
    ("http://127.0.0.1:9001/uploads/u/1/2/a.png", False),
    ("https://www.jotform.com/form/243231271343446", False),
    ("https://www.jotform.com/uploads/u/notaform/1/a.png", False),
    ("https://www.jotform.com/uploads/u/1/a.png", False),
    ("https://notjotform.com/uploads/u/1/2/a.png", False),
    ("https://www.jotform.com.evil.example/uploads/u/1/2/a.png", False),
    ("ftp://www.jotform.com/uploads/u/1/2/a.png", False),
    ("https://www.jotform.com:bad/uploads/u/1/2/a.png", False),
    ("data:image/png;base64,iVBORw0KGgo=", False),
])
def test_is_upload_url(url, expected):
    assert is_upload_url(url, {"http://127.0.0.1:9000"}) is expected


def test_strip_secrets():
    url = "https://h/webhooks/jotform?token=s3cret&x=1&apiKey=k"
    assert strip_secrets(url, ["s3cret"]) == "https://h/webhooks/jotform?x=1"
    assert strip_secrets("echo s3cret here", ["s3cret"]) == "echo *** here"


async def test_logs_never_contain_the_api_key_or_secret(api, jotform, catalog, scene_pngs, capsys):
    from raiox.intake import processing
    from raiox.intake.reconcile import reconcile
    from raiox.kit.logging import configure_logging

    configure_logging("json", "DEBUG")
    content = jotform.add_submission(FORM_ID, files={"radiografias": [("a.png", scene_pngs[0]),
                                                                      ("b.png", b"<html>login</html>")]})
    fields = jotform.webhook_fields(content["id"], webhook_url="https://x/webhooks/jotform?token=test-webhook-secret")
    await api.post("/webhooks/jotform?token=wrong", **webhook_request(fields))
    response = await api.post("/webhooks/jotform?token=test-webhook-secret", **webhook_request(fields))
    jotform.fail("/uploads/", 503, times=1)
    jotform.fail("/form/", 503, times=1)
    await processing.process_case(__import__("uuid").UUID(response.json()["case_id"]))
    await reconcile()
    out = capsys.readouterr()
    logged = out.out + out.err
    assert "download_retry" in logged and "jotform_retry" in logged and "webhook_rejected" in logged
    assert "test-jotform-key" not in logged and "test-webhook-secret" not in logged


# -- tooth / region (RAIOX_JOTFORM_FIELD_MAP "tooth", or detected from the question's name) ----------------------

def api_copy(*questions: tuple[str, str, object]) -> dict:
    """An API copy whose questions are (name, type, answer), numbered from 3, after a dentist's name."""
    answers = {"2": {"name": "nomeDentista", "type": "control_fullname", "text": "Nome",
                     "answer": {"first": "Ana", "last": "Reis"}}}
    for qid, (name, kind, answer) in enumerate(questions, start=3):
        answers[str(qid)] = {"name": name, "type": kind, "text": name, "answer": answer}
    return {"id": SID, "form_id": FORM_ID, "created_at": "2025-11-18 10:11:12", "status": "ACTIVE", "answers": answers}


def tooth_of(content: dict, field_map: dict | None = None) -> str | None:
    """The tooth the webhook reads; the API copy of the same submission (reconciliation, verification) must agree."""
    webhook = from_webhook(webhook_fields(content), field_map=field_map or {}, secrets=[]).tooth
    assert from_api(content, field_map=field_map or {}).tooth == webhook
    return webhook


@pytest.mark.parametrize(("name", "kind", "answer", "tooth"), [
    ("dente", "control_textbox", "36", "36"),
    ("denteRegiao", "control_textbox", "  região de 46 \n e 47\t", "região de 46 e 47"),  # on one line
    ("elementoDental", "control_number", "21", "21"),
    ("dentes", "control_checkbox", ["36", "37"], "36, 37"),
    ("localDoImplante", "control_dropdown", "anterior superior", "anterior superior"),
    ("regiaoDoImplante", "control_textbox", "lado esquerdo", "lado esquerdo"),  # names the implant: any place
    ("região", "control_textbox", "Região de 46", "Região de 46"),  # alone: an answer naming a place in the mouth
    ("regiao", "control_radio", "Anterior inferior", "Anterior inferior"),
    ("REGIAO_DENTE", "control_textbox", "primeiro molar", "primeiro molar"),
])
def test_the_tooth_question_is_detected_by_its_name(name, kind, answer, tooth):
    content = api_copy(("observacoes", "control_textarea", "sem dor"), (name, kind, answer))
    assert tooth_of(content) == tooth


@pytest.mark.parametrize(("name", "kind", "answer"), [
    ("regiao", "control_textbox", "Sudeste"),  # the dentist's region of the country
    ("cidadeRegiao", "control_textbox", "Campinas - SP"),
    ("quantosDentes", "control_number", "2"),  # a count, not the place
    ("quantidadeDeElementos", "control_textbox", "3 elementos"),
    ("possuiDente", "control_radio", "Sim"),  # yes / no
    ("denteExtraido", "control_radio", "Não"),
    ("nomeDentista2", "control_textbox", "36"),  # dentista is no dente
    ("dentalClinic", "control_textbox", "Clínica 36"),
    ("localDoAtendimento", "control_textbox", "Consultório 46"),  # a place, not the implant's
    ("dataDoDente", "control_datetime", {"month": "1", "day": "2", "year": "2024"}),  # no short text
    ("descricaoDente", "control_textarea", "dente 36, " * 6 + "x"),  # longer than a tooth or region: free text
    ("dente", "control_textbox", ""),  # not answered
])
def test_a_question_that_does_not_say_where_the_implant_is_is_not_taken(name, kind, answer):
    assert tooth_of(api_copy((name, kind, answer))) is None


def test_without_a_tooth_question_there_is_no_tooth():
    content = api_copy(("observacoes", "control_textarea", "dente 36 com dor"), ("email", "control_email", "a@b.co"))
    assert tooth_of(content) is None


def test_the_first_tooth_question_in_form_order_wins():
    assert tooth_of(api_copy(("regiao", "control_textbox", "Sudeste"), ("elemento", "control_textbox", "46"),
                             ("dente", "control_textbox", "36"))) == "46"


@pytest.mark.parametrize("ref", ["qualO", "4", "q4_qualO"])
def test_the_field_map_names_the_tooth_question_by_name_qid_or_full_key(ref):
    content = api_copy(("dente", "control_textbox", "11"), ("qualO", "control_textbox", "implante na\x00 região 36"))
    assert tooth_of(content, {"tooth": ref}) == "implante na região 36"  # whatever its name, NUL removed


def test_a_mapped_tooth_question_left_unanswered_is_no_tooth_and_detection_stays_off():
    content = api_copy(("dente", "control_textbox", "11"))
    assert tooth_of(content, {"tooth": "qualO"}) is None
    assert tooth_of(content, {"tooth": ""}) == "11"  # an empty entry: detected


def test_the_tooth_answer_stays_among_the_form_answers():
    sub = from_webhook(webhook_fields(api_copy(("dente", "control_textbox", "36"))), field_map={}, secrets=[])
    assert sub.tooth == "36" and sub.fields["dente"] == "36" and sub.client_name == "Ana Reis"
