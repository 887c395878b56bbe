"""The fail2ban filter for failed admin logins, run through fail2ban-regex on the lines the
application writes (console and JSON log formats), including forged e-mail values.

Format the application must log (one line per failed login, client address first):
    console: raiox.admin.login_failed ip=<client address> email=<e-mail> ...  (the typed address masked)
    json:    {"event": "raiox.admin.login_failed", "ip": "<client address>", ...}
"""

import os
import subprocess

from .tooling import REPO, require_tool

FILTER = REPO / "deploy" / "roles" / "raiox" / "files" / "fail2ban-raiox-admin.conf"

FAILED = [
    "2026-11-28 07:00:00 [warning  ] raiox.admin.login_failed ip=203.0.113.1 email=ana@example.com",
    "raiox.admin.login_failed ip=203.0.113.2 email=ana@example.com reason=bad_password",
    "2026-11-28 07:00:01 [warning  ] raiox.admin.login_failed ip=203.0.113.6 email=<e-mail>",  # masked, as logged now
    '{"ip": "203.0.113.3", "email": "ana@example.com", "event": "raiox.admin.login_failed", "level": "warning"}',
    '{"event": "raiox.admin.login_failed", "ip": "2001:db8::4", "email": "ana@example.com"}',
    # production's JSON line: the message is the event
    '{"event": "raiox.admin.login_failed ip=203.0.113.8 email=<e-mail>", "logger": "raiox.admin", "level": "warning"}',
    # a forged address in the e-mail field next to the real one: the real one is banned
    '{"event": "raiox.admin.login_failed", "email": "x\\", \\"ip\\": \\"198.51.100.9", "ip": "203.0.113.5"}',
]
NOT_FAILED = [
    "raiox.admin.login_ok ip=203.0.113.7 email=ana@example.com",
    '{"event": "raiox.admin.login_ok", "ip": "203.0.113.7"}',
    # an address typed into the e-mail field must never be what gets banned
    "raiox.admin.login_failed email=x ip=198.51.100.9",
    '{"event": "raiox.admin.login_failed email=x ip=198.51.100.9", "level": "warning"}',
    '{"event": "raiox.admin.login_failed", "email": "x\\", \\"ip\\": \\"198.51.100.9"}',
]


def _banned(tmp_path, lines: list[str]) -> list[str]:
    """The addresses fail2ban would ban for these log lines, in order."""
    tool = require_tool("fail2ban-regex", "Debian package fail2ban")
    log = tmp_path / "journal.log"
    log.write_text("\n".join(lines) + "\n")
    result = subprocess.run([tool, "--out", "ip", "--raw", str(log), str(FILTER)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.split()


def test_failed_logins_ban_the_client_address(tmp_path):
    assert _banned(tmp_path, FAILED) == ["203.0.113.1", "203.0.113.2", "203.0.113.6", "203.0.113.3", "2001:db8::4",
                                         "203.0.113.8", "203.0.113.5"]


def test_other_lines_and_forged_addresses_ban_nobody(tmp_path):
    assert _banned(tmp_path, NOT_FAILED) == []


def test_the_applications_own_log_line_bans_the_client(tmp_path):
    """The line raiox.review.auth.log_failure really writes (format `%(message)s`, as configured)."""
    import logging

    from raiox.review.auth import log_failure

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("raiox.admin")
    logger.addHandler(handler)
    try:
        log_failure("198.51.100.23", "ana@example.com")
        log_failure("2001:db8::23", "x ip=203.0.113.99")  # a forged address in the e-mail field
    finally:
        logger.removeHandler(handler)
    assert len(lines) == 2 and "ana@example.com" not in lines[0] and "email=<e-mail>" in lines[0]
    assert _banned(tmp_path, lines) == ["198.51.100.23", "2001:db8::23"]


def test_the_line_the_services_really_write_bans_the_client_in_both_log_formats(tmp_path):
    """What the journal gets from a failed login, through raiox's own logging set-up: the hosts log JSON
    (RAIOX_LOG_FORMAT=json, role raiox), where the stdlib line becomes the JSON line's event; the filter read only the
    console form and a JSON `ip` field, so production's failed logins banned nobody."""
    import sys

    script = ("import sys\n"
              "from raiox.kit.logging import configure_logging\n"
              "from raiox.review.auth import log_failure\n"
              "configure_logging(sys.argv[1], 'INFO')\n"
              "log_failure(sys.argv[2], 'ana@example.com')\n"
              "log_failure('198.51.100.99', sys.argv[3])\n")  # forged addresses typed as the e-mail
    forged = 'x ip=203.0.113.99 "event": "raiox.admin.login_failed ip=203.0.113.98@example.com'
    lines = []
    for fmt, ip in (("json", "198.51.100.31"), ("console", "2001:db8::31")):
        done = subprocess.run([sys.executable, "-c", script, fmt, ip, forged], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
        assert done.returncode == 0, done.stderr
        written = [line for line in done.stderr.splitlines() if "login_failed" in line]
        assert len(written) == 2, done.stderr
        lines += written
    assert lines[0].startswith("{")  # the JSON form
    assert _banned(tmp_path, lines) == ["198.51.100.31", "198.51.100.99", "2001:db8::31", "198.51.100.99"]
