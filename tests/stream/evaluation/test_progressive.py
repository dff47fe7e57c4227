"""Progressive validation over a small simulated stream, its summary arithmetic, and the CLI."""

from __future__ import annotations

import csv
import json
import math

import pytest

from stream.cli.main import main
from stream.config.pipeline import load_config
from stream.evaluation.progressive import ORACLE, EvaluationResult, ModelScores, run_evaluation
from stream.evaluation.report import format_markdown, write_results
from stream.evaluation.sources import SimulatedSource

EVENTS = 20_000


@pytest.fixture(scope="module")
def small_run() -> EvaluationResult:
    config = load_config()
    return run_evaluation(config, ["pepnet", "shared_bottom"], SimulatedSource(config, EVENTS), 512)


def test_progressive_run_scores_every_model_and_the_oracle(small_run, tmp_path):
    result = small_run
    assert set(result.models) == {"pepnet", "shared_bottom", ORACLE}
    assert result.source.startswith("20,000 simulated impressions (simulator seed 7")
    assert sum(result.samples["click"].values()) == EVENTS  # click is observed for every sample
    for model_scores in result.models.values():
        for task in result.tasks:
            for domain in result.domains:
                value = model_scores.auc[task][domain]
                assert math.isnan(value) == (result.positives[task][domain] in (0, result.samples[task][domain]))
                assert math.isnan(value) or 0.0 <= value <= 1.0
        assert 0.0 < model_scores.logloss["click"] < 1.0
    oracle, models = result.models[ORACLE], [result.models["pepnet"], result.models["shared_bottom"]]
    busy_cells = [("click", d) for d in result.domains if result.positives["click"][d] >= 200]
    for task, domain in busy_cells:
        assert oracle.auc[task][domain] > 0.7  # the hidden model is informative...
        for model in models:
            assert model.auc[task][domain] < oracle.auc[task][domain]  # ...and no model beats it
    assert all(m.auc_all["click"] > 0.55 for m in models)  # the models learn something from 20k events
    assert all(m.train_samples_per_s > 0 for m in models)
    paths = write_results(result, tmp_path)
    rows = list(csv.DictReader(paths[0].open()))
    assert len(rows) == 3 * len(result.tasks) * (len(result.domains) + 1)
    payload = json.loads(paths[1].read_text())
    assert payload["summary"]["shared_bottom"].keys() == {"mean_auc", "oracle_gap", "pepnet_win_rate"}
    assert payload["source"] == result.source
    assert "| click | tab1" in paths[2].read_text()


def scores(auc_by_cell: dict[tuple[str, str], float]) -> ModelScores:
    auc: dict[str, dict[str, float]] = {}
    for (task, domain), value in auc_by_cell.items():
        auc.setdefault(task, {})[domain] = value
    return ModelScores(auc=auc, auc_all={}, gauc={"click": 0.5}, logloss={})


def three_cell_result() -> EvaluationResult:
    return EvaluationResult(
        source="a test",
        events=10,
        batch_size=1,
        tasks=["click"],
        domains=["a", "b", "c"],
        samples={"click": {"a": 5000, "b": 5000, "c": 5000}},
        positives={"click": {"a": 1000, "b": 2000, "c": 999}},
    )


def test_win_rate_and_oracle_gap_use_only_cells_with_enough_positives():
    result = three_cell_result()
    result.models["pepnet"] = scores({("click", "a"): 0.70, ("click", "b"): 0.80, ("click", "c"): 0.1})
    result.models["shared_bottom"] = scores({("click", "a"): 0.70, ("click", "b"): 0.85, ("click", "c"): 0.9})
    result.models["epnet_only"] = scores({("click", "a"): 0.70, ("click", "b"): 0.86, ("click", "c"): 0.9})
    assert math.isnan(result.oracle_gap("pepnet"))  # no oracle: no gap
    result.models[ORACLE] = scores({("click", "a"): 0.80, ("click", "b"): 0.90, ("click", "c"): 0.9})
    assert result.comparable_cells() == [("click", "a"), ("click", "b")]
    assert result.win_rate("pepnet", "shared_bottom") == 0.5  # a tie counts as a win, c is ignored
    assert result.win_rate("epnet_only", "shared_bottom", strict=True) == 0.5  # ...but not a strict one
    assert result.oracle_gap("pepnet") == pytest.approx(0.10)
    assert result.oracle_gap("shared_bottom") == pytest.approx(0.075)
    assert [(m, b, rate) for m, b, _strict, rate in result.comparisons()] == [
        ("pepnet", "shared_bottom", 0.5),
        ("epnet_only", "shared_bottom", 0.5),
    ]


def test_markdown_shows_the_oracle_gap_only_when_there_is_an_oracle():
    result = three_cell_result()
    result.models["pepnet"] = scores({("click", "a"): 0.70, ("click", "b"): 0.80, ("click", "c"): 0.1})
    text = format_markdown(result)
    assert text.startswith("Progressive validation on a test, batch 1.")
    assert "gap to oracle" not in text and "simulated" not in text
    result.models[ORACLE] = scores({("click", "a"): 0.80, ("click", "b"): 0.90, ("click", "c"): 0.9})
    assert "| pepnet | 0.7500 | 0.1000 |" in format_markdown(result)


def test_cli_writes_the_table_and_refuses_bad_arguments(tmp_path, capsys):
    assert main(["evaluate", "--events", "2000", "--models", "shared_bottom", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "evaluation.csv").exists() and (tmp_path / "evaluation.json").exists()
    assert "| GAUC (by user) | shared_bottom | oracle |" in capsys.readouterr().out
    assert main(["evaluate", "--events", "10", "--models", "pepnet,dnn"]) == 2
    assert "--models" in capsys.readouterr().err
    assert main(["evaluate", "--events", "10", "--batch-size", "0"]) == 2
    assert "--batch-size must be > 0, got 0" in capsys.readouterr().err
    assert main(["evaluate", "--from-offsets", "0:5"]) == 2
    assert "give --topic NAME" in capsys.readouterr().err
    assert main(["evaluate", "--input", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: no such file" in capsys.readouterr().err


def test_cli_refuses_the_paper_online_preset_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PEPNET_MODEL_PRESET", "paper-online")
    assert main(["evaluate", "--events", "10", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "paper-online" in err and "cold-start" in err
