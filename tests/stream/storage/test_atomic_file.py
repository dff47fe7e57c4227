import os
import stat

import pytest

from stream.storage.atomic_file import atomic_directory, atomic_text_writer


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


def test_a_directory_replaces_the_old_one_whole_and_no_temporary_is_left(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_directory(target) as d:
        (d / "a.bin").write_bytes(b"old")
        (d / "sub").mkdir()
        (d / "sub" / "b.bin").write_bytes(b"old")
    with atomic_directory(target) as d:
        (d / "a.bin").write_bytes(b"new")
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == ["a.bin"]
    assert (target / "a.bin").read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_a_failed_directory_write_leaves_the_old_directory_and_no_temporary(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_directory(target) as d:
        (d / "a.bin").write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_directory(target) as d:
        (d / "a.bin").write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert (target / "a.bin").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_files_and_directories_are_readable_by_other_users_under_a_normal_umask(tmp_path, umask_022):
    with atomic_text_writer(tmp_path / "LATEST") as f:
        f.write("pass-000000001")
    with atomic_directory(tmp_path / "pass-000000001") as directory:
        (directory / "model.json").write_text("{}")
    assert stat.S_IMODE((tmp_path / "LATEST").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "pass-000000001").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "pass-000000001" / "model.json").stat().st_mode) == 0o644


def test_a_strict_umask_is_honoured(tmp_path):
    previous = os.umask(0o077)
    try:
        with atomic_text_writer(tmp_path / "secret") as f:
            f.write("x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
