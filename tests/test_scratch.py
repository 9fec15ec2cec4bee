"""The workers' folders of fetched recordings: a killed worker's folder is swept by the next worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipeline.batch.scratch import PREFIX, host_tag, make_recordings_folder, sweep_orphaned


def _dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: the id names no process now
    return gone.pid


def test_a_new_folder_sweeps_those_of_processes_that_are_gone_and_nothing_else(tmp_path: Path) -> None:
    gone = _dead_pid()
    killed = tmp_path / f"{PREFIX}{gone}@{host_tag()}+20261205T010000-abc123-x1"
    (killed / "call-1").mkdir(parents=True)
    (killed / "call-1" / "recording.mp3").write_bytes(b"personal data")
    running = tmp_path / f"{PREFIX}{os.getpid()}@{host_tag()}+20261205T010000-abc123-x2"  # a live worker's, in use
    running.mkdir()
    # Another machine's worker (a shared temporary folder): its process id means nothing here.
    elsewhere = tmp_path / f"{PREFIX}{gone}@{host_tag()}-2+20261205T010000-abc123-x3"
    unrelated = [elsewhere, tmp_path / f"{PREFIX}notes", tmp_path / "callqa-copy-x"]
    for folder in unrelated:
        folder.mkdir()

    made = make_recordings_folder("20261205T020000-def456", tmp_path)

    assert not killed.exists()
    assert running.is_dir() and all(folder.is_dir() for folder in unrelated)
    assert made.is_dir() and made.parent == tmp_path
    assert made.name.startswith(f"{PREFIX}{os.getpid()}@{host_tag()}+20261205T020000-def456-")
    assert sweep_orphaned(tmp_path) == []  # its own folder is not an orphan
