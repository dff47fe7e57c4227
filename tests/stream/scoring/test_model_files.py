"""Exports are verified before use, and a reader takes exactly the pass LATEST names (issue 12, 4-5)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stream.scoring.exported_model import ExportedModel
from stream.scoring.model_files import ModelFileError, latest_pass
from stream.trainer.exporter import TABLE_DIR
from tests.stream.scoring.model_dirs import PassWriter


def scores(model: ExportedModel, samples) -> np.ndarray:
    return np.array([list(s.probabilities.values()) for s in model.score([x.impression for x in samples])])


@pytest.fixture
def two_passes(tmp_path):
    writer = PassWriter(tmp_path)
    writer.write_pass()
    writer.write_pass()
    return writer, tmp_path / "pass-000000001"


def test_a_bit_flip_in_the_dense_weights_is_refused(two_passes):
    _, pass_dir = two_passes
    data = bytearray((pass_dir / "dense.pt").read_bytes())
    data[len(data) // 3] ^= 0x01
    (pass_dir / "dense.pt").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="dense.pt fails its checksum") as error:
        ExportedModel.load(pass_dir.parent)
    assert error.value.reason == "damaged" and "\n" not in str(error.value)


def test_a_truncated_file_is_refused(two_passes):
    _, pass_dir = two_passes
    data = (pass_dir / "dense.pt").read_bytes()
    (pass_dir / "dense.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="fails its checksum"):
        ExportedModel.load(pass_dir.parent)


def test_a_model_json_that_no_longer_matches_is_one_line(two_passes):
    _, pass_dir = two_passes
    description = json.loads((pass_dir / "model.json").read_text())
    description["model"]["tower_hidden"] = [64, 8]
    (pass_dir / "model.json").write_text(json.dumps(description))
    with pytest.raises(ModelFileError, match="model.json fails its checksum"):
        ExportedModel.load(pass_dir.parent)
    # Even with checksums rewritten to match, the weights no longer fit: one line, not a traceback.
    from stream.storage.checksums import write_checksums

    (pass_dir / "CHECKSUMS.json").unlink()
    write_checksums(pass_dir, {"format": 1, "pass_index": 1})
    with pytest.raises(ModelFileError, match="dense weights do not match model.json") as error:
        ExportedModel.load(pass_dir.parent)
    assert "\n" not in str(error.value)


def test_scoring_uses_the_table_of_the_pass_latest_names(two_passes):
    writer, pass_dir = two_passes
    held_out = writer.held_out()
    before = scores(ExportedModel.load(pass_dir.parent), held_out)
    # A crash between the table export of pass 2 and its pass directory + LATEST.
    writer.write_pass()
    model_dir = pass_dir.parent
    import shutil

    shutil.rmtree(model_dir / "pass-000000002")
    (model_dir / "LATEST").write_text("pass-000000001\n")
    assert (model_dir / TABLE_DIR / "delta-000000002.npz").exists()
    loaded = ExportedModel.load(model_dir)
    assert loaded.pass_index == 1
    assert scores(loaded, held_out).tobytes() == before.tobytes()


@pytest.mark.parametrize("pointer", ["../elsewhere", "/etc", "pass-1", "pass-000000001/../../x"])
def test_latest_must_name_a_pass_directory_of_the_model_dir(two_passes, pointer):
    _, pass_dir = two_passes
    (pass_dir.parent / "LATEST").write_text(pointer + "\n")
    with pytest.raises(ModelFileError) as error:
        latest_pass(pass_dir.parent)
    assert error.value.reason == "outside_model_dir"


def test_a_pass_directory_that_is_a_symlink_is_not_followed(two_passes, tmp_path_factory):
    _, pass_dir = two_passes
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "pass-000000001"
    pass_dir.rename(elsewhere)
    pass_dir.symlink_to(elsewhere)
    with pytest.raises(ModelFileError) as error:
        latest_pass(pass_dir.parent)
    assert error.value.reason == "outside_model_dir"


@pytest.mark.parametrize(
    "table_dirs, accepted",
    [(["table/shard-0-of-2", "table/shard-1-of-2"], True), (["table/../../etc"], False), (["elsewhere"], False),
     (["table/shard-0-of-2/x"], False), (["/table"], False)],
)  # fmt: skip
def test_shard_directories_must_lie_in_the_table_directory(two_passes, table_dirs, accepted):
    from stream.storage.checksums import write_checksums

    _, pass_dir = two_passes
    description = json.loads((pass_dir / "model.json").read_text())
    description["table_dirs"] = table_dirs
    (pass_dir / "model.json").write_text(json.dumps(description))
    (pass_dir / "CHECKSUMS.json").unlink()
    write_checksums(pass_dir, {"format": 1, "pass_index": 1})
    if accepted:
        assert latest_pass(pass_dir.parent).table_dirs == table_dirs
    else:
        with pytest.raises(ModelFileError, match="names table directory") as error:
            latest_pass(pass_dir.parent)
        assert error.value.reason == "outside_model_dir"
