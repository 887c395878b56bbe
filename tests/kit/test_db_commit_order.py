"""The request's database session commits before its answer leaves: a browser following the panel's redirect, or an
API client reading what it just wrote, must never meet the state from before the write (FastAPI runs a yield
dependency's exit after sending unless the dependency is function-scoped: raiox.kit.deps.DbSession)."""

import httpx
from sqlalchemy.ext.asyncio import AsyncSession


async def test_the_session_commits_before_the_answer_is_sent(database_url, monkeypatch):
    from raiox.app import create_app

    events: list[str] = []
    real_commit = AsyncSession.commit

    async def commit(self):
        await real_commit(self)
        events.append("commit")

    monkeypatch.setattr(AsyncSession, "commit", commit)
    app = create_app()

    async def recording(scope, receive, send):
        async def sending(message):
            if message["type"] == "http.response.start":
                events.append(f"answer {message['status']}")
            await send(message)

        await app(scope, receive, sending)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=recording), base_url="http://testserver") as http:
        response = await http.get("/readyz")
    assert response.status_code == 200, response.text
    assert events == ["commit", "answer 200"]


def test_every_route_takes_the_function_scoped_session():
    """No route or dependency asks for the request-scoped `Depends(get_db_session)` (it commits after the answer)."""
    from pathlib import Path

    import raiox

    root = Path(raiox.__file__).parent
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py") if "Depends(get_db_session)" in p.read_text()]
    assert offenders == []
