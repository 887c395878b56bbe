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


def test_procrastinate_per_job_lines_are_debug_its_worker_and_failure_lines_stay(capsys):
    """Every job (requeue_stalled_jobs runs each minute) wrote "Periodic job ... deferred", "Starting job ...",
    "Job ... ended with status: Success" at INFO: three lines a minute in the journal, all day."""
    worker = logging.getLogger("procrastinate.worker")

    def emit() -> list[dict]:
        logging.getLogger("procrastinate.periodic").info("Periodic job x deferred", extra={
            "action": "periodic_task_deferred"})
        worker.info("Starting job x", extra={"action": "start_job"})
        worker.info("Job x ended with status: Success", extra={"action": "job_success"})
        worker.error("Job y ended with status: Error", extra={"action": "job_error"})
        worker.info("Stopped worker on all queues", extra={"action": "stop_worker"})
        return [json.loads(line) for line in capsys.readouterr().err.splitlines()]

    configure_logging("json")
    assert [(line["level"], line["event"][:8]) for line in emit()] == [("error", "Job y en"), ("info", "Stopped ")]
    configure_logging("json", "debug")
    assert [line["level"] for line in emit()] == ["debug", "debug", "debug", "error", "info"]
    configure_logging("console")


def test_procrastinates_blueprint_line_is_debug_its_warnings_stay(capsys):
    """Every `raiox` command that imports `kit.jobs` (its procrastinate App) wrote "Adding tasks from blueprint" at
    INFO: noise on `raiox users list` as on the worker's start. It is DEBUG now; procrastinate's warnings still show."""
    import procrastinate
    from procrastinate.testing import InMemoryConnector

    def emit() -> list[dict]:
        procrastinate.App(connector=InMemoryConnector())  # registers its builtin blueprint
        logging.getLogger("procrastinate.blueprints").warning("App is instantiated in the main Python module", extra={
            "action": "app_defined_in___main__"})
        return [json.loads(line) for line in capsys.readouterr().err.splitlines()]

    configure_logging("json")
    assert [(line["level"], line["event"]) for line in emit()] == [
        ("warning", "App is instantiated in the main Python module")]
    configure_logging("json", "debug")
    assert [(line["level"], line["event"]) for line in emit()] == [
        ("debug", "Adding tasks from blueprint"), ("warning", "App is instantiated in the main Python module")]
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


async def test_a_refused_value_is_logged_by_its_kind_never_by_its_text(session):
    """PostgreSQL quotes the value it refuses (invalid input syntax for type uuid: "ana.silva@..."): the client's
    data. `request.unstorable_value` names the error's class, SQLSTATE and the schema names it reports, not that."""
    import structlog
    from sqlalchemy import text
    from sqlalchemy.exc import DataError

    from raiox.kit.errors import unstorable

    with pytest.raises(DataError) as refused:
        await session.execute(text("SELECT CAST(:value AS uuid)"), {"value": "ana.silva@clinica.com.br"})
    assert "ana.silva@clinica.com.br" in str(refused.value.orig)  # what the line used to carry
    with structlog.testing.capture_logs() as logs:
        error = unstorable(refused.value)
    assert error.status_code == 422
    assert logs == [{"event": "request.unstorable_value", "log_level": "info", "error": "InvalidTextRepresentation",
                     "sqlstate": "22P02"}]


async def test_a_refused_value_names_the_column_and_constraint_the_database_reports():
    """A check or foreign-key refusal comes with its table, column or constraint name: kept, they say where."""
    import psycopg
    import structlog

    from raiox.kit.errors import database_error_fields, unstorable

    class Diagnostic:
        table_name, column_name, constraint_name, datatype_name = "users", "email", "users_email_key", None

    class Refused(psycopg.errors.StringDataRightTruncation):
        diag = Diagnostic()

    with structlog.testing.capture_logs() as logs:
        unstorable(Refused('value too long for type character varying(320): "ana.silva@clinica.com.br"'))
    assert logs[0]["error"] == "Refused" and logs[0]["sqlstate"] == "22001"
    assert {k: logs[0][k] for k in ("table", "column", "constraint")} == {
        "table": "users", "column": "email", "constraint": "users_email_key"}
    assert "datatype" not in logs[0] and "ana.silva" not in str(logs)
    assert database_error_fields(ValueError("x")) == {"error": "ValueError"}
