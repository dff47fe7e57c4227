"""Pass directories: pruning by pass index keeps the pass just exported and never a later one."""

from __future__ import annotations

from stream.config.pipeline import load_config
from stream.trainer.exporter import LATEST_FILE, ModelExporter, exported_pass_indices, pass_dir_name
from stream.trainer.manifest import PassManifest
from stream.trainer.training_model import TrainingModel


def small_model() -> TrainingModel:
    config = load_config(
        overrides={"embedding_store": {"budget_bytes": 1 << 20, "dim": 4}, "model": {"tower_hidden": [8]}}, environ={}
    )
    return TrainingModel.fresh(config.schema, config.model, config.embedding_store)


def manifest(pass_index: int) -> PassManifest:
    return PassManifest(pass_index, "t", [], 0, 0, 0, 0, 0, None)


def test_pruning_keeps_the_newest_passes_by_index_and_never_the_one_just_exported(tmp_path):
    """Issue 12 case 6: with pass-000000020..24 of an older run present, a run restarted at pass 0
    pruned by name order and deleted the directory LATEST had just been pointed at."""
    for index in range(20, 25):
        (tmp_path / pass_dir_name(index)).mkdir()
    (tmp_path / "pass-notes").mkdir()  # not a pass directory: never touched
    exporter = ModelExporter(tmp_path, keep=3)
    model = small_model()
    for index in range(4):
        exporter.export(model, manifest(index))
        assert (tmp_path / (tmp_path / LATEST_FILE).read_text().strip()).is_dir()
    assert exported_pass_indices(tmp_path) == [1, 2, 3, 20, 21, 22, 23, 24]
    assert (tmp_path / "pass-notes").is_dir()
