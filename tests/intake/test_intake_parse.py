"""rawRequest / API copy interpretation (answer shapes from jotform-notes.md), and log hygiene."""

import json

from fakes.jotform import FORM_ID, webhook_request
from raiox.intake.parse import from_api, from_webhook, strip_secrets


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
    assert [u.filename for u in sub.uploads] == ["x y.jpg"] and sub.submitted_at.hour == 10


def test_field_map_by_qid_and_full_key():
    raw = {"q3_a": {"first": "X", "last": "Y"}, "q4_b": {"first": "Z", "last": "W"}, "q7_c": "texto"}
    sub = from_webhook(raw_form(raw), field_map={"name": "q4_b", "notes": "7"}, secrets=[])
    assert (sub.client_name, sub.notes) == ("Z W", "texto")


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
