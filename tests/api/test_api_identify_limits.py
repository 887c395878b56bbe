"""POST /identify under load: the pixel cap (RAIOX_MAX_PIXELS) and the analysis slots (RAIOX_IDENTIFY_CONCURRENCY)."""

import asyncio
import uuid
import threading

import pytest


async def test_identify_refuses_an_image_over_the_configured_pixel_cap(client, auth, reference_pngs, configure):
    image = reference_pngs["demo-004"][0]
    configure(MAX_PIXELS="10000")  # the demo renders are far larger; the built-in cap is 60 MP
    response = await client.post("/identify", headers=auth, files={"image": ("big.png", image, "image/png")})
    assert response.status_code == 422, response.text
    assert "image too large" in response.json()["detail"] and "limit 10000" in response.json()["detail"]


@pytest.fixture
async def open_client(database_url, monkeypatch):
    """A client on the app with its own sessions (requests run side by side) and a real, committed token
    (BearerFirst looks it up before reading a POST /identify's body)."""
    import httpx

    from sqlalchemy import delete

    from raiox.app import create_app
    from raiox.kit.tokens import create_token
    from raiox.kit.db import session_scope
    from raiox.models import ApiToken

    name = f"limits-{uuid.uuid4().hex[:8]}"
    async with session_scope() as session:
        token = await create_token(session, name)
    async def loaded(session, model_id):  # these tests are about the analysis slots, on an empty catalog: as if
        return True, True  # it held vectors of the model (an empty one answers 503 catalog_missing: test_api_catalog)

    monkeypatch.setattr("raiox.catalog.routes.has_embeddings", loaded)
    app = create_app()  # the real token check: a request waiting for its analysis must hold no pool connection
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            yield http
    finally:
        async with session_scope() as session:  # other tests count the tokens
            await session.execute(delete(ApiToken).where(ApiToken.name == name))


def _waiting() -> float:
    from raiox.kit.metrics import REGISTRY

    return REGISTRY.get_sample_value("raiox_identify_waiting")


@pytest.mark.parametrize("slots", [1, 2])
async def test_identify_analyses_at_most_the_configured_number_of_images_at_once(
        open_client, reference_pngs, configure, monkeypatch, slots):
    """The first analysis holds on until the second request either analyses beside it or waits for a slot."""
    import raiox.vision

    configure(IDENTIFY_CONCURRENCY=str(slots))
    lock, overlap, release = threading.Lock(), {"now": 0, "most": 0}, threading.Event()

    def analyse(image, embedder, boxes=None, fit=False):
        with lock:
            overlap["now"] += 1
            overlap["most"] = max(overlap["most"], overlap["now"])
            if overlap["now"] > 1:
                release.set()
        release.wait(timeout=60)  # a bound for a broken build only: the test sets it as soon as it can tell
        with lock:
            overlap["now"] -= 1
        return []

    monkeypatch.setattr(raiox.vision, "analyze", analyse)
    image = reference_pngs["demo-004"][0]
    requests = [asyncio.create_task(open_client.post("/identify", files={"image": (f"{n}.png", image, "image/png")}))
                for n in range(2)]
    deadline = asyncio.get_running_loop().time() + 60  # a bound for a broken build only: fail, never hang
    while not release.is_set() and _waiting() < 1 and not all(r.done() for r in requests) \
            and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    release.set()
    responses = await asyncio.gather(*requests)
    assert [r.status_code for r in responses] == [200, 200] and responses[0].json()["implants"] == []
    assert overlap["most"] == slots and _waiting() == 0


async def test_a_request_that_goes_away_keeps_its_slot_until_its_analysis_ends(configure, monkeypatch):
    """Cancelling the await does not stop the decoding thread: the next image waits until that thread is done."""
    import raiox.vision
    from raiox.catalog.identify import analyse_in_slot

    configure(IDENTIFY_CONCURRENCY="1")
    entered, release, running = threading.Event(), threading.Event(), []

    def analyse(image, embedder, boxes=None, fit=False):
        running.append(len(running))
        entered.set()
        release.wait(timeout=60)  # a bound for a broken build only
        running.pop()
        return []

    monkeypatch.setattr(raiox.vision, "analyze", analyse)
    monkeypatch.setattr(raiox.vision, "read_image", lambda data, filename, **options: data)
    gone = asyncio.create_task(analyse_in_slot(b"first", "a.png", None))
    await asyncio.to_thread(entered.wait, 60)
    gone.cancel()
    entered.clear()
    nxt = asyncio.create_task(analyse_in_slot(b"second", "b.png", None))
    while not entered.is_set() and _waiting() < 1:
        await asyncio.sleep(0.01)
    assert not entered.is_set() and _waiting() == 1  # the first thread still runs: the second waits
    release.set()
    assert await nxt == [] and gone.cancelled() and running == []


async def test_a_client_that_hung_up_while_waiting_gets_no_analysis_and_frees_the_slot(configure, monkeypatch):
    import raiox.vision
    from raiox.catalog.identify import ClientGone, analyse_in_slot

    configure(IDENTIFY_CONCURRENCY="1")
    analysed = []
    monkeypatch.setattr(raiox.vision, "analyze", lambda image, embedder, boxes=None, fit=False: analysed.append(image))
    monkeypatch.setattr(raiox.vision, "read_image", lambda data, filename, **options: data)

    async def hung_up() -> bool:
        return True

    async def still_there() -> bool:
        return False

    with pytest.raises(ClientGone):
        await analyse_in_slot(b"abandoned", "a.png", None, gone=hung_up)
    assert analysed == [] and _waiting() == 0
    await asyncio.wait_for(analyse_in_slot(b"next", "b.png", None, gone=still_there), 10)  # the slot was given back
    assert analysed == [b"next"]


async def test_past_the_waiting_bound_a_request_is_answered_busy_at_once(open_client, reference_pngs, configure,
                                                                         monkeypatch):
    import raiox.vision

    configure(IDENTIFY_CONCURRENCY="1", IDENTIFY_MAX_WAITING="1")
    entered, release = threading.Event(), threading.Event()

    def analyse(image, embedder, boxes=None, fit=False):
        entered.set()
        release.wait(timeout=60)  # a bound for a broken build only
        return []

    monkeypatch.setattr(raiox.vision, "analyze", analyse)
    image = reference_pngs["demo-004"][0]

    def post(n: int):
        return asyncio.create_task(open_client.post("/identify", files={"image": (f"{n}.png", image, "image/png")}))

    first = post(1)
    await asyncio.to_thread(entered.wait, 60)  # analysing: the slot is taken
    second = post(2)
    deadline = asyncio.get_running_loop().time() + 60
    while _waiting() < 1 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    from raiox.kit.metrics import IDENTIFICATIONS

    busy_before, error_before = (IDENTIFICATIONS.labels(o)._value.get() for o in ("busy", "error"))
    third = await open_client.post("/identify", files={"image": ("3.png", image, "image/png")})
    assert third.status_code == 503 and third.json()["error"] == "busy", third.text  # answered while the others run
    assert IDENTIFICATIONS.labels("busy")._value.get() == busy_before + 1  # shed load, not a fault of ours
    assert IDENTIFICATIONS.labels("error")._value.get() == error_before
    release.set()
    assert [(await r).status_code for r in (first, second)] == [200, 200] and _waiting() == 0


async def test_a_body_over_the_limit_is_refused_before_it_is_read(open_client):
    """A declared length over the limit is answered at once, and a chunked body (no length) as soon as it passes
    it: neither is spooled to disk first."""
    from raiox.catalog.routes import IDENTIFY_MAX_BODY

    received = []

    async def chunks():  # a well-formed start of an image part, then more image than the limit
        yield (b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
               b"Content-Type: image/png\r\n\r\n")
        for _ in range(IDENTIFY_MAX_BODY // 2**20 + 64):
            received.append(1)
            yield b"\0" * 2**20

    from raiox.kit.metrics import IDENTIFICATIONS

    rejected = IDENTIFICATIONS.labels("rejected")._value.get
    before = rejected()
    headers = {"Content-Type": "multipart/form-data; boundary=x"}
    declared = await open_client.post("/identify", content=b"x" * 10, headers=headers | {
        "Content-Length": str(IDENTIFY_MAX_BODY + 1)})
    assert declared.status_code == 413 and declared.json()["error"] == "too_large", declared.text
    assert rejected() == before + 1  # counted like the route's own refusals
    chunked = await open_client.post("/identify", content=chunks(), headers=headers)
    assert chunked.status_code == 413 and chunked.json()["error"] == "too_large", chunked.text
    assert rejected() == before + 2
    assert len(received) <= IDENTIFY_MAX_BODY // 2**20 + 2  # stopped at the limit, the rest never asked for
