import pytest

from stream.trainer.loop import IncrementalTrainer, RunOptions, TrainerPaths, read_manifests
from stream.trainer.replay import ReplayRange, replay, resolve_range
from stream.trainer.sample_reader import partition_offsets
from tests.stream.trainer.kafka_samples import fill_samples_topic, simulated_samples, small_config

pytestmark = pytest.mark.kafka


def test_time_range_backfill_reproduces_live_manifests(pipeline_config, tmp_path):
    span_ms = 2_000  # event-time windows of 2 s (the simulator makes 200 impressions/s)
    config = small_config(pipeline_config, pass_samples=300, pass_event_time_ms=span_ms)
    samples = simulated_samples(config, 2000)
    fill_samples_topic(config, samples)
    live_dir = tmp_path / "live"
    IncrementalTrainer(config, TrainerPaths.from_config(config, str(live_dir))).run(RunOptions(stop_at_end=True))
    live = read_manifests(live_dir)
    first = samples[0].impression.event_time_ms
    start = (first // span_ms + 2) * span_ms  # a window boundary inside the run
    end = start + 3 * span_ms
    summary = replay(config, tmp_path / "replay", ReplayRange(from_time_ms=start, to_time_ms=end), progress=False)
    backfilled = read_manifests(tmp_path / "replay")
    in_range = [m for m in live if m.window_start_ms is not None and start <= m.window_start_ms < end]
    assert len(in_range) >= 3
    assert [m.content() for m in backfilled] == [m.content() for m in in_range]
    assert summary.next_pass == len(backfilled)


def test_replay_refuses_to_mix_into_an_existing_run(pipeline_config, tmp_path):
    from stream.config.errors import UserError

    config = small_config(pipeline_config)
    fill_samples_topic(config, simulated_samples(config, 300))
    replay(config, tmp_path / "r", ReplayRange(), progress=False)
    with pytest.raises(UserError, match="--continue"):
        replay(config, tmp_path / "r", ReplayRange(), progress=False)
    again = replay(config, tmp_path / "r", ReplayRange(), continue_model=True, progress=False)
    assert again.resumed_from_pass is not None and again.passes


def test_offset_range_defaults_to_the_watermarks_and_never_ends_before_it_starts(pipeline_config):
    config = small_config(pipeline_config)
    topic = config.kafka.topics.samples.name
    fill_samples_topic(config, simulated_samples(config, 300))
    marks = partition_offsets(config.kafka, topic)
    busiest = max(marks, key=lambda p: marks[p][1] - marks[p][0])
    first = marks[busiest][0] + 5
    span = ReplayRange(from_offsets={busiest: first}, to_offsets={busiest: first - 3})
    start, end = resolve_range(config.kafka, topic, span)
    assert start == {p: first if p == busiest else low for p, (low, _high) in marks.items()}
    assert end == {p: first if p == busiest else high for p, (_low, high) in marks.items()}


def test_replay_range_rejects_reversed_times():
    with pytest.raises(ValueError, match="to_time_ms"):
        ReplayRange(from_time_ms=10, to_time_ms=5)
