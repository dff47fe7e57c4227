"""Rank 0 serves the pass and table metrics; every other rank only its partitions' consumer lag."""

import urllib.request

from monitoring.config import MonitoringConfig
from stream.trainer.rank_group import RankGroup
from stream.trainer.trainer_monitoring import TrainerMonitoring
from tests.monitoring.test_metrics import librdkafka_stats


def served(monitoring: TrainerMonitoring) -> str:
    assert monitoring.url is not None
    return urllib.request.urlopen(monitoring.url, timeout=5).read().decode()


def test_rank_zero_serves_everything_and_the_others_their_lag() -> None:
    config = MonitoringConfig(trainer_port=0)
    root, other = TrainerMonitoring(config, RankGroup(0, 2)), TrainerMonitoring(config, RankGroup(1, 2, 1))
    root.start()
    other.start()
    try:
        assert root.metrics is not None and other.metrics is None
        other.lag_callback()(librdkafka_stats({"1": 7}))
        body = served(other)
        assert 'pepnet_consumer_lag_messages{partition="1",topic="pepnet.samples"} 7.0' in body
        assert "pepnet_pass_index" not in body and "pepnet_table_used_bytes" not in body
        assert "pepnet_pass_index" in served(root) and "pepnet_table_shard_rows" in served(root)
    finally:
        root.stop()
        other.stop()
