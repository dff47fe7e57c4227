"""`pepnet --help`, every `pepnet COMMAND --help` and a config error never import torch (or faust,
matplotlib): each runs in a fresh interpreter that reports which heavy modules got loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stream.cli.main import COMMAND_MODULES
from tests.conftest import REPO_ROOT

HEAVY = ("torch", "faust", "matplotlib", "aiokafka")

PROBE = """
import json, sys
from stream.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "heavy": [m for m in %r if m in sys.modules]}))
""" % (HEAVY,)  # noqa: UP031 - a literal tuple in the probe's source


def run_cli(*argv: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    if outcome["code"] == 2:
        outcome["error"] = done.stderr.strip()
    return outcome


@pytest.mark.parametrize("argv", [["--help"]] + [[command, "--help"] for command in COMMAND_MODULES])
def test_help_imports_no_heavy_module(argv: list[str]) -> None:
    outcome = run_cli(*argv)
    assert outcome == {"code": 0, "heavy": []}


@pytest.mark.parametrize("argv", [["train"], ["worker"], ["score", "--input", "x.jsonl"], ["demo"], ["evaluate"]])
def test_a_config_error_imports_no_heavy_module(tmp_path: Path, argv: list[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  pass_samples: -1\n")
    outcome = run_cli("--config", str(bad), *argv)
    assert outcome == {"code": 2, "heavy": [], "error": "error: trainer.pass_samples: must be > 0, got -1"}
