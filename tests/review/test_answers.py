"""The case page's form answers: compound answers in reading order, Jotform's telemetry left out."""

from raiox.review.casepage import flatten_answers


def test_compound_answers_read_in_order_whatever_order_jsonb_kept():
    stored = {  # as PostgreSQL's jsonb gives it back: object keys shortest first
        "q3_nomeDentista": {"last": "Souza", "first": "Ana"},
        "q5_telefone": {"area": "11", "phone": "98765-4321"},
        "q6_data": {"day": "05", "year": "2026", "month": "11"},
        "q7_endereco": {"city": "Campinas", "state": "SP", "addr_line1": "Rua A, 10", "postal": ""},
    }
    assert dict(flatten_answers(stored)) == {"nomeDentista": "Ana Souza", "telefone": "(11) 98765-4321",
                                             "data": "05/11/2026", "endereco": "Rua A, 10 Campinas SP"}


def test_form_telemetry_and_links_are_not_answers():
    stored = {"q4_regiao": "36", "path": "/submit/123", "jsExecutionTracker": "build-date-1", "buildDate": "1",
              "event_id": "1735599791882_243615086540051_x", "q9_radiografias": ["https://www.jotform.com/u/a.png"],
              "21": {"text": "Observações", "answer": "Implante antigo"}}
    assert flatten_answers(stored) == [("regiao", "36"), ("Observações", "Implante antigo")]
