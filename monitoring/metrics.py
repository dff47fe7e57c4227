"""The metric sets of the pipeline, each created on an explicit `CollectorRegistry`."""

from monitoring.consumer_lag import ConsumerLagGauge, PartitionLag, parse_consumer_lag
from monitoring.joiner_metrics import JoinerMetrics
from monitoring.process_metrics import register_process_metrics
from monitoring.table_metrics import TableMetrics
from monitoring.trainer_metrics import TrainerMetrics

__all__ = [
    "ConsumerLagGauge",
    "JoinerMetrics",
    "PartitionLag",
    "TableMetrics",
    "TrainerMetrics",
    "parse_consumer_lag",
    "register_process_metrics",
]
