"""RAIOX_ONNX_THREADS is a setting like the others: a `.env` line sets the threads of every ONNX Runtime session,
while `raiox.vision` itself reads only the environment (it imports no raiox.kit)."""

import subprocess
import sys
from pathlib import Path

import pytest

from raiox.kit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "src/raiox/vision/models/ends-v1.onnx"


def _threads_from(tmp_path, monkeypatch, env_line: str) -> int:
    from raiox.kit import settings
    from raiox.vision import onnxrt

    monkeypatch.setenv("RAIOX_ONNX_THREADS", "1")  # recorded, so that the test leaves the environment as it was
    monkeypatch.delenv("RAIOX_ONNX_THREADS")
    (tmp_path / ".env").write_text(env_line + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    settings.get_settings.cache_clear()
    try:
        assert settings.get_settings().onnx_threads == int(env_line.partition("=")[2])
        return onnxrt.load(MODEL).get_session_options().intra_op_num_threads
    finally:
        settings.get_settings.cache_clear()


def test_a_dotenv_line_sets_the_onnx_sessions_threads(tmp_path, monkeypatch):
    assert _threads_from(tmp_path, monkeypatch, "RAIOX_ONNX_THREADS=3") == 3
    assert _threads_from(tmp_path, monkeypatch, "RAIOX_ONNX_THREADS=2") == 2


def test_a_bad_value_names_the_setting(tmp_path, monkeypatch):
    from raiox.kit import settings

    monkeypatch.setenv("RAIOX_ONNX_THREADS", "0")
    settings.get_settings.cache_clear()
    with pytest.raises(ConfigError, match="RAIOX_ONNX_THREADS"):
        settings.get_settings()


def test_the_vision_package_alone_imports_no_raiox_kit_to_load_a_model():
    code = ("import sys; from raiox.vision import onnxrt; s = onnxrt.load(sys.argv[1]); "
            "print(s.get_session_options().intra_op_num_threads, any(m.startswith('raiox.kit') for m in sys.modules))")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src"), "RAIOX_ONNX_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", code, str(MODEL)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.split() == ["2", "False"], done.stderr
