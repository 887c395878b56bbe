"""The nginx site template: `nginx -t` with Debian's nginx, then a real nginx in front of a stand-in
upstream: TLS redirect, security headers, body size caps per location, TLS 1.2 ciphers, login and
webhook rate limits, /metrics closed, client address not spoofable, request ids passed, logged and
answered (once, also on nginx's own answers). The production values are held to the app's own limits
(webhook and upload caps, uvicorn's keep-alive, the panel's CSP)."""

import contextlib
import http.server
import inspect
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time

import httpx
import pytest

from .rendering import context, render, write
from .tooling import require_tool


def _ports(n: int) -> list[int]:
    """N distinct free ports: every probe socket stays open until all are chosen (closed one by one, the kernel may
    hand the same port out twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


class _Upstream(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({"path": self.path, "xff": self.headers.get("X-Forwarded-For"),
                           "proto": self.headers.get("X-Forwarded-Proto"),
                           "request_id": self.headers.get("X-Request-ID")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.headers.get("X-Request-ID"):  # as the app does (raiox.kit.requestid): the id it was sent, back
            self.send_header("X-Request-ID", self.headers["X-Request-ID"])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


MAIN = """
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user}
events {{ worker_connections 128; }}
http {{
    include /etc/nginx/mime.types;
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/sites/raiox.conf;
}}
"""


def _prepare(prefix, **overrides) -> dict:
    nginx = require_tool("nginx", "Debian package nginx")
    openssl = require_tool("openssl", "Debian package openssl")
    (prefix / "tmp").mkdir(parents=True)
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-keyout", str(prefix / "key.pem"), "-out", str(prefix / "cert.pem")],
                   check=True, capture_output=True)
    http_port, https_port, upstream_port = _ports(3)
    conf = render("nginx", "raiox-site.conf.j2", {
        "nginx_server_name": "localhost",
        "nginx_cert_path": str(prefix / "cert.pem"),
        "nginx_cert_key_path": str(prefix / "key.pem"),
        "nginx_acme_root": str(prefix / "acme"),
        "nginx_http_port": http_port,
        "nginx_https_port": https_port,
        "nginx_listen_ipv6": _ipv6(),
        "nginx_upstream_port": upstream_port,
        "nginx_client_max_body_size": "1m",
        "nginx_webhook_max_body_size": "2m",
        "nginx_identify_max_body_size": "3m",
        "nginx_upload_max_body_size": "4m",
        "nginx_tls_enabled": True,
        "nginx_access_log": str(prefix / "raiox-access.log"),
        "nginx_error_log": str(prefix / "error.log"),
        **overrides,
    })
    write(prefix / "sites" / "raiox.conf", conf)
    user = "user root;" if os.geteuid() == 0 else ""
    write(prefix / "nginx.conf", MAIN.format(prefix=prefix, user=user))
    base = [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]
    return {"conf": conf, "base": base, "prefix": prefix, "http": http_port, "https": https_port,
            "upstream": upstream_port}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return _prepare(tmp_path_factory.mktemp("nginx"))


@pytest.mark.parametrize(("host", "overrides", "closed"), [
    ("core-api-prod", {"nginx_expose_admin": False}, "location /admin {\n        return 404;"),
    ("admin-panel", {"nginx_expose_api": False, "nginx_upstream_port": 8001},
     "location /webhooks/ {\n        return 404;"),
    ("first run, before the certificate", {"nginx_tls_enabled": False}, None),
])
def test_every_host_kind_passes_nginx_t(tmp_path, host, overrides, closed):
    site = _prepare(tmp_path / "p", **overrides)
    result = subprocess.run([*site["base"], "-t"], capture_output=True, text=True)
    assert result.returncode == 0, host + "\n" + result.stderr
    if closed:
        assert closed in site["conf"], host
    if not overrides.get("nginx_tls_enabled", True):
        assert "ssl_certificate" not in site["conf"] and "acme-challenge" in site["conf"]


def test_nginx_accepts_the_rendered_config(site):
    result = subprocess.run([*site["base"], "-t"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr and "test is successful" in result.stderr


def test_template_has_the_required_directives(site):
    conf = site["conf"]
    assert "client_max_body_size 1m;" in conf
    assert "limit_req zone=raiox_webhook" in conf and "limit_req zone=raiox_login" in conf
    for header in ("Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options",
                   "Content-Security-Policy", "Referrer-Policy"):
        assert header in conf


@contextlib.contextmanager
def _serving(site, upstream=True):
    """nginx of SITE running, in front of the stand-in app (none with upstream=False: the app down); an https
    client to it."""
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", site["upstream"]), _Upstream) if upstream else None
    if upstream:
        threading.Thread(target=upstream.serve_forever, daemon=True).start()
    proc = subprocess.Popen([*site["base"], "-g", "daemon off;"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", site["https"]), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"nginx exited: {proc.stderr.read()}")
                time.sleep(0.1)
        with httpx.Client(base_url=f"https://127.0.0.1:{site['https']}", verify=False, timeout=10) as client:
            yield client
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if upstream:
            upstream.shutdown()
            upstream.server_close()


@pytest.fixture(scope="module")
def running(site):
    with _serving(site) as client:
        yield client


def test_http_redirects_to_https(site, running):
    response = httpx.get(f"http://127.0.0.1:{site['http']}/cases", follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == f"https://127.0.0.1:{site['https']}/cases"


def test_proxy_sets_headers_and_ignores_spoofed_addresses(running):
    response = running.get("/cases", headers={"X-Forwarded-For": "6.6.6.6"})
    assert response.status_code == 200
    answer = response.json()
    assert re.fullmatch(r"[0-9a-f]{32}", answer.pop("request_id"))  # nginx's $request_id: the client sent none
    assert answer == {"path": "/cases", "xff": "127.0.0.1", "proto": "https"}
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "server" not in response.headers or "/" not in response.headers["server"]


def test_body_size_cap_and_metrics_closed(running):
    assert running.post("/cases", content=b"x" * (2 * 1024 * 1024)).status_code == 413
    assert running.post("/cases", content=b"x" * 1024).status_code == 200
    assert running.get("/metrics").status_code == 403
    assert running.get("/readyz").status_code == 403  # names paths and settings when failing: not for the world
    assert running.get("/healthz").status_code == 200


def test_body_caps_follow_the_location(running):
    mib = 1024 * 1024
    # (path, largest body that passes, smallest refused) for the test caps 1m / 2m / 3m / 4m
    for path, ok, too_big in [("/cases/x/note", 1, 1.5), ("/webhooks/jotform?token=t", 2, 2.5),
                              ("/identify", 3, 3.5), ("/admin/catalog/straumann-bl/images", 4, 4.5)]:
        assert running.post(path, content=b"x" * int(ok * mib)).status_code == 200, path
        assert running.post(path, content=b"x" * int(too_big * mib)).status_code == 413, path
    # a look-alike path does not get the upload cap
    assert running.post("/admin/catalog/a/b/images", content=b"x" * int(1.5 * mib)).status_code == 413


def _handshake(port: int, ciphers: str) -> str | None:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(ciphers)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
            return tls.cipher()[0]
    except ssl.SSLError:
        return None


def test_tls12_offers_forward_secret_aead_ciphers_only(site, running):
    assert _handshake(site["https"], "ECDHE-RSA-AES128-GCM-SHA256") == "ECDHE-RSA-AES128-GCM-SHA256"
    for weak in ("AES128-SHA", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384"):
        assert _handshake(site["https"], weak) is None, weak


def _production() -> dict:
    return context("nginx", {})


def _mib(size: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([km]?)", size.lower()).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024 * 1024}[unit]


def test_production_body_caps_match_the_app():
    from raiox.intake.formdata import MAX_BODY
    from raiox.kit.settings import Settings
    from raiox.review.views_catalog import MAX_UPLOAD, MAX_UPLOAD_BODY, MAX_UPLOAD_TOTAL

    values = _production()
    conf = render("nginx", "raiox-site.conf.j2", {"nginx_tls_enabled": True})
    assert _mib(values["nginx_webhook_max_body_size"]) == MAX_BODY, "webhook: the app's own cap, no more"
    image = Settings.model_fields["download_max_bytes"].default
    assert image < _mib(values["nginx_identify_max_body_size"]) <= image + 2 * 1024 * 1024
    # the catalog upload: the largest the page accepts (MAX_UPLOAD_TOTAL bytes of images and their framing), so an
    # upload the page would take is never cut by nginx's HTML 413; over it the page refuses it too
    assert MAX_UPLOAD <= MAX_UPLOAD_TOTAL < MAX_UPLOAD_BODY <= MAX_UPLOAD_TOTAL + 2 * 1024 * 1024
    assert _mib(values["nginx_upload_max_body_size"]) == MAX_UPLOAD_BODY, "catalog upload: the page's own cap"
    upload = re.search(r"location ~ \^/admin/catalog/\[\^/\]\+/images\$ \{\s*client_max_body_size (\S+);", conf)
    assert upload and _mib(upload.group(1)) == MAX_UPLOAD_BODY, "the rendered upload location carries it"
    # everything else is small, yet over Starlette's 1 MB form-field limit (the panel answers that itself)
    assert 1024 * 1024 < _mib(values["nginx_client_max_body_size"]) <= 4 * 1024 * 1024
    server_level = re.findall(r"^    client_max_body_size (\S+);", conf, flags=re.M)
    assert server_level == [values["nginx_client_max_body_size"]], "the large caps are per location only"


def test_upstream_keepalive_ends_before_uvicorns():
    import uvicorn

    from raiox import cli

    app_timeout = inspect.signature(uvicorn.Config).parameters["timeout_keep_alive"].default
    assert "timeout_keep_alive" not in inspect.getsource(cli.serve), "serve sets its own keep-alive: compare with it"
    conf = render("nginx", "raiox-site.conf.j2", {"nginx_tls_enabled": True})
    upstream = re.search(r"upstream raiox_app \{(.*?)\}", conf, flags=re.S).group(1)
    timeout = re.search(r"keepalive_timeout (\d+)s;", upstream)
    assert timeout and int(timeout.group(1)) < app_timeout, upstream


def _csp(policy: str) -> dict[str, set[str]]:
    return {d.split()[0]: set(d.split()[1:]) for d in (p.strip() for p in policy.split(";")) if d}


def test_csp_is_no_weaker_than_the_panels():
    from raiox.review.panel import CSP

    conf = render("nginx", "raiox-site.conf.j2", {"nginx_tls_enabled": True})
    ours = _csp(re.search(r'Content-Security-Policy "([^"]+)"', conf).group(1))
    panel = _csp(CSP)
    assert "'unsafe-inline'" not in ours["script-src"] and "'unsafe-eval'" not in ours["script-src"]
    for directive in ("script-src", "base-uri", "form-action", "frame-ancestors"):
        assert ours[directive] <= panel[directive], directive


def test_login_posts_are_rate_limited_but_page_views_are_not(running):
    for _ in range(8):
        assert running.get("/admin/login").status_code == 200
    codes = [running.post("/admin/login", data={"email": "a@b.c", "password": "x"}).status_code for _ in range(8)]
    # rate 10r/m with burst 5: the first 6 pass at once, then 429
    assert codes[:6] == [200] * 6 and 429 in codes[6:], codes


def test_webhook_is_rate_limited(running):
    codes = [running.post("/webhooks/jotform?token=t", data={"a": "b"}).status_code for _ in range(80)]
    assert codes.count(200) >= 50 and 429 in codes, codes


def test_the_access_log_keeps_no_webhook_token_and_no_report_link(site, running):
    """The webhook's ?token= is its only credential and a report link opens a patient's report: neither is logged."""
    running.post("/webhooks/jotform?token=webhook-s3cret-value", content=b"x")
    running.get("/reports/InR0b2tlbiI.report-t0ken-value")
    running.get("/cases?apiKey=k3y-value", headers={"Referer": "https://example.org/reports/InR0b2tlbiI.ref-t0ken"})
    log = site["prefix"] / "raiox-access.log"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and log.read_text().count("\n") < 3:
        time.sleep(0.1)
    text = log.read_text()
    assert '"POST /webhooks/jotform HTTP/1.1" ' in text and '"GET /reports/- HTTP/1.1" ' in text
    for secret in ("webhook-s3cret-value", "report-t0ken-value", "k3y-value", "ref-t0ken"):
        assert secret not in text, secret


def test_the_error_log_quotes_no_webhook_token_and_no_report_link(site, running):
    """An error line quotes the whole request line (a body over the cap here; a 502 while the app restarts): the
    locations whose request line holds a secret log only critical lines, the others keep theirs."""
    mib = 1024 * 1024
    assert running.post("/webhooks/jotform?token=webhook-err-s3cret", content=b"x" * 3 * mib).status_code == 413
    assert running.post("/reports/InR0b2tlbiI.report-err-t0ken", content=b"x" * 2 * mib).status_code == 413
    assert running.post("/cases/x/note?probe=kept-in-error-log", content=b"x" * 2 * mib).status_code == 413
    log = site["prefix"] / "error.log"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "kept-in-error-log" not in log.read_text():
        time.sleep(0.1)
    text = log.read_text()
    assert "kept-in-error-log" in text  # the other locations' errors are still logged
    assert "webhook-err-s3cret" not in text and "report-err-t0ken" not in text


def _logged(site, marker: str) -> str:
    """The access log line that carries MARKER (a request id), once nginx has written it."""
    log = site["prefix"] / "raiox-access.log"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [line for line in log.read_text().splitlines() if marker in line]
        if lines:
            assert len(lines) == 1, lines
            return lines[0]
        time.sleep(0.1)
    raise AssertionError(f"no access log line with {marker}")


def test_the_request_id_reaches_the_app_and_the_access_log(site, running):
    """nginx sends the app an X-Request-ID, the one the app then logs and answers: the client's own when the app
    would keep it (raiox.kit.requestid), else nginx's $request_id; the access log line ends with the same id, so it
    can be matched with the app's lines of that request. The webhook and report lines stay redacted."""
    from raiox.kit.requestid import choose_request_id

    given = ["client-id.42_A", "a" * 128, "a" * 129, "has blank", "semi;colon", "ünï", ""]
    seen = set()
    for value in given:
        headers = {"X-Request-ID": value.encode("utf-8")} if value else {}
        sent = running.get("/cases", headers=headers).json()["request_id"]
        kept = choose_request_id([(b"x-request-id", value.encode("latin-1", "replace"))]) == value
        if kept:
            assert sent == value
        else:  # nginx's own: a fresh one per request
            assert re.fullmatch(r"[0-9a-f]{32}", sent) and sent not in seen, (value, sent)
        seen.add(sent)
        line = _logged(site, sent)
        assert line.startswith("127.0.0.1 - ") and '"GET /cases HTTP/1.1" 200 ' in line
        assert line.endswith(f'"{sent}"'), line
    assert sum(1 for value in given if value in seen) == 2  # the two sane ones were kept

    running.post("/webhooks/jotform?token=webhook-rid-s3cret", content=b"x", headers={"X-Request-ID": "hook-rid-1"})
    running.get("/reports/InR0b2tlbiI.report-rid-t0ken", headers={"X-Request-ID": "report-rid-1"})
    hook, report = _logged(site, "hook-rid-1"), _logged(site, "report-rid-1")
    assert '"POST /webhooks/jotform HTTP/1.1" ' in hook and "webhook-rid-s3cret" not in hook
    assert '"GET /reports/- HTTP/1.1" ' in report and "report-rid-t0ken" not in report
    # what the access log recorded before is all still there, in its place: the id is one more field, last
    assert re.fullmatch(r'127\.0\.0\.1 - - \[[^]]+\] "POST /webhooks/jotform HTTP/1\.1" \d{3} \d+ "[^"]*" "[^"]*" '
                        r'"hook-rid-1"', hook), hook


def _one_id(response) -> str:
    ids = response.headers.get_list("x-request-id")
    assert len(ids) == 1, (response.status_code, ids)
    return ids[0]


def test_every_answer_carries_the_request_id_once(site, running):
    """The answers nginx makes itself (413, 403, 429, the redirect) carry X-Request-ID like the app's: the id nginx
    logs (and would have sent the app); an answer of the app, which answers the id it was sent, has it once."""
    mib = 1024 * 1024
    app = running.get("/cases", headers={"X-Request-ID": "app-rid-1"})
    assert app.status_code == 200 and _one_id(app) == "app-rid-1" == app.json()["request_id"]
    fresh = running.get("/cases")
    assert _one_id(fresh) == fresh.json()["request_id"]
    answers = {"big-rid-1": running.post("/cases", content=b"x" * 2 * mib, headers={"X-Request-ID": "big-rid-1"}),
               "metrics-rid-1": running.get("/metrics", headers={"X-Request-ID": "metrics-rid-1"}),
               "redirect-rid-1": httpx.get(f"http://127.0.0.1:{site['http']}/cases",
                                           headers={"X-Request-ID": "redirect-rid-1"})}
    for n in range(12):
        limited = running.post("/admin/login", data={"email": "a@b.c"}, headers={"X-Request-ID": f"login-rid-{n}"})
        if limited.status_code == 429:
            answers[f"login-rid-{n}"] = limited
            break
    assert [answer.status_code for answer in answers.values()] == [413, 403, 301, 429]
    for rid, answer in answers.items():
        assert _one_id(answer) == rid
        assert f" {answer.status_code} " in _logged(site, rid)
    # no id from the client (or one the app would not keep): nginx's own, the one it logs
    big = running.post("/cases", content=b"x" * 2 * mib, headers={"X-Request-ID": "has blank"})
    assert big.status_code == 413 and re.fullmatch(r"[0-9a-f]{32}", _one_id(big))
    assert _logged(site, _one_id(big)).endswith(f'"{_one_id(big)}"')


def test_a_bad_gateway_while_the_app_is_down_carries_the_request_id(tmp_path):
    site = _prepare(tmp_path / "down")
    with _serving(site, upstream=False) as client:
        down = client.get("/cases", headers={"X-Request-ID": "down-rid-1"})
        assert down.status_code == 502 and _one_id(down) == "down-rid-1"
        assert " 502 " in _logged(site, "down-rid-1")
        anonymous = client.get("/cases")
        assert anonymous.status_code == 502 and re.fullmatch(r"[0-9a-f]{32}", _one_id(anonymous))
