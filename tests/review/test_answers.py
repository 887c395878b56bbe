"""The case page's form answers: compound answers in reading order, Jotform's telemetry left out."""

from raiox.review.casepage import flatten_answers


def test_compound_answers_read_in_order_whatever_order_jsonb_kept():
    stored = {  # as PostgreSQL's jsonb gives it back: object keys shortest first
        "q3_nomeDentista": {"last": "Souza", "first": "Ana"},
        "q5_telefone": {"area": "11", "phone": "98765-4321"},
        "q6_data": {"day": "05", "year": "2026", "month": "11"},
        "q7_endereco": {"city": "Campinas", "state": "SP", "addr_line1": "Rua A, 10", "postal": ""},
    }
    assert dict(flatten_answers(stored)) == {"Nome dentista": "Ana Souza", "Telefone": "(11) 98765-4321",
                                             "Data": "05/11/2026", "Endereco": "Rua A, 10 Campinas SP"}


def test_form_telemetry_and_links_are_not_answers():
    stored = {"q4_regiao": "36", "path": "/submit/123", "jsExecutionTracker": "build-date-1", "buildDate": "1",
              "event_id": "1735599791882_243615086540051_x", "q9_radiografias": ["https://www.jotform.com/u/a.png"],
              "21": {"text": "Observações", "answer": "Implante antigo"}}
    assert flatten_answers(stored) == [("Regiao", "36"), ("Observações", "Implante antigo")]


def test_answers_follow_the_forms_order_not_the_storage_order():
    """jsonb returns keys shortest first: q12_ before q3_... would scramble the form; the question ids order it."""
    stored = {"q9_email": "ana@example.com", "q12_observacoes": "urgente", "q3_nomeDentista": "Ana",
              "q10_CRO_UF": "SP 12345", "q4_telefone": "11 9999"}
    assert flatten_answers(stored) == [("Nome dentista", "Ana"), ("Telefone", "11 9999"), ("Email", "ana@example.com"),
                                       ("CRO UF", "SP 12345"), ("Observacoes", "urgente")]
    api_copy = {"7": {"text": "Região", "answer": "36", "order": "2"},
                "3": {"text": "Nome", "answer": "Ana", "order": "1"}}
    assert flatten_answers(api_copy) == [("Nome", "Ana"), ("Região", "36")]
