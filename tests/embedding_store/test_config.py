import pytest

from embedding_store import EmbeddingTable, TableConfig


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("dim", 0, "dim must be an int > 0"),
        ("budget_bytes", -1, "budget_bytes must be an int > 0"),
        ("high_watermark", 1.5, "high_watermark must satisfy"),
        ("low_watermark", 0.99, "high_watermark must satisfy"),
        ("score_decay", 0.0, "score_decay must be in"),
        ("admission_probability", 0.0, "admission_probability must be in"),
        ("admission_min_count", 0, "admission_min_count must be an int > 0"),
        ("feature_limits", {"item_id": -1}, "feature_limits.item_id must be an int >= 0"),
        ("ttl_ms", -5, "ttl_ms must be an int >= 0"),
        ("min_updates", 70000, "min_updates must be <= 65535"),
        ("learning_rate", 0.0, "learning_rate must be > 0"),
        ("index_load_factor", 0.9, "index_load_factor must be in"),
        ("snapshot_every_passes", 0, "snapshot_every_passes must be an int > 0"),
    ],
)
def test_bad_values_name_the_field(field, value, message):
    with pytest.raises(ValueError, match="^" + message):
        TableConfig(**{field: value})


def test_budget_too_small_for_one_row():
    with pytest.raises(ValueError, match="budget_bytes must hold at least one row"):
        EmbeddingTable(TableConfig(budget_bytes=300))


def test_capacity_is_derived_from_the_budget_and_fits_in_it():
    for budget in (10_000, 1 << 20, 64 << 20):
        for row_wise in (True, False):
            config = TableConfig(
                budget_bytes=budget,
                row_wise_adagrad=row_wise,
                admission_min_count=2,
                admission_filter_bytes=min(4096, budget // 10),
            )
            table = EmbeddingTable(config)
            row_arrays = sum(array.nbytes for array in table.rows.as_dict().values())
            spare_keys = 16  # two padding keys read by the index
            arrays = row_arrays - spare_keys + table.index.nbytes + table.admission_filter.nbytes
            assert arrays == table.layout.allocated_bytes <= budget
            assert table.layout.allocated_bytes > 0.98 * budget - 4096 - 512


def test_feature_tag_collision_is_refused():
    from embedding_store.keys import feature_tag

    seen = {}
    for i in range(100_000):
        name = f"f{i}"
        tag = feature_tag(name)
        if tag in seen:
            pair = [seen[tag], name]
            break
        seen[tag] = name
    with pytest.raises(ValueError, match="share key tag"):
        EmbeddingTable(TableConfig(features=pair))
