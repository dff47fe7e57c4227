"""Wall time of `pepnet --help`, every `pepnet COMMAND --help` and a config error, each in a fresh
interpreter, beside the bare interpreter start (`python -c pass`) and `import torch` measured in
the same run.

    python -m benchmarks.cli_help             # median of 5 runs each
    python -m benchmarks.cli_help --runs 11

Target (issue 17): every --help answers in < 1 s on the development machine; torch is never
imported by them (tests/stream/cli/test_lazy_imports.py proves that part).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stream.cli.main import COMMAND_MODULES

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 1.0


def wall_time(argv: list[str], runs: int) -> float:
    """Median wall seconds of ``argv`` over ``runs`` runs (output discarded)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    python = sys.executable
    cli = [python, "-m", "stream.cli.main"]
    bare = wall_time([python, "-c", "pass"], args.runs)
    torch = wall_time([python, "-c", "import torch"], args.runs)
    with tempfile.TemporaryDirectory() as work:
        bad = Path(work) / "bad.yaml"
        bad.write_text("trainer:\n  pass_samples: -1\n")
        cases = {"pepnet --help": cli + ["--help"]}
        cases |= {f"pepnet {c} --help": cli + [c, "--help"] for c in COMMAND_MODULES}
        cases["pepnet train (config error)"] = cli + ["--config", str(bad), "train"]
        figures = {name: wall_time(argv, args.runs) for name, argv in cases.items()}
    print(f"median of {args.runs} runs, wall seconds")
    print(f"{'python -c pass (baseline)':<32} {bare:6.2f}")
    print(f"{'python -c import torch':<32} {torch:6.2f}")
    for name, seconds in figures.items():
        verdict = "met" if seconds < TARGET_S else "NOT met"
        print(f"{name:<32} {seconds:6.2f}   {seconds / bare:4.1f}x the bare interpreter   < {TARGET_S:g} s: {verdict}")


if __name__ == "__main__":
    main()
