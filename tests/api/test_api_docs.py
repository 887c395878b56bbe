"""GET /docs: Swagger UI served by the app itself (no CDN, no inline script), so that it works under production's
Content-Security-Policy (`script-src 'self'`) and fetches nothing from the internet."""

from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from fakes.browser import ARGS, chromium


class _Page(HTMLParser):
    """The page's scripts (src, inline text), stylesheets and icons, and the Swagger UI element's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[str | None, str]] = []
        self.links: list[dict[str, str | None]] = []
        self.ui: dict[str, str | None] | None = None
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script":
            self.scripts.append((attributes.get("src"), ""))
            self._in_script = True
        elif tag == "link":
            self.links.append(attributes)
        elif attributes.get("id") == "swagger-ui":
            self.ui = attributes

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            src, text = self.scripts[-1]
            self.scripts[-1] = (src, text + data)


async def _page(client, path: str = "/docs") -> _Page:
    response = await client.get(path)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "http" not in response.text.lower(), "the page names an absolute URL (a CDN?)"
    page = _Page()
    page.feed(response.text)
    return page


async def test_docs_loads_only_same_origin_files_and_no_inline_script(client):
    page = await _page(client)
    assert page.scripts, "no Swagger UI script"
    for src, text in page.scripts:
        assert src and not text.strip(), f"inline script (blocked by script-src 'self'): {text[:80]!r}"
        assert src.startswith("/") and not src.startswith("//"), src
        response = await client.get(src)
        assert response.status_code == 200, src
        assert "javascript" in response.headers["content-type"], (src, response.headers["content-type"])
    stylesheets = [link["href"] for link in page.links if link.get("rel") == "stylesheet"]
    assert stylesheets
    for href in (link["href"] for link in page.links):
        assert href and href.startswith("/") and not href.startswith("//"), href
        assert (await client.get(href)).status_code == 200, href
    for href in stylesheets:
        assert (await client.get(href)).headers["content-type"].startswith("text/css"), href


async def test_docs_starts_swagger_ui_on_the_apps_openapi_document(client):
    page = await _page(client)
    assert page.ui is not None and page.ui["data-openapi-url"] == "/openapi.json"
    spec = await client.get(page.ui["data-openapi-url"])
    assert spec.status_code == 200 and spec.json()["info"]["title"] == "Raiox AI"
    starter = (await client.get(page.scripts[-1][0])).text
    assert "SwaggerUIBundle(" in starter and "dataset.openapiUrl" in starter and '"#swagger-ui"' in starter
    assert not any(path.startswith(("/docs", "/redoc")) for path in spec.json()["paths"])


async def test_docs_follows_the_root_path(database_url):
    """Behind a prefix (uvicorn --root-path), the page names its files and the document under that prefix."""
    from raiox.app import create_app

    transport = httpx.ASGITransport(app=create_app(), root_path="/api")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as prefixed:
        page = await _page(prefixed, "/api/docs")  # an ASGI path includes the root path
        assert page.ui["data-openapi-url"] == "/api/openapi.json"
        assert {src for src, _ in page.scripts} == {"/api/docs-assets/swagger-ui-bundle.js",
                                                    "/api/docs-assets/raiox-docs.js"}
        for src, _ in page.scripts:
            assert (await prefixed.get(src)).status_code == 200, src
        assert (await prefixed.get("/api/openapi.json")).status_code == 200


@pytest.mark.parametrize("path", ["/redoc", "/docs-assets/", "/docs-assets/missing.js"])
async def test_no_cdn_page_and_no_listing(client, path):
    """FastAPI's ReDoc page (from a CDN) is off; the assets folder lists nothing."""
    assert (await client.get(path)).status_code == 404




@pytest.mark.browser
async def test_docs_renders_in_chromium_under_the_production_csp(database_url):
    """Headless Chromium, with nginx's Content-Security-Policy on every response: Swagger UI shows the API's
    operations, the browser reports no CSP violation and asks nothing of any other origin."""
    import asyncio
    import re
    import socket

    import uvicorn

    from raiox.app import create_app

    template = Path(__file__).resolve().parents[2] / "deploy/roles/nginx/templates/raiox-site.conf.j2"
    csp = re.search(r'Content-Security-Policy "([^"]+)"', template.read_text()).group(1)
    app = create_app()

    @app.middleware("http")
    async def _production_headers(request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = csp
        return response

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    origin = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
                                           log_config=None))  # uvicorn's own would outlive the test
    serving = asyncio.create_task(server.serve())
    from playwright.async_api import async_playwright

    try:
        while not server.started:
            assert not serving.done(), "uvicorn did not start"
            await asyncio.sleep(0.05)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium(), headless=True, args=ARGS)
            try:
                page = await browser.new_page()
                problems: list[str] = []
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(str(e)))
                elsewhere: list[str] = []

                async def _only_ours(route):
                    if route.request.url.startswith(origin + "/"):
                        await route.continue_()
                    else:
                        elsewhere.append(route.request.url)
                        await route.abort()

                await page.route("**/*", _only_ours)
                await page.goto(f"{origin}/docs")
                try:
                    await page.locator(".opblock-summary-path", has_text="/identify").first.wait_for(timeout=20_000)
                except Exception as exc:
                    raise AssertionError(f"no operations shown; console: {problems}, elsewhere: {elsewhere}, "
                                         f"page: {(await page.inner_text('body'))[:3000]}") from exc
                assert await page.locator(".information-container .title").inner_text() != ""
            finally:
                await browser.close()
    finally:
        server.should_exit = True
        await serving
    assert not elsewhere, elsewhere
    assert not problems, problems


async def test_the_admin_hosts_docs_come_from_the_app_too(database_url):
    """`raiox admin` (the panel's own host) serves the same page, not FastAPI's CDN one."""
    from raiox.review.panel import create_admin_app

    transport = httpx.ASGITransport(app=create_admin_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as http:
        page = await http.get("/docs")
        assert page.status_code == 200 and "cdn" not in page.text.lower()
        parsed = _Page()
        parsed.feed(page.text)
        assert [src for src, _text in parsed.scripts] == ["/docs-assets/swagger-ui-bundle.js",
                                                          "/docs-assets/raiox-docs.js"]
        assert (await http.get("/docs-assets/raiox-docs.js")).status_code == 200
        assert (await http.get("/redoc")).status_code == 404
