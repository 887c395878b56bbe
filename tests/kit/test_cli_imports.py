"""`raiox --help`, a group's --help and the commands that need neither the web server nor a model (users, tokens,
audit, db, cases purge) never import FastAPI, OpenCV, NumPy, ONNX Runtime, torch or boto3: each cost every `raiox`
process its start-up time (about 1.1 s of imports in all), which a deploy's or a cron's command pays again and
again. The heavy modules are imported inside the commands and the modules that need them."""

import json
import subprocess
import sys
import textwrap

from fakes.embedded import copy_data_dir, embedded_env

HEAVY = ("fastapi", "starlette", "uvicorn", "cv2", "numpy", "onnxruntime", "torch", "boto3")
LIGHT = [
    ["--help"], ["users", "--help"], ["audit", "--help"], ["tokens", "--help"], ["cases", "purge", "--help"],
    ["db", "upgrade"],
    ["users", "add", "ops@example.com", "--password-stdin"], ["users", "list"], ["users", "disable", "ops@example.com"],
    ["tokens", "create", "ci"], ["tokens", "list"], ["tokens", "revoke", "ci"],
    ["audit", "list", "--limit", "5"], ["audit", "anonymise-addresses"],
    ["cases", "purge", "--older-than", "30", "--dry-run"],
]

# A fresh interpreter (pytest's own has imported everything): `import raiox.cli`, then each command run for real, on
# the embedded database; after each, the heavy modules loaded so far.
CHILD = textwrap.dedent("""
    import json, sys

    heavy, commands = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    loaded = lambda: [name for name in heavy if name in sys.modules]
    from typer.testing import CliRunner

    from raiox.cli import app

    print(json.dumps({"args": ["import raiox.cli"], "exit": 0, "heavy": loaded(), "output": ""}), flush=True)
    for args in commands:
        result = CliRunner().invoke(app, args, input="a-long-password\\n")
        print(json.dumps({"args": args, "exit": result.exit_code, "heavy": loaded(), "output": result.output[-400:]}),
              flush=True)
""")


def test_help_and_commands_without_server_or_model_import_no_heavy_module(tmp_path, migrated_data_dir):
    copy_data_dir(migrated_data_dir, tmp_path)
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(HEAVY), json.dumps(LIGHT)],
                          env=embedded_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = [json.loads(line) for line in done.stdout.splitlines()]
    assert [run["args"] for run in runs] == [["import raiox.cli"], *LIGHT]
    for run in runs:  # each one did its work (a command that failed early could have skipped its imports)
        assert run["exit"] == 0, run
        assert run["heavy"] == [], f"`{' '.join(run['args'])}` left {run['heavy']} imported"
