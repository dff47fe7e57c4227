"""Model directories written the way the trainer writes them, without Kafka: a few trained passes."""

from __future__ import annotations

from pathlib import Path

from stream.config.pipeline import PipelineConfig, load_config
from stream.events.batching import SampleBatcher
from stream.events.formats import LabelledSample
from stream.simulator.generator import EventSimulator
from stream.trainer.exporter import ModelExporter
from stream.trainer.manifest import PassManifest
from stream.trainer.training_model import TrainingModel

SMALL_MODEL = {
    "embedding_store": {"budget_bytes": 2 * 1024 * 1024, "dim": 8, "snapshot_every_passes": 4, "keep_snapshots": 3},
    "model": {"tower_hidden": [32], "gate_hidden": 16, "bottom_hidden": [32], "expert_hidden": [32]},
    "monitoring": {"enabled": False},
    "trainer": {"keep_exports": 20},
}


class PassWriter:
    """Trains a small model on simulated samples and exports one pass per ``write_pass`` call."""

    def __init__(self, model_dir: Path, samples_per_pass: int = 300, **table: object) -> None:
        overrides = dict(SMALL_MODEL)
        overrides["embedding_store"] = {**SMALL_MODEL["embedding_store"], **table}
        self.config: PipelineConfig = load_config(overrides=overrides, environ={})
        self.model = TrainingModel.fresh(self.config.schema, self.config.model, self.config.embedding_store)
        self.exporter = ModelExporter(model_dir, keep=20)
        self.batcher = SampleBatcher(self.config.schema)
        simulator = EventSimulator(self.config.simulator, self.config.schema)
        self.samples: list[LabelledSample] = [s for s, _ in simulator.labelled_samples(samples_per_pass * 12, 300_000)]
        self.samples_per_pass = samples_per_pass
        self.next_pass = 0

    def write_pass(self) -> int:
        """Train the next pass's samples, end the pass in the table, export it; returns its index."""
        index = self.next_pass
        chunk = self.samples[index * self.samples_per_pass : (index + 1) * self.samples_per_pass]
        for start in range(0, len(chunk), 100):
            self.model.step.step(self.batcher.build(chunk[start : start + 100]))
        event_time = max(s.impression.event_time_ms for s in chunk)
        self.model.table.end_pass(index, event_time)
        manifest = PassManifest(index, "offline", [], len(chunk), 0, len(chunk), event_time, event_time, None)
        self.exporter.export(self.model, manifest)
        self.next_pass += 1
        return index

    def held_out(self, n: int = 64) -> list[LabelledSample]:
        """Samples no pass trains on (the end of the simulated stream)."""
        return self.samples[-n:]
