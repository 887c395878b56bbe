"""RAIOX_LOG_FORMAT=json: every line of the stream is one JSON object, the standard library's loggers included."""

import json
import logging

import pytest

from raiox.kit.logging import configure_logging, get_logger, register_secret


def test_json_stream_carries_stdlib_records_and_tracebacks_as_json_with_secrets_masked(capsys):
    configure_logging("json")
    register_secret("s3cr3t-value-xyz")
    logging.getLogger("procrastinate.worker").info("Starting job deliver_result[4](token='s3cr3t-value-xyz')")
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    get_logger("raiox.test").info("case_processed", case_id="c1")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]  # each line parses on its own
    assert [line["event"].split("(")[0] for line in lines] == ["Starting job deliver_result[4]",
                                                               "Exception in ASGI application", "case_processed"]
    assert lines[0]["logger"] == "procrastinate.worker" and "***" in lines[0]["event"]
    assert "ZeroDivisionError: boom" in lines[1]["exception"] and lines[1]["level"] == "error"
    assert lines[2]["case_id"] == "c1"
    configure_logging("console")


def test_secrets_are_masked_inside_lists_and_mappings_and_addresses_on_request(capsys):
    from raiox.kit.logging import mask_addresses

    configure_logging("json")
    register_secret("an0ther-s3cret")
    get_logger("raiox.test").info("delivery_finished", errors=["jotform: apiKey=an0ther-s3cret refused"],
                                  detail={"url": "https://x.example/?token=abc123"})
    line = json.loads(capsys.readouterr().err.splitlines()[-1])
    assert line["errors"] == ["jotform: apiKey=*** refused"] and line["detail"] == {"url": "https://x.example/?token=***"}
    configure_logging("console")
    refused = "email: SMTP recipient refused: 550 b'5.1.1 <jo\u00e3o.silva+x@cl\u00ednica-sorriso.com.br>: unknown'"
    assert mask_addresses(refused) == "email: SMTP recipient refused: 550 b'5.1.1 <<e-mail>>: unknown'"


@pytest.mark.parametrize("text", [
    "550 b'5.1.1 <jo\\xc3\\xa3o.silva@cl\\xc3\\xadnica.com.br>: unknown'",  # a bytes repr escapes non-ASCII
    "550 5.1.1 <joao.silva>@clinica.com.br: bad syntax",
    "550 5.1.3 joao.silva,maria@clinica.com.br: bad syntax",
    '550 5.1.3 "joao silva"@clinica.com.br: bad syntax',
    "cannot address the e-mail to 'jo\u00e3o.silva@cl\u00ednica.com.br': non-ASCII local part",
])
def test_no_part_of_an_address_survives_masking(text):
    from raiox.kit.logging import mask_addresses

    masked = mask_addresses(text)
    assert "<e-mail>" in masked and "silva" not in masked and "clinica" not in masked and "nica" not in masked
