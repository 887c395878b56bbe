"""The embedded PostgreSQL's module imports quietly where XDG_RUNTIME_DIR is unset (servers, CI)."""

import os
import subprocess
import sys


def test_pgserver_imports_without_the_runtime_dir_warning():
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    code = "import raiox.kit.db as db; print(db._pgserver().__name__)"
    plain = subprocess.run([sys.executable, "-W", "default", "-c", "import pgserver"], env=env,
                           capture_output=True, text=True, timeout=120)
    ours = subprocess.run([sys.executable, "-W", "default", "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert "XDG_RUNTIME_DIR" in plain.stderr  # the library warns on such a machine ...
    assert ours.returncode == 0 and ours.stdout.strip() == "pgserver"
    assert "XDG_RUNTIME_DIR" not in ours.stderr  # ... and raiox keeps it out of every command's output
