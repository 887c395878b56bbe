"""The API's interactive documentation (Swagger UI at ``/docs``), served by the app itself.

FastAPI's own ``/docs`` page loads Swagger UI from a CDN and starts it with an inline ``<script>``; production's
Content-Security-Policy (``script-src 'self'``, nginx role) blocks both, and nothing may be fetched from the internet
at run time. Here the Swagger UI files come from the ``fastapi-offline`` package (Swagger UI 5, which reads the OpenAPI
3.1 document FastAPI writes; ``swagger-ui-bundle``'s Swagger UI 4 cannot), mounted at ``/docs-assets``, and the page
starts them with a file of ours (``static/raiox-docs.js``) that reads the OpenAPI document's URL from the page: a page
without any inline script, everything from the app's own origin (under its ``root_path``, if any).
"""

from html import escape

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = "/docs-assets"
INIT_SCRIPT = "raiox-docs.js"

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" type="text/css" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/{init_script}"></script>
</body>
</html>
"""


def install_api_docs(app: FastAPI, path: str = "/docs") -> None:
    """Swagger UI at ``path`` for ``app``'s OpenAPI document (create the app with ``docs_url=None``)."""
    if app.openapi_url is None:
        return
    # fastapi-offline's files (swagger-ui-bundle.js, swagger-ui.css, favicon.png), then ours (the starter script)
    assets = StaticFiles(packages=[("fastapi_offline", "static"), ("raiox.kit", "static")])
    app.mount(ASSETS, assets, name="docs-assets")

    @app.get(path, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return HTMLResponse(PAGE.format(
            title=escape(f"{app.title} - Swagger UI"), assets=escape(root + ASSETS), init_script=INIT_SCRIPT,
            openapi_url=escape(root + app.openapi_url),
        ))
