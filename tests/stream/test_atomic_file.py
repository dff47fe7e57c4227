import pytest

from stream.atomic_file import atomic_text_writer


def test_the_new_text_replaces_the_file_and_no_temporary_file_is_left(tmp_path):
    target = tmp_path / "sub" / "state.json"
    with atomic_text_writer(target) as f:
        f.write("first\n")
    with atomic_text_writer(target) as f:
        f.write("second\n")
    assert target.read_text() == "second\n"
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_a_failed_write_leaves_the_old_content_and_no_temporary_file(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_text_writer(target) as f:
        f.write("half of the new")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
