import json

import pytest
from fakes.jotform import FORM_ID, FakeJotform

RESULT_FIELDS = {"system": "21", "manufacturer": "22", "message": "23", "report": "24"}


@pytest.fixture
def jotform():
    with FakeJotform(api_key="test-jotform-key") as fake:
        for sid in ("5812345678901234567", "777"):
            fake.add_submission(FORM_ID, submission_id=sid)
        yield fake


class Inbox:
    def __init__(self) -> None:
        self.messages: list = []
        self.delay_after_accept = 0.0
        self.data_replies: list[str] = []  # replies to the next messages instead of accepting them ("451 ...")

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook name
        import asyncio
        import email
        import email.policy

        if self.data_replies:
            return self.data_replies.pop(0)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((envelope.rcpt_tos, message))
        if self.delay_after_accept:
            await asyncio.sleep(self.delay_after_accept)  # the client's final reply times out
        return "250 OK"


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    inbox.port = port
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox
    controller.stop()


@pytest.fixture
def delivery_env(monkeypatch, database_url, jotform):
    """Settings pointing the delivery at the Jotform stand-in, with a short backoff. Timeouts stay a few seconds:
    a pause of the test process (a garbage collection on a busy runner) must not add a retry the test counts; a
    test about timeouts passes its own."""
    from raiox.kit.settings import get_settings

    def apply(**extra: str) -> None:
        values = {
            "RAIOX_JOTFORM_API_URL": jotform.url, "RAIOX_JOTFORM_RESULT_FIELDS": json.dumps(RESULT_FIELDS),
            "RAIOX_DELIVERY_BACKOFF_S": "0.05", "RAIOX_JOTFORM_TIMEOUT_S": "5", "RAIOX_SMTP_TIMEOUT_S": "5",
            "RAIOX_PUBLIC_URL": "https://raiox.example.com", "RAIOX_SMTP_HOST": "",
        } | extra
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    apply()
    yield apply
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def scene():
    """A film with one demo-004 implant (`raiox.synth.render_scene`)."""
    from raiox.synth import demo_catalog, render_scene

    spec = next(s.spec for s in demo_catalog() if s.id == "demo-004")
    return render_scene([spec], seed=11)


@pytest.fixture
async def catalog(session):
    """demo-004 and demo-005 with two references each, embedded with the current model."""
    from raiox.catalog.service import Importer
    from raiox.catalog.sources import ImportItem
    from raiox.kit.storage import get_storage
    from raiox.synth import demo_catalog, render_reference, to_png
    from raiox.vision import get_embedder

    specs = {s.id: s.spec for s in demo_catalog()}
    items = [ImportItem(sid, "Synthetica", sid.upper(), f"{sid}/{seed}.png",
                        (lambda d=to_png(render_reference(specs[sid], seed=seed)): d), {})
             for sid in ("demo-004", "demo-005") for seed in (0, 1)]
    importer = Importer(get_storage(), get_embedder())
    await importer.import_batch(session, items)
    assert importer.report.added == 4, importer.report


from fakes.fixtures import run_worker  # noqa: E402,F401 - a procrastinate worker in this process
