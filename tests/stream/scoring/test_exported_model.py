import json

import pytest

from stream.config.errors import UserError
from stream.events.formats import encode
from stream.scoring.exported_model import ExportedModel, score_stream
from stream.scoring.inputs import read_topic
from stream.trainer.loop import IncrementalTrainer, RunOptions, TrainerPaths
from tests.stream.trainer.kafka_samples import fill_samples_topic, simulated_samples, small_config


@pytest.mark.kafka
def test_exported_model_scores_like_the_trainer(pipeline_config, tmp_path, pepnet_cli):
    config = small_config(pipeline_config)
    samples = simulated_samples(config, 1200)
    fill_samples_topic(config, samples[:1000])
    trainer = IncrementalTrainer(config, TrainerPaths.from_config(config, str(tmp_path / "run")))
    trainer.run(RunOptions(stop_at_end=True))
    exported = ExportedModel.load(tmp_path / "run" / "model")
    held_out = samples[1000:]
    scored = exported.score([s.impression for s in held_out])
    # The export holds exactly the trained model: same predictions as the trainer's own step.
    expected = trainer.model.step.score(exported.batcher.build(held_out))
    assert [list(s.probabilities.values()) for s in scored] == expected.tolist()
    # And through the CLI, from a JSONL file of impressions.
    path = tmp_path / "impressions.jsonl"
    path.write_text("".join(encode(s.impression).decode() + "\n" for s in held_out))
    done = pepnet_cli("score", "--model-dir", str(tmp_path / "run" / "model"), "--input", str(path))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["impression_id"] for line in lines] == [s.sample_id for s in held_out]
    assert lines[0]["probabilities"] == pytest.approx(scored[0].probabilities)
    # From a topic: the samples topic itself, first 50 messages.
    topic = read_topic(config.kafka, config.kafka.topics.samples.name, exported.model.schema, limit=50)
    from_topic = list(score_stream(exported, topic))
    assert len(from_topic) == 50 and all(0.0 < p < 1.0 for s in from_topic for p in s.probabilities.values())


def test_missing_export_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="LATEST"):
        ExportedModel.load(tmp_path)
