"""A real HTTP server on 127.0.0.1 standing in for Jotform's REST API and its upload host.

Reusable by every test that talks to Jotform (intake, processing, delivery):

    with FakeJotform(api_key="k") as jf:           # jf.url == "http://127.0.0.1:<port>"
        jf.add_submission(form_id, answers=..., files={"radiografias": [("raio x 1.png", png)]})
        jf.fail("/submission/", 503, times=2)        # scripted failures (prefix match on the path)
        jf.delay("/uploads/", 3.0)                    # slow responses
        jf.require_login = True                       # uploads without the key -> HTML login page
        jf.redirect("/uploads/a.png", "http://10.0.0.1/x.png")

API (both `/v1/<path>` and `/<path>`), authenticated by the `APIKEY`/`apiKey` header or `?apiKey=`:
- GET  /submission/{id}                -> envelope with the submission (unknown id: 401, like Jotform)
- POST /submission/{id}                -> edits `submission[<qid>]` / `submission[<qid>][<sub>]` (recorded in `edits`)
- GET  /form/{id}/submissions          -> list; `filter={"created_at:gt": "..."}`, `offset`, `limit`
- GET  /form/{id}/questions            -> questions keyed by qid
Envelope: {"responseCode", "message", "content", "duration", "limit-left"} (+ "resultSet" on lists);
errors use the same envelope with the error code in both HTTP status and `responseCode`.
Uploads: GET /uploads/<user>/<formID>/<submissionID>/<percent-encoded file name>.
Every request is recorded in `requests` (method, path, query, headers) for assertions.
"""

import json
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

FORM_ID = "243231271343446"  # 15 digits, like a real form id
LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Jotform - Login</title></head><body>Please log in</body></html>"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes = b""


@dataclass
class Failure:
    prefix: str
    status: int
    times: int
    body: bytes | None = None


@dataclass
class FakeState:
    api_key: str
    username: str = "raioxclinic"
    submissions: dict[str, dict] = field(default_factory=dict)
    questions: dict[str, dict] = field(default_factory=dict)  # form id -> {qid: {...}}
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # url path -> (bytes, content type)
    redirects: dict[str, str] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    delays: dict[str, float] = field(default_factory=dict)
    # id -> [seconds, times]: edit applied, slow answer
    delays_after_edit: dict[str, list] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    edits: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    require_login: bool = False
    limit_left: int = 9999
    # form id -> API copies its submissions list returns besides the form's own (another form's, malformed ones)
    also_listed: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))


class FakeJotform:
    def __init__(self, api_key: str = "test-jotform-key", host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = FakeState(api_key=api_key)
        self.lock = threading.Lock()
        self._seq = 6084250982513018000
        handler = type("Handler", (_Handler,), {"fake": self})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        # shutdown() waits for the serving loop's next poll: 0.5 s by default, at every test's teardown
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True,
                                       name="fake-jotform")

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeJotform":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "FakeJotform":
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    # -- scripting -------------------------------------------------------------------------------
    def __getattr__(self, name):  # state attributes (requests, edits, require_login...) read through
        return getattr(self.__dict__["state"], name)

    def __setattr__(self, name, value):
        if "state" in self.__dict__ and hasattr(self.__dict__["state"], name):
            setattr(self.state, name, value)
        else:
            super().__setattr__(name, value)

    def fail(self, prefix: str, status: int, times: int = 1, body: bytes | None = None) -> None:
        """The next TIMES requests whose path starts with PREFIX get STATUS (envelope or BODY)."""
        with self.lock:
            self.state.failures.append(Failure(prefix, status, times, body))

    def delay(self, prefix: str, seconds: float) -> None:
        self.state.delays[prefix] = seconds

    def delay_after_edit(self, submission_id: str, seconds: float, times: int = 1) -> None:
        """Apply the next TIMES edits of SUBMISSION_ID at once, but answer only after SECONDS (lost responses)."""
        self.state.delays_after_edit[submission_id] = [seconds, times]

    def redirect(self, path: str, location: str) -> None:
        self.state.redirects[path] = location

    def add_file(self, path: str, data: bytes, content_type: str = "image/png") -> str:
        self.state.files[path] = (data, content_type)
        return self.url + path

    def next_submission_id(self) -> str:
        self._seq += 1
        return str(self._seq)

    def upload_url(self, form_id: str, submission_id: str, filename: str) -> str:
        return f"{self.url}/uploads/{self.state.username}/{form_id}/{submission_id}/{quote(filename)}"

    def add_submission(
        self,
        form_id: str,
        *,
        submission_id: str | None = None,
        name: tuple[str, str] = ("Ana", "Souza"),
        email: str = "ana@example.com",
        phone: str = "(11) 98765-4321",
        notes: str = "",
        files: dict[str, list[tuple[str, bytes]]] | None = None,
        created_at: datetime | None = None,
        tooth: str | None = None,
    ) -> dict:
        """Store a submission (API copy) and its uploaded files; returns the API `content` dict. TOOTH: the answer
        of a "Dente / região do implante" question (named `denteRegiao`), which the form has only when given."""
        sid = submission_id or self.next_submission_id()
        answers = {
            "3": {"name": "nomeDentista", "order": "1", "text": "Nome", "type": "control_fullname",
                  "answer": {"first": name[0], "last": name[1]}},
            "4": {"name": "email", "order": "2", "text": "E-mail", "type": "control_email", "answer": email},
            "5": {"name": "telefone", "order": "3", "text": "Telefone", "type": "control_phone",
                  "answer": {"full": phone}},
            "7": {"name": "observacoes", "order": "5", "text": "Observações", "type": "control_textarea",
                  "answer": notes},
        }
        if tooth is not None:
            answers["8"] = {"name": "denteRegiao", "order": "4", "text": "Dente / região do implante",
                            "type": "control_textbox", "answer": tooth}
        for index, (question, items) in enumerate((files or {}).items()):
            urls = []
            for filename, data in items:
                url = self.upload_url(form_id, sid, filename)
                self.add_file(urlsplit(url).path, data, _content_type(filename))
                urls.append(url)
            answers[str(10 + index)] = {"name": question, "order": str(6 + index), "text": "Radiografias",
                                        "type": "control_fileupload", "answer": urls}
        created = (created_at or datetime.now()).strftime("%Y-%m-%d %H:%M:%S")
        content = {"id": sid, "form_id": form_id, "ip": "203.0.113.7", "created_at": created, "status": "ACTIVE",
                   "new": "1", "flag": "0", "notes": "", "updated_at": None, "answers": answers}
        self.state.submissions[sid] = content
        return content

    def webhook_fields(self, submission_id: str, webhook_url: str = "") -> dict[str, str]:
        """The top-level fields Jotform would POST to the webhook for a stored submission."""
        return webhook_fields(self.state.submissions[submission_id], webhook_url=webhook_url,
                              username=self.state.username)


def _content_type(filename: str) -> str:
    ext = filename.rsplit(".", 1)[-1].lower()
    return {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "dcm": "application/dicom",
            "webp": "image/webp", "tif": "image/tiff", "tiff": "image/tiff"}.get(ext, "application/octet-stream")


def raw_request(content: dict) -> dict:
    """`rawRequest` (as a dict) for an API-shaped submission, in the shape of the real captures."""
    raw: dict = {"slug": f"submit/{content['form_id']}", "jsExecutionTracker": "build-date-1735599791882",
                 "submitSource": "form", "submitDate": str(int(time.time() * 1000)), "buildDate": "1735599791882",
                 "uploadServerUrl": "https://upload.jotform.com/upload", "eventObserver": "1",
                 "event_id": f"1735599791882_{content['form_id']}_ZWbBbs3", "timeToSubmit": "31",
                 "validatedNewRequiredFieldIDs": "{\"new\":1}", "path": f"/submit/{content['form_id']}"}
    temp: dict = {}
    for qid, q in content["answers"].items():
        key = f"q{qid}_{q['name']}"
        if q["type"] == "control_fileupload":
            raw[q["name"]] = list(q["answer"])
            temp[key] = [f"{u.rsplit('/', 1)[-1]}#jotformfs-5f2a1b#a1b2c3d4-e5f6" for u in q["answer"]]
        else:
            raw[key] = q["answer"]
    if temp:
        raw["temp_upload"] = temp
        raw["file_server"] = "jotformfs-5f2a1b#a1b2c3d4-e5f6"
    return raw


def webhook_fields(content: dict, *, webhook_url: str = "", username: str = "raioxclinic",
                   raw: dict | None = None) -> dict[str, str]:
    """Top-level webhook fields in the order of a 2024-2025 capture (most of them empty strings)."""
    raw = raw if raw is not None else raw_request(content)
    pretty = ", ".join(f"{q['text']}:{q['answer']}" for q in content["answers"].values() if q["answer"])
    fields = {"action": "", "webhookURL": webhook_url, "username": username, "formID": content["form_id"],
              "type": "WEB", "customParams": "", "product": "", "formTitle": "Identificação de Implantes",
              "customTitle": "", "submissionID": content["id"], "event": "", "documentID": "", "teamID": "",
              "subject": "", "isSilent": "", "customBody": "", "rawRequest": json.dumps(raw).replace("/", "\\/"),
              "fromTable": "", "appID": "", "pretty": pretty, "unread": "", "parent": "", "ip": "203.0.113.7"}
    return fields


def multipart_body(fields: dict[str, str], boundary: str = "------------------------d74496d66958873e") -> bytes:
    """A curl-style multipart/form-data body of text fields only, as Jotform sends it."""
    out = []
    for key, value in fields.items():
        out.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\n{value}\r\n")
    out.append(f"--{boundary}--\r\n")
    return "".join(out).encode()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeJotform
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args) -> None:  # quiet
        pass

    # -- plumbing -------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    def _envelope(self, status: int, content, message: str = "success", **extra) -> None:
        body = {"responseCode": status, "message": message, "content": content, "duration": "3ms",
                "limit-left": self.fake.state.limit_left, **extra}
        if status >= 400:
            body["info"] = "https://api.jotform.com/docs"
        self._send(status, json.dumps(body).encode())

    def _authorised(self, query: dict) -> bool:
        key = self.headers.get("APIKEY") or (query.get("apiKey") or [None])[0]
        return key == self.fake.state.api_key

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        state = self.fake.state
        with self.fake.lock:
            state.requests.append(Recorded(self.command, path, query, dict(self.headers), body))
            failure = next((f for f in state.failures if path.startswith(f.prefix) and f.times > 0), None)
            if failure:
                failure.times -= 1
        for prefix, seconds in list(state.delays.items()):
            if path.startswith(prefix):
                time.sleep(seconds)
        if failure:
            if failure.body is not None:
                return self._send(failure.status, failure.body, "text/html")
            return self._envelope(failure.status, [], "Service is unavailable, rate limits etc exceeded!")
        if path in state.redirects:
            return self._send(302, b"", headers={"Location": state.redirects[path]})
        if path.startswith("/uploads/"):
            return self._upload(path, query)
        api_path = path[3:] if path.startswith("/v1/") else path
        if not self._authorised(query):
            return self._envelope(401, [], "You're not authorized to use (/submission-id)")
        self._api(api_path, query, body)

    def _upload(self, path: str, query: dict) -> None:
        state = self.fake.state
        if state.require_login and not self._authorised(query):
            return self._send(200, LOGIN_PAGE, "text/html; charset=utf-8")
        if path not in state.files:
            return self._send(404, b"<html><body>File not found</body></html>", "text/html")
        data, content_type = state.files[path]
        self._send(200, data, content_type)

    def _api(self, path: str, query: dict, body: bytes) -> None:
        state = self.fake.state
        if m := re.fullmatch(r"/submission/(\d+)", path):
            content = state.submissions.get(m.group(1))
            if content is None:
                return self._envelope(401, [], "You're not authorized to use (/submission-id)")
            if self.command == "POST":
                return self._edit(content, body)
            return self._envelope(200, content)
        if m := re.fullmatch(r"/form/(\d+)/submissions", path):
            return self._list(m.group(1), query)
        if m := re.fullmatch(r"/form/(\d+)/questions", path):
            return self._envelope(200, state.questions.get(m.group(1), {}))
        self._envelope(404, [], f"Requested URL ({path}) is not available!")

    def _list(self, form_id: str, query: dict) -> None:
        items = [s for s in self.fake.state.submissions.values() if s["form_id"] == form_id]
        items += self.fake.state.also_listed.get(form_id, [])
        flt = json.loads((query.get("filter") or ["{}"])[0])
        if "created_at:gt" in flt:
            items = [s for s in items if s["created_at"] > flt["created_at:gt"]]
        items.sort(key=lambda s: s["created_at"], reverse=True)
        offset, limit = int((query.get("offset") or [0])[0]), int((query.get("limit") or [20])[0])
        page = items[offset:offset + limit]
        result_set = {"offset": offset, "limit": limit, "orderby": "created_at", "filter": flt, "count": len(page)}
        self._envelope(200, page, resultSet=result_set)

    def _edit(self, content: dict, body: bytes) -> None:
        form = parse_qs(body.decode(), keep_blank_values=True)
        edit = {key: values[-1] for key, values in form.items()}
        self.fake.state.edits[content["id"]].append(edit)
        for key, value in edit.items():
            if m := re.fullmatch(r"submission\[(\w+)\](?:\[(\w+)\])?", key):
                qid, sub = m.groups()
                question = content["answers"].setdefault(qid, {"name": f"q{qid}", "type": "control_textbox",
                                                                "text": qid, "answer": ""})
                if sub:
                    if not isinstance(question.get("answer"), dict):
                        question["answer"] = {}
                    question["answer"][sub] = value
                else:
                    question["answer"] = value
        with self.fake.lock:
            slow = self.fake.state.delays_after_edit.get(content["id"])
            seconds = slow[0] if slow and slow[1] > 0 else 0.0
            if seconds:
                slow[1] -= 1
        time.sleep(seconds)
        self._envelope(200, {"submissionID": content["id"], "URL": f"{self.fake.url}/submission/{content['id']}"})

    do_GET = do_POST = do_HEAD = _handle


def created_at_ago(**delta) -> datetime:
    return datetime.now() - timedelta(**delta)


def webhook_request(fields: dict[str, str], *, urlencoded: bool = False) -> dict:
    """httpx keyword arguments (content + headers) posting FIELDS like Jotform does."""
    if urlencoded:
        from urllib.parse import urlencode

        return {"content": urlencode(fields).encode(),
                "headers": {"content-type": "application/x-www-form-urlencoded"}}
    boundary = "------------------------d74496d66958873e"
    return {"content": multipart_body(fields, boundary),
            "headers": {"content-type": f"multipart/form-data; boundary={boundary}"}}
