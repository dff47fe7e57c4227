import math

from monitoring.run_log import PassRecord
from stream.config.pipeline import load_config
from stream.demo.pipeline import demo_overrides, pass_table, worker_environment


def record(index: int, auc: float) -> PassRecord:
    return PassRecord(
        pass_index=index, samples=100, duration_s=0.5, samples_per_s=200.0, loss={"click": 0.5},
        auc={"click": auc}, auc_by_domain={}, logloss={"click": 0.6}, table_bytes=3 * 2**20,
        budget_bytes=2**26, table_rows=42, evictions={"budget": 2, "ttl": 1}, consumer_lag=0,
        event_time_min_ms=0, event_time_max_ms=1,
    )  # fmt: skip


def test_pass_table_has_one_row_per_pass_and_blank_nan():
    text = pass_table([record(0, math.nan), record(1, 0.61234)], ["click"])
    lines = text.splitlines()
    assert len(lines) == 3 and "auc:click" in lines[0] and "samples/s" in lines[0]
    assert lines[1].split()[3] == "-" and lines[2].split()[3] == "0.6123"
    assert lines[2].split()[-3:] == ["3.0", "3", "200"]


def test_pass_table_names_the_tasks_it_leaves_out():
    tasks = ["click", "effective_view", "like", "follow", "hate"]
    last = record(1, 0.7)
    last.auc = {"click": 0.7, "follow": 0.61234, "hate": math.nan}
    lines = pass_table([record(0, 0.6), last], tasks).splitlines()
    assert len(lines) == 4 and "auc:like" in lines[0] and "follow" not in lines[0]
    assert lines[3] == (
        "not in the table: follow, hate (last pass AUC follow 0.6123, hate -; every task in passes.jsonl "
        "and plots/auc.png)"
    )


def test_worker_is_pointed_at_the_demo_topics():
    config = load_config(overrides=demo_overrides("123", "127.0.0.1:1"), environ={})
    env = worker_environment(config)
    assert env["PEPNET_KAFKA_TOPICS_SAMPLES_NAME"] == "demo.123.samples"
    assert env["PEPNET_KAFKA_BOOTSTRAP"] == "127.0.0.1:1"
    assert config.kafka.topics.samples.settings == {"retention.ms": "-1"}
