"""Each worker process's folder of fetched recordings, and the sweep of those left by a killed worker.

A worker removes its folder when the run unregisters its plugin. A worker that is killed (out of memory, the
operator's kill, a crashed run) never gets that far, and its folder, sometimes with a recording in it, would
stay in the temporary folder for good: personal data nobody looks after, and one more folder a night. So the
folder's name carries the process id, and each worker, when it makes its own, first removes those of processes
that are gone. The temporary folder is per machine, and so is a process id: a worker only ever sweeps what
workers of its own machine left.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["PREFIX", "make_recordings_folder", "sweep_orphaned"]

logger = logging.getLogger(__name__)

PREFIX = "callqa-recordings-"


def make_recordings_folder(run_id: str, parent: Path | None = None) -> Path:
    """A new folder for this process's recordings in `run_id` (under the temporary folder unless `parent`), made
    after sweeping the folders of dead processes."""
    parent = parent or Path(tempfile.gettempdir())
    sweep_orphaned(parent)
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-{run_id}-", dir=parent))


def sweep_orphaned(parent: Path) -> list[Path]:
    """Remove the recordings folders under `parent` whose process is gone; returns them."""
    removed = []
    for folder in parent.glob(f"{PREFIX}*"):
        pid = folder.name[len(PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)) or not folder.is_dir() or folder.is_symlink():
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    if removed:
        logger.info("removed %d recordings folder(s) left by workers that were killed", len(removed))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and belongs to another user
        return True
    return True
