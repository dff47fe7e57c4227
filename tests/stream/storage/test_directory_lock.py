"""The directory lock across real processes: one holder at a time, released even by kill -9."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from stream.storage.directory_lock import DirectoryBusy, DirectoryLock

HOLD = """
import sys, time
from stream.storage.directory_lock import DirectoryLock
lock = DirectoryLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_a_second_process_is_refused_until_the_holder_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DirectoryBusy) as busy:
            DirectoryLock(tmp_path).acquire()
        assert busy.value.holder == str(holder.pid)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    # The kernel dropped the dead holder's lock; a second lock in one process is refused too.
    with DirectoryLock(tmp_path), pytest.raises(DirectoryBusy):
        DirectoryLock(tmp_path).acquire()
    with DirectoryLock(tmp_path):
        pass
