"""Each worker process's folder of fetched recordings, and the sweep of those left by a killed worker.

A worker removes its folder when the run unregisters its plugin. A worker that is killed (out of memory, the
operator's kill, a crashed run) never gets that far, and its folder, sometimes with a recording in it, would
stay in the temporary folder for good: personal data nobody looks after, and one more folder a night. So the
folder's name carries the process id and the machine's name (`callqa-recordings-<pid>@<host>+<run id>-...`), and
each worker, when it makes its own, first removes those of its machine's processes that are gone. A process id
means something only on its own machine (or container), so a temporary folder shared with others is safe: their
folders are never touched.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

__all__ = ["PREFIX", "host_tag", "make_recordings_folder", "sweep_orphaned"]

logger = logging.getLogger(__name__)

PREFIX = "callqa-recordings-"


def make_recordings_folder(run_id: str, parent: Path | None = None) -> Path:
    """A new folder for this process's recordings in `run_id` (under the temporary folder unless `parent`), made
    after sweeping the folders of dead processes."""
    parent = parent or Path(tempfile.gettempdir())
    sweep_orphaned(parent)
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}@{host_tag()}+{run_id}-", dir=parent))


def sweep_orphaned(parent: Path) -> list[Path]:
    """Remove the recordings folders under `parent` of this machine's processes that are gone; returns them."""
    removed = []
    host = host_tag()
    for folder in parent.glob(f"{PREFIX}*@*+*"):
        pid, _, rest = folder.name[len(PREFIX):].partition("@")
        if (not pid.isdigit() or rest.partition("+")[0] != host or _alive(int(pid)) or not folder.is_dir()
                or folder.is_symlink()):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    if removed:
        logger.info("removed %d recordings folder(s) left by workers that were killed", len(removed))
    return removed


def host_tag() -> str:
    """This machine's name as the folders carry it: never "@" or "+", which separate the parts."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and belongs to another user
        return True
    return True
