"""The fail2ban filter for failed admin logins, run through fail2ban-regex on the lines the
application writes (console and JSON log formats), including forged e-mail values.

Format the application must log (one line per failed login, client address first):
    console: raiox.admin.login_failed ip=<client address> email=<e-mail> ...  (the typed address masked)
    json:    {"event": "raiox.admin.login_failed", "ip": "<client address>", ...}
"""

import subprocess

from .tooling import REPO, require_tool

FILTER = REPO / "deploy" / "roles" / "raiox" / "files" / "fail2ban-raiox-admin.conf"

FAILED = [
    "2026-11-28 07:00:00 [warning  ] raiox.admin.login_failed ip=203.0.113.1 email=ana@example.com",
    "raiox.admin.login_failed ip=203.0.113.2 email=ana@example.com reason=bad_password",
    "2026-11-28 07:00:01 [warning  ] raiox.admin.login_failed ip=203.0.113.6 email=<e-mail>",  # masked, as logged now
    '{"ip": "203.0.113.3", "email": "ana@example.com", "event": "raiox.admin.login_failed", "level": "warning"}',
    '{"event": "raiox.admin.login_failed", "ip": "2001:db8::4", "email": "ana@example.com"}',
    # a forged address in the e-mail field next to the real one: the real one is banned
    '{"event": "raiox.admin.login_failed", "email": "x\\", \\"ip\\": \\"198.51.100.9", "ip": "203.0.113.5"}',
]
NOT_FAILED = [
    "raiox.admin.login_ok ip=203.0.113.7 email=ana@example.com",
    '{"event": "raiox.admin.login_ok", "ip": "203.0.113.7"}',
    # an address typed into the e-mail field must never be what gets banned
    "raiox.admin.login_failed email=x ip=198.51.100.9",
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
                                         "203.0.113.5"]


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
