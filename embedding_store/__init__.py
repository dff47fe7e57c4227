"""Global shared embedding table: every sparse ID in one byte-budgeted, score-evicted table.

Pure numpy; imports nothing else of the project. See ``table.EmbeddingTable`` for the API.
"""

from embedding_store.config import TableConfig
from embedding_store.eviction import EvictionReason
from embedding_store.export import ExportRecord
from embedding_store.keys import feature_keys, string_value_id
from embedding_store.stats import PassEndReport, TableStats
from embedding_store.table import EmbeddingTable

__all__ = [
    "EmbeddingTable",
    "EvictionReason",
    "ExportRecord",
    "PassEndReport",
    "TableConfig",
    "TableStats",
    "feature_keys",
    "string_value_id",
]
