"""promtool: the Prometheus config and rules are valid, their unit tests pass, and every rule is tested."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

pytestmark = pytest.mark.skipif(
    not Path(PROMTOOL).exists(), reason="promtool missing: apt-get install prometheus (make test does)"
)


def promtool(*args: str | Path, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_config_is_valid() -> None:
    result = promtool("check", "config", PROMETHEUS_DIR / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_are_valid() -> None:
    assert len(RULE_FILES) >= 2
    result = promtool("check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", *RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def _rules() -> list[tuple[Path, int, int, dict]]:
    found = []
    for path in RULE_FILES:
        for group_index, group in enumerate(yaml.safe_load(path.read_text())["groups"]):
            for rule_index, rule in enumerate(group["rules"]):
                found.append((path, group_index, rule_index, rule))
    return found


@pytest.mark.parametrize(
    ("path", "group_index", "rule_index", "rule"),
    _rules(),
    ids=[rule.get("alert") or rule.get("record") for *_, rule in _rules()],
)
def test_each_rule_is_covered_by_a_unit_test(
    tmp_path: Path, path: Path, group_index: int, rule_index: int, rule: dict
) -> None:
    """Replacing a rule's expression by one that never matches must make promtool's tests fail."""
    mutated_dir = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS_DIR, mutated_dir)
    mutated_path = mutated_dir / "rules" / path.name
    document = yaml.safe_load(mutated_path.read_text())
    document["groups"][group_index]["rules"][rule_index]["expr"] = "vector(1) < 0"
    mutated_path.write_text(yaml.safe_dump(document))
    result = promtool("test", "rules", *sorted((mutated_dir / "tests").glob("*.yml")), cwd=mutated_dir)
    assert result.returncode != 0, f"no unit test notices when {rule} never matches"
