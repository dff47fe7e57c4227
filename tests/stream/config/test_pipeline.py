"""Loading and validating the pipeline configuration."""

from pathlib import Path

import pytest

from stream.config.pipeline import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_default_config_loads_into_typed_sections():
    config = load_config(environ={})
    assert config.schema.task_names[0] == "click"
    assert config.kafka.topics.impressions.partitions == config.kafka.topics.actions.partitions
    assert config.embedding_store.budget_bytes > 0
    assert isinstance(config.trainer.batch_size, int)


def test_file_is_merged_over_defaults(tmp_path):
    config = load_config(write(tmp_path, "trainer:\n  batch_size: 64\n"), environ={})
    assert config.trainer.batch_size == 64
    assert config.trainer.pass_samples == load_config(environ={}).trainer.pass_samples


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("trainer:\n  batch_sise: 64\n", "trainer.batch_sise: unknown key"),
        ("kafka:\n  topics:\n    samples:\n      partitions: -1\n", "kafka.topics.samples.partitions: must be > 0"),
        ("embedding_store:\n  budget_bytes: 0\n", "embedding_store.budget_bytes: must be an int > 0, got 0"),
        ("trainer:\n  batch_size: many\n", "trainer.batch_size = 'many': expected an integer"),
        ("model:\n  architecture: transformer\n", "model.architecture = 'transformer': expected one of"),
        ("schema:\n  tasks: []\n", "schema.tasks: must name at least one task"),
        ("trainer: [1, 2]\n", "trainer = [1, 2]: expected a mapping"),
        ("simulator:\n  task_rates: {like: 2}\n", "simulator.task_rates.like: must be in (0, 1), got 2.0"),
        ("simulator:\n  seed: -1\n", "simulator.seed: must be >= 0, got -1"),
        ("embedding_store:\n  feature_limits: {tags: 5}\n", "embedding_store.feature_limits.tags: unknown feature"),
        ("embedding_store:\n  features: [item_id, colour]\n", "embedding_store.features.colour: unknown feature"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, expected):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), environ={})
    message = str(err.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_value_errors_name_the_full_key_and_value(tmp_path):
    with pytest.raises(ConfigError, match=r"^embedding_store\.budget_bytes: .*0"):
        load_config(write(tmp_path, "embedding_store:\n  budget_bytes: 0\n"), environ={})


def test_invalid_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "trainer: [\n"), environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_environment_overrides_leaf_keys():
    config = load_config(environ={"PEPNET_KAFKA_BOOTSTRAP": "broker:9092", "PEPNET_TRAINER_BATCH_SIZE": "128"})
    assert config.kafka.bootstrap == "broker:9092"
    assert config.trainer.batch_size == 128


def test_environment_override_is_type_checked():
    with pytest.raises(ConfigError, match="trainer.batch_size"):
        load_config(environ={"PEPNET_TRAINER_BATCH_SIZE": "lots"})


def test_an_environment_variable_naming_no_key_of_a_section_is_refused():
    with pytest.raises(ConfigError, match=r"^PEPNET_TRAINER_BATCHSIZE: names no config key"):
        load_config(environ={"PEPNET_TRAINER_BATCHSIZE": "128"})
    # Variables outside the config's sections (e.g. the tests' own) are not the loader's business.
    assert load_config(environ={"PEPNET_TEST_KAFKA_BOOTSTRAP": "b:1"}).kafka.bootstrap == ""
