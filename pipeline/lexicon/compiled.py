"""A lexicon set, once checked and compiled, kept on disk so the next process loads it in milliseconds.

Checking a lexicon folder tokenises every phrase (by spaCy's rules, text.py) and lemmatises it with pymorphy3,
and checks every term: about 0.3 s, more where a phrase needs spaCy itself (a second to load). The checked set
(files, matcher and all) is stored under a key made of everything its compiled form depends on: the files'
names and bytes, the folder, the code that checks and compiles them, and the versions of the libraries that
tokenise and validate.
Change any of them and the key changes, so a stale set is never read; a file that cannot be read back is
ignored and rebuilt. Only the checked result is stored: a folder that fails its checks is refused every time.

Where: `$CALLQA_CACHE_DIR/lexicons` (default `$XDG_CACHE_HOME/callqa`, else `~/.cache/callqa`);
`CALLQA_CACHE_DIR=off` keeps nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.support.fileio import write_bytes_atomic

if TYPE_CHECKING:
    from pipeline.lexicon.loader import LexiconSet

__all__ = ["cache_folder", "compiled_key", "read_compiled", "write_compiled"]

logger = logging.getLogger(__name__)

# What the compiled set is made with besides the files: the libraries that tokenise, lemmatise and validate.
_LIBRARIES = ("spacy", "pymorphy3", "pymorphy3-dicts-ru", "num2words", "pydantic", "pydantic-core")
# The code that checks and compiles a set (this package and the text helpers it uses).
_CODE = sorted(Path(__file__).resolve().parent.glob("*.py")) + [
    Path(__file__).resolve().parents[1] / "support" / "yamlfile.py"]


def cache_folder() -> Path | None:
    """Where compiled lexicon sets are kept (None: keep none)."""
    configured = os.environ.get("CALLQA_CACHE_DIR")
    if configured == "off":
        return None
    if configured:
        return Path(configured) / "lexicons"
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no home directory (a bare service account): keep nothing
            return None
    return Path(base) / "callqa" / "lexicons"


def _library_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def compiled_key(folder: Path, files_version: str) -> str:
    """The name a compiled set is stored under: it changes with anything the compiled set depends on."""
    digest = hashlib.sha256()
    parts = [str(folder.resolve()), files_version, sys.version, *(f"{name}={_library_version(name)}"
                                                                  for name in _LIBRARIES)]
    for part in parts:
        digest.update(part.encode() + b"\0")
    for path in _CODE:
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


def read_compiled(key: str) -> LexiconSet | None:
    """The set stored under `key`, or None (none stored, caching off, or a file that cannot be read back)."""
    folder = cache_folder()
    if folder is None:
        return None
    path = folder / f"{key}.pickle"
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        return pickle.loads(data)  # written by write_compiled into the user's own cache folder
    except Exception as error:  # a truncated or foreign file: rebuild rather than fail the command
        logger.debug("compiled lexicon set %s unreadable (%s): rebuilding it", path, error)
        return None


def write_compiled(key: str, lexicon_set: LexiconSet) -> None:
    """Store a checked set under `key`; a cache folder that cannot be written only costs the next load time."""
    folder = cache_folder()
    if folder is None:
        return
    try:
        write_bytes_atomic(folder / f"{key}.pickle", pickle.dumps(lexicon_set, protocol=pickle.HIGHEST_PROTOCOL))
    except OSError as error:
        logger.debug("compiled lexicon set not kept in %s: %s", folder, error)
