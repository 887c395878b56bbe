"""SSRF guard and download rules, against the fake upload host on 127.0.0.1."""

import pytest

from raiox.intake import download as dl
from raiox.intake.download import DownloadFailed, DownloadUnavailable, check_target, download
from raiox.kit.settings import get_settings


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/",       # cloud metadata, not listed
    "http://127.0.0.1:5432/",                         # listed host, other port
    "https://127.0.0.1/uploads/x.png",                # other scheme
    "file:///etc/passwd",
    "gopher://www.jotform.com/x",
    "http://www.jotform.com/uploads/x.png",           # the real host but plain http: not listed
])
async def test_origins_off_the_list_are_refused(jotform, url):
    with pytest.raises(DownloadFailed):
        await check_target(url, get_settings().jotform_upload_hosts)


async def test_listed_name_resolving_to_private_address_is_refused(monkeypatch):
    async def fake_resolve(host, port):
        return ["10.0.0.7"]

    monkeypatch.setattr(dl, "_resolve", fake_resolve)
    with pytest.raises(DownloadFailed, match="non-public address"):
        await check_target("https://www.jotform.com/uploads/a/b/c/x.png", ["https://www.jotform.com:443"])
    monkeypatch.setattr(dl, "_resolve", lambda host, port: _coro(["104.18.1.1"]))
    assert await check_target("https://www.jotform.com/uploads/x.png", ["https://www.jotform.com:443"]) == \
        ("https", "104.18.1.1", 443)


async def _coro(value):
    return value


async def test_explicitly_listed_loopback_is_allowed(jotform):
    url = jotform.add_file("/uploads/u/1/2/ok.png", b"\x89PNG\r\n\x1a\nabc")
    got = await download(url, get_settings())
    assert got.data.startswith(b"\x89PNG") and got.url == url


async def test_redirect_within_the_list_is_followed_and_off_the_list_refused(jotform):
    target = jotform.add_file("/uploads/u/1/2/real.png", b"\x89PNG\r\n\x1a\nxyz")
    jotform.redirect("/uploads/u/1/2/moved.png", "/uploads/u/1/2/real.png")
    got = await download(jotform.url + "/uploads/u/1/2/moved.png", get_settings())
    assert got.data.endswith(b"xyz") and got.url == target
    jotform.redirect("/uploads/u/1/2/evil.png", "http://169.254.169.254/latest/meta-data/iam")
    with pytest.raises(DownloadFailed, match="not an allowed upload origin"):
        await download(jotform.url + "/uploads/u/1/2/evil.png", get_settings())
    jotform.redirect("/uploads/u/1/2/loop.png", "/uploads/u/1/2/loop.png")
    with pytest.raises(DownloadFailed, match="too many redirects"):
        await download(jotform.url + "/uploads/u/1/2/loop.png", get_settings())


async def test_outage_retries_then_gives_up_and_slow_host_times_out(jotform, settings_env):
    url = jotform.add_file("/uploads/u/1/2/a.png", b"\x89PNG\r\n\x1a\n")
    jotform.fail("/uploads/", 429, times=2)
    assert (await download(url, get_settings())).data.startswith(b"\x89PNG")
    jotform.fail("/uploads/", 503, times=10)
    with pytest.raises(DownloadUnavailable, match="503"):
        await download(url, get_settings())
    jotform.state.failures.clear()
    settings_env(download_timeout_s="0.3", download_retries="0")
    jotform.delay("/uploads/", 1.5)
    with pytest.raises(DownloadUnavailable, match="timed out"):
        await download(url, get_settings())


async def test_errors_never_show_the_api_key(jotform):
    jotform.fail("/uploads/", 503, times=10)
    url = jotform.add_file("/uploads/u/1/2/a.png", b"x")
    with pytest.raises(DownloadUnavailable) as info:
        await download(url + "?apiKey=test-jotform-key", get_settings())
    assert "test-jotform-key" not in str(info.value)


def test_errors_and_logs_name_an_upload_without_its_file_name_or_key():
    import hashlib

    from raiox.intake.download import upload_ref

    url = "https://user:pw@www.jotform.com/uploads/acct/123/456/Jo%C3%A3o%20Silva%20-%2036.jpg?apiKey=k3y"
    ref = upload_ref(url)
    assert ref == f"https://www.jotform.com/… (upload {hashlib.md5(url.encode()).hexdigest()[:8]})"
    assert "Silva" not in ref and "k3y" not in ref and "pw" not in ref
    assert upload_ref(url.replace("36.jpg", "37.jpg")) != ref  # two uploads of one case stay apart


async def test_the_api_key_goes_only_to_this_forms_upload_folder(jotform, settings_env):
    """Uploads that need a log-in are fetched with the account's key; a URL of another form's folder (put into a
    submission) is fetched without it, so the server cannot be made to pull another form's files into a report."""
    from fakes.jotform import FORM_ID

    jotform.require_login = True
    own = jotform.add_file(f"/uploads/u/{FORM_ID}/6084250982513018472/raio-x.png", b"\x89PNG\r\n\x1a\nown")
    other = jotform.add_file("/uploads/u/999999999999999/1/outra.png", b"\x89PNG\r\n\x1a\nother")
    assert (await download(own, get_settings())).data.endswith(b"own")
    with pytest.raises(DownloadFailed, match="HTML page"):  # the login page: no key went with it
        await download(other, get_settings())
    settings_env(jotform_form_id="")  # no form configured: the key goes with every upload, as before
    assert (await download(other, get_settings())).data.endswith(b"other")
