"""Running `callqa` as a user does: a real subprocess of the installed command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CALLQA = Path(sys.executable).with_name("callqa")


def run_callqa(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(CALLQA), *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "CALLQA_DEVICE": "cpu", **(env or {})}, cwd=cwd)
