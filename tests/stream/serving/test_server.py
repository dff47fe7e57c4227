"""`pepnet serve --wait` starts once the trainer has exported; without an export it fails in one line."""

from __future__ import annotations

import threading

import pytest

from stream.scoring.model_files import ModelFileError
from stream.serving.server import wait_for_first_pass
from tests.stream.scoring.model_dirs import PassWriter


def test_waits_for_the_first_pass(tmp_path):
    writer = PassWriter(tmp_path / "model")
    waiter = threading.Thread(target=wait_for_first_pass, args=(tmp_path / "model", 0.01), daemon=True)
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # nothing exported yet
    writer.write_pass()
    waiter.join(60)
    assert not waiter.is_alive()


def test_does_not_wait_for_a_damaged_export(tmp_path):
    (tmp_path / "LATEST").write_text("pass-000000003\n")
    with pytest.raises(ModelFileError, match="does not exist"):
        wait_for_first_pass(tmp_path, 0.01)


def test_without_wait_a_missing_export_is_one_line(pepnet_cli, tmp_path):
    done = pepnet_cli("serve", "--model-dir", str(tmp_path / "nothing"), "--port", "0")
    assert done.returncode == 2
    assert (
        done.stderr.strip().splitlines()[-1]
        == f"error: {tmp_path / 'nothing'} has no LATEST file: nothing exported there yet"
    )
