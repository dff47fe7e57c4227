"""Global shared embedding table: every sparse ID in one byte-budgeted, score-evicted table.

numpy, plus torch to de-duplicate gradient rows (torch tensors are accepted where gradients come
in); imports nothing else of the project. ``EmbeddingTable`` (table.py) is the implementation of
the interface that the rest of the project depends on (interface.py: ``EmbeddingRows`` for a
training step, ``EmbeddingTableInterface`` for the trainer); one concept per module:

* keys.py: (feature, value) -> uint64 key with the feature's 16-bit tag on top; collision figures.
* layout.py: the byte budget split into preallocated arrays (capacity derived at construction).
* index.py: vectorised open addressing, key -> slot. row_access.py: fast row gather/scatter.
* admission.py: counting filter (k sightings) and probabilistic admission.
* score.py: decayed show/positive score. eviction.py: TTL, min-updates, lowest scores (no sort).
* adagrad.py: de-duplicated sparse AdaGrad. row_init.py: new rows from key + seed.
* table_state.py: the table's state as data (``RowArrays``, ``TableCounters``).
* table_files.py: the full state in one file, and exports of a table, iterating that state.
* table_checkpoint.py: incremental checkpoints (a base, then increments of what changed).
* export.py + npz_file.py: snapshot/delta export files, atomic, checksummed, no pickle.
* inputs.py: checks of the keys, slots and event times callers pass in.
* stats.py: ``TableStats`` and ``PassEndReport``.
"""

from embedding_store.config import TableConfig
from embedding_store.eviction import EvictionReason
from embedding_store.export import ExportRecord
from embedding_store.interface import EmbeddingRows, EmbeddingTableInterface
from embedding_store.keys import feature_keys, string_value_id
from embedding_store.stats import PassEndReport, TableStats
from embedding_store.table import EmbeddingTable

__all__ = [
    "EmbeddingRows",
    "EmbeddingTable",
    "EmbeddingTableInterface",
    "EvictionReason",
    "ExportRecord",
    "PassEndReport",
    "TableConfig",
    "TableStats",
    "feature_keys",
    "string_value_id",
]
