"""An operational failure ends any `raiox` command with one line on stderr and exit 2 (configuration) or 1
(database, storage), never a traceback or a password; `--debug` / RAIOX_DEBUG=1 gives the traceback back."""

import errno
import socket

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from raiox.cli import app

UNREACHABLE = "postgresql://raiox:hunter2@127.0.0.1:1/raiox"


def run(*args: str, catch: bool = False):
    return CliRunner().invoke(app, list(args), catch_exceptions=catch)


def _one_line(result) -> str:
    assert result.stdout == "" and "Traceback" not in result.output and "hunter2" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", [["db", "upgrade"], ["catalog", "stats"], ["tokens", "list"],
                                     ["serve", "--port", "8799"], ["admin", "--port", "8799"], ["worker"]])
def test_an_unreachable_database_is_one_line_and_exit_1(configure, command):
    configure(DATABASE_URL=UNREACHABLE, DATABASE_WAIT_S="0")  # servers would wait for it (test_servers_wait_...)
    result = run(*command)
    line = _one_line(result)
    assert result.exit_code == 1 and "database unreachable" in line and "RAIOX_DATABASE_URL" in line


@pytest.mark.parametrize("url", ["notaurl", "postgresql://raiox:hunter2@db:port/raiox", "mysql://raiox:hunter2@db/x"])
def test_a_malformed_database_url_is_a_configuration_error(configure, url):
    configure(DATABASE_URL=url)
    result = run("catalog", "stats")
    assert result.exit_code == 2 and "RAIOX_DATABASE_URL" in result.stderr and "hunter2" not in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("setting", [{"TOP_K": "abc"}, {"EMBEDDER": "bogus"}, {"EMBEDDER": "onnx:/nonexistent.onnx"},
                                     {"MAX_PIXELS": "300000000"},  # over Pillow's backstop: it would never apply
                                     {"LOG_LEVEL": "LOUD"}, {"JOTFORM_FIELD_MAP": "notjson"},
                                     {"STORAGE_URL": "file://"}, {"STORAGE_URL": "file://data/storage"},
                                     {"STORAGE_URL": "s3://"}])
def test_identify_with_a_bad_setting_is_a_configuration_error(configure, tmp_path, setting):
    configure(DATABASE_URL=UNREACHABLE, **setting)
    (tmp_path / "x.png").write_bytes(b"never read")
    result = run("identify", str(tmp_path / "x.png"))
    assert result.exit_code == 2 and f"RAIOX_{next(iter(setting))}" in result.stderr, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("setting", "named"), [
    ({"JOTFORM_API_KEY": "", "JOTFORM_FORM_ID": "243231271343446"}, ["RAIOX_JOTFORM_API_KEY"]),
    ({"JOTFORM_FORM_ID": ""}, ["RAIOX_JOTFORM_FORM_ID"]),
    ({"JOTFORM_API_KEY": "", "JOTFORM_FORM_ID": ""}, ["RAIOX_JOTFORM_API_KEY", "RAIOX_JOTFORM_FORM_ID"])])
@pytest.mark.parametrize("command", [["serve", "--port", "8799"], ["worker"]])
def test_verifying_submissions_without_the_api_key_or_the_form_is_refused_at_start(configure, setting, named,
                                                                                  command):
    """RAIOX_JOTFORM_VERIFY_SUBMISSIONS makes a webhook only a notification (200 "verifying", no case yet): without the
    API key no submission could ever be read back, without the form id nothing ingests one whose verification gave up
    (Jotform down past the job's retries). Both would be a dentist's submission answered 200 and lost."""
    configure(DATABASE_URL=UNREACHABLE, DATABASE_WAIT_S="0", JOTFORM_VERIFY_SUBMISSIONS="true", **setting)
    result = run(*command)
    assert result.exit_code == 2, result.output
    assert "RAIOX_JOTFORM_VERIFY_SUBMISSIONS" in result.stderr and all(n in result.stderr for n in named)
    assert "Traceback" not in result.output and "database unreachable" not in result.output


def test_verifying_submissions_with_the_api_key_and_the_form_gets_past_the_settings(configure):
    configure(DATABASE_URL=UNREACHABLE, DATABASE_WAIT_S="0", JOTFORM_VERIFY_SUBMISSIONS="true",
              JOTFORM_API_KEY="a-key", JOTFORM_FORM_ID="243231271343446")
    result = run("tokens", "list")
    assert result.exit_code == 1 and "database unreachable" in _one_line(result)


@pytest.mark.parametrize("command", [["catalog", "import", "."], ["catalog", "reindex"]])
def test_an_embedder_that_cannot_load_is_a_configuration_error(configure, command):
    configure(DATABASE_URL=UNREACHABLE, EMBEDDER="bogus")
    result = run(*command)
    line = _one_line(result)
    assert result.exit_code == 2 and "RAIOX_EMBEDDER='bogus'" in line and "unknown embedder" in line


@pytest.mark.parametrize("how", [["--debug"], []])
def test_debug_gives_the_traceback_back(configure, monkeypatch, how):
    from sqlalchemy.exc import OperationalError

    configure(DATABASE_URL=UNREACHABLE)
    if not how:
        monkeypatch.setenv("RAIOX_DEBUG", "1")
    result = run(*how, "catalog", "stats", catch=True)
    assert isinstance(result.exception, OperationalError)


def test_ctrl_c_says_interrupted_and_exits_130(monkeypatch):
    from raiox.catalog import cli as catalog_cli

    def interrupted(work):
        raise KeyboardInterrupt

    monkeypatch.setattr(catalog_cli, "run_db", interrupted)
    result = run("catalog", "stats")
    assert result.exit_code == 130 and result.stderr.strip() == "interrupted"


def test_sigterm_is_ctrl_c_for_every_command_and_exits_143(monkeypatch):
    """A SIGTERM (systemd's stop, `kill`, `timeout`) to a command that is not a server killed it outright (Python's
    default): no rollback, no exit hook, the embedded PostgreSQL left running. It is now the command's Ctrl+C: in
    plain code a KeyboardInterrupt, under `asyncio.run` the main task cancelled (its `finally` runs, as a
    transaction's rollback does), then one line and exit 143. The handler is the command's only."""
    import asyncio
    import os
    import signal
    import time

    from raiox.catalog import cli as catalog_cli

    unwound = []

    def terminated(work):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the rest of the command
        unwound.append("went on")

    monkeypatch.setattr(catalog_cli, "run_db", terminated)
    before = signal.getsignal(signal.SIGTERM)
    result = run("catalog", "stats")
    assert result.exit_code == 143 and result.stderr.strip() == "terminated (SIGTERM)" and unwound == []

    async def batch():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(5)
            unwound.append("went on")
        finally:
            unwound.append("rolled back")

    monkeypatch.setattr(catalog_cli, "run_db", lambda work: asyncio.run(batch()))
    started = time.monotonic()
    result = run("catalog", "stats")
    assert result.exit_code == 143 and result.stderr.strip() == "terminated (SIGTERM)", result.output
    assert unwound == ["rolled back"] and time.monotonic() - started < 4
    assert signal.getsignal(signal.SIGTERM) is before


def test_storage_unavailable_during_an_import_is_one_line_and_loses_nothing(
        tmp_path, configure, monkeypatch, database_url, committed):
    from raiox.kit import storage
    from raiox.synth import demo_catalog, render_reference, to_png

    (tmp_path / "tree" / "Acme" / "Cone").mkdir(parents=True)
    (tmp_path / "tree" / "Acme" / "Cone" / "a.png").write_bytes(
        to_png(render_reference(demo_catalog()[0].spec, seed=0)))
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "sha256").write_text("a file where the storage's folder should be")
    configure(STORAGE_URL=f"file://{tmp_path}/store")
    monkeypatch.setattr(storage, "_storage", None)
    result = run("catalog", "import", str(tmp_path / "tree"))
    line = result.stderr.strip().splitlines()[-1]
    assert result.exit_code == 1 and line.startswith("error: ") and "RAIOX_STORAGE_URL" in line, result.output
    assert "Traceback" not in result.output
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM reference_images").fetchone() == (0,)  # nothing half-imported

    (tmp_path / "store" / "sha256").unlink()
    monkeypatch.setattr(storage, "_storage", None)
    assert "1 added" in run("catalog", "import", str(tmp_path / "tree")).output


@pytest.mark.parametrize("command", [["serve", "--port", "70000"], ["serve", "--port", "0"], ["admin", "--port", "-1"],
                                     ["worker", "--concurrency", "0"]])
def test_a_port_or_a_concurrency_out_of_range_is_refused_before_anything_starts(command):
    result = run(*command)
    assert result.exit_code == 2 and "Invalid value" in result.output and "Traceback" not in result.output


def test_servers_wait_for_a_database_that_does_not_answer_yet(configure, monkeypatch):
    """All hosts booting together: a server or worker tries again every few seconds for RAIOX_DATABASE_WAIT_S before
    giving up, so that systemd's limited restarts are not spent while the database starts."""
    import time

    from raiox import cli

    configure(DATABASE_URL=UNREACHABLE, DATABASE_WAIT_S="10")
    naps = []
    clock = iter(range(0, 100, 3))
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(time, "sleep", naps.append)
    with pytest.raises(psycopg.OperationalError):
        cli.database_ready()
    assert naps and set(naps) == {3} and len(naps) >= 2  # tried again, then gave up at the deadline


@pytest.mark.parametrize("command", ["serve", "admin"])
def test_a_port_already_in_use_is_one_line_and_exit_1_before_anything_starts(configure, command):
    """uvicorn found out only after the whole start-up (database, migrations, app) and ended with its own log line and
    exit code 3: the address is checked first (the unreachable database is never tried)."""
    configure(DATABASE_URL=UNREACHABLE, DATABASE_WAIT_S="0")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(command, "--host", "127.0.0.1", "--port", str(port))
    line = _one_line(result)
    assert result.exit_code == 1 and line.startswith(f"error: port {port} on 127.0.0.1 is already in use ("), line
    assert "database" not in line


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _take(port: int) -> socket.socket:
    """Another server listening on PORT as uvicorn would (SO_REUSEADDR); OSError when it cannot."""
    intruder = socket.socket()
    intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        intruder.bind(("127.0.0.1", port))
        intruder.listen()
    except OSError:
        intruder.close()
        raise
    return intruder


def test_a_free_address_is_held_until_the_server_ends_and_a_host_that_is_no_address_is_refused():
    from raiox.cli import listening

    port = _free_port()
    with listening("127.0.0.1", port) as sockets:
        assert [s.getsockname() for s in sockets] == [("127.0.0.1", port)]
        with pytest.raises(OSError) as refused:
            _take(port)
        assert refused.value.errno == errno.EADDRINUSE
    with listening("127.0.0.1", port):  # let go on the way out: free again
        pass
    _take(port).close()
    result = run("serve", "--host", "no-such-host.invalid", "--port", str(port))
    assert result.exit_code == 2 and "Invalid value for --host" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("command", ["serve", "admin"])
def test_no_other_server_can_take_the_port_between_the_check_and_the_serving(configure, monkeypatch, command):
    """The port was checked and let go, and uvicorn bound it again once the start-up (embedded database, migrations,
    the app) was over: another server taking it meanwhile made uvicorn end with its own log line and exit code 3. The
    sockets bound at the check are the ones served: the other server is refused, this one serves."""
    import uvicorn

    from raiox import cli

    configure(DATABASE_URL=UNREACHABLE)
    port, other = _free_port(), []

    def another_server_starts_meanwhile():
        try:
            other.append(_take(port))
        except OSError as exc:
            other.append(exc.errno)

    def serve(server, sockets=None):
        server.started = True
        served.append([s.getsockname() for s in sockets or []])

    served = []
    monkeypatch.setattr(cli, "database_ready", another_server_starts_meanwhile)
    monkeypatch.setattr(uvicorn.Server, "run", serve)
    try:
        result = run(command, "--host", "127.0.0.1", "--port", str(port))
    finally:
        for sock in other:
            if isinstance(sock, socket.socket):
                sock.close()
    assert other == [errno.EADDRINUSE] and served == [[("127.0.0.1", port)]], result.output
    assert result.exit_code == 0 and "Traceback" not in result.output
    _take(port).close()  # let go once served


@pytest.mark.parametrize("command", [["serve", "--port", "{port}"], ["worker"], ["identify", "{png}"]])
@pytest.mark.parametrize("content", [b"\x0a\xff\xff\xff\xff a model cut short", b'{"not": "a model"}'])
def test_a_configured_embedder_that_is_no_model_is_one_line_before_anything_starts(configure, tmp_path, command,
                                                                                    content):
    """A server or worker started with RAIOX_EMBEDDER=onnx:PATH to a damaged file (or no model at all) ran, and every
    case's analysis ended in the model's traceback: it is the configuration error naming the setting, at once."""
    model = tmp_path / "model.onnx"
    model.write_bytes(content)
    configure(DATABASE_URL=UNREACHABLE, DATABASE_WAIT_S="0", EMBEDDER=f"onnx:{model}")
    (tmp_path / "x.png").write_bytes(b"never read")
    result = run(*(arg.format(port=_free_port(), png=tmp_path / "x.png") for arg in command))
    line = _one_line(result)
    assert result.exit_code == 2 and "RAIOX_EMBEDDER" in line and "model.onnx" in line, line
    assert "database" not in line


@pytest.mark.parametrize("command", [["serve", "--port", "{port}"], ["worker"]])
@pytest.mark.parametrize(("setting", "shipped", "entry"), [("CONNECTION_MODEL", "connection-v2", "raiox_zoom"),
                                                           ("FEATURE_MODEL", "features-v2", "raiox_heads")])
def test_a_reader_whose_metadata_is_broken_is_one_line_before_anything_starts(configure, shipped_model_copy, command,
                                                                              setting, shipped, entry):
    """A connection or feature reader whose ONNX metadata is broken JSON failed every case's analysis with a
    traceback: the server and the worker load the readers before they start, a configuration error naming it."""
    model = shipped_model_copy(shipped, **{entry: '{"cut short'})
    configure(DATABASE_URL=UNREACHABLE, DATABASE_WAIT_S="0", **{setting: str(model)})
    result = run(*(arg.format(port=_free_port()) for arg in command))
    line = _one_line(result)
    assert result.exit_code == 2 and f"{model} (RAIOX_{setting})" in line and entry in line, line
    assert "database" not in line


def _linear_embedder(path, dim: int, bias: float = 0.0):
    """An ONNX image encoder of 8 x 8 one-channel crops giving DIM numbers per crop (each one BIAS on a blank crop)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Flatten", ["image"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["raw"]),
         helper.make_node("Add", ["raw", "b"], ["embedding"])],
        "linear", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])],
        [numpy_helper.from_array(np.eye(64, dim, dtype=np.float32), "w"),
         numpy_helper.from_array(np.full(dim, bias, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("command", [["serve", "--port", "{port}"], ["worker"], ["identify", "{png}"],
                                     ["catalog", "reindex"], ["admin", "--port", "{port}"]])
@pytest.mark.parametrize(("dim", "bias", "why"), [
    (16, 1.0, "it gives 16 numbers per crop, the catalog's vectors have 512"),
    (768, 1.0, "it gives 768 numbers per crop, the catalog's vectors have 512"),
    (512, float("nan"), "its vector of a blank crop is not all finite numbers"),
])
def test_an_embedder_whose_vectors_the_catalog_cannot_hold_is_refused_when_it_loads(configure, tmp_path, command,
                                                                                   dim, bias, why):
    """An embedder giving other than 512 finite numbers per crop loaded, and every search then failed ('query
    embedding must be 512 finite numbers'): it is the configuration error naming RAIOX_EMBEDDER and what it gives."""
    model = _linear_embedder(tmp_path / "model.onnx", dim, bias)
    configure(DATABASE_URL=UNREACHABLE, DATABASE_WAIT_S="0", EMBEDDER=f"onnx:{model}")
    (tmp_path / "x.png").write_bytes(b"never read")
    result = run(*(arg.format(port=_free_port(), png=tmp_path / "x.png") for arg in command))
    line = _one_line(result)
    assert result.exit_code == 2 and f"RAIOX_EMBEDDER='onnx:{model}' cannot embed for the catalog: {why}" in line, line


def test_an_embedder_option_whose_vectors_the_catalog_cannot_hold_is_refused(configure, tmp_path):
    model = _linear_embedder(tmp_path / "small.onnx", 16)
    configure(DATABASE_URL=UNREACHABLE, DATABASE_WAIT_S="0")
    result = run("catalog", "reindex", "--embedder", f"onnx:{model}")
    line = _one_line(result)
    assert result.exit_code == 2 and "--embedder='onnx:" in line and "it gives 16 numbers per crop" in line, line


def test_the_vision_commands_keep_embedders_of_any_dimension(tmp_path):
    """Research embedders (an open_clip tower of 384 or 768 numbers) are still evaluated: only the catalog's
    commands need 512."""
    from raiox.vision.embedders import get_embedder, unfit_for_catalog

    embedder = get_embedder(f"onnx:{_linear_embedder(tmp_path / 'wide.onnx', 768)}")
    assert embedder.dim == 768 and embedder.embed([np.zeros((8, 8), np.float32)]).shape == (1, 768)
    assert "768 numbers" in unfit_for_catalog(embedder)
