"""Re-scoring result files (`callqa rescore`): each file read, derived again and compared, in this process or in
worker processes.

    files = SetupFiles(lexicons, scorecard, config)
    for outcome in rescore_files(paths, files, files.load(), write=True, workers=4):
        ...   # in the order of `paths`

Re-scoring is pure computation on one core per call (bench/rescore.py), so a folder of thousands of results is
shared out among processes, one per core by default. Each worker process loads the lexicons and the scorecard
itself from the same files (`SetupFiles`), once; the calling process has loaded and checked them first, so a bad
lexicon is refused before any result is read.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pipeline.derive import DeriveSetup, derive
from pipeline.errors import CallqaError
from pipeline.reviews import Review, parse_reviews, reviews_in
from pipeline.schema import CallResult
from pipeline.scoring.diff import ResultDiff, diff_results, read_result
from pipeline.support.collector import settle_for_batch
from pipeline.support.cores import available_cores
from pipeline.support.fileio import write_text_atomic
from pipeline.transcript import Transcript

__all__ = ["FileRescore", "SetupFiles", "rescore_files", "worker_count"]

# Below this many files a worker process costs more (starting it, importing, loading the lexicons: about 3 s)
# than it saves (a file takes about 15 ms).
FILES_PER_WORKER = 200
_CHUNK = 16  # files handed to a worker at once: few round trips, and the order kept cheaply


@dataclass(frozen=True)
class SetupFiles:
    """Where the lexicons, the scorecard and the settings come from: what a worker process loads."""

    lexicons: Path | None = None
    scorecard: Path | None = None
    config: Path | None = None

    def load(self) -> DeriveSetup:
        """The setup these files give (the settings' lexicons and scorecard where none is named).

        Raises:
            DefinitionError: a lexicon file or the scorecard is invalid (with file and line).
        """
        from pipeline.settings import load_settings

        settings = load_settings(self.config)
        return DeriveSetup.load(self.lexicons or settings.lexicons, self.scorecard or settings.scorecard,
                                settings=settings)


@dataclass(frozen=True)
class FileRescore:
    """One file re-scored: what changed, or why it could not be read (`error`, then `difference` is None)."""

    path: Path
    difference: ResultDiff | None = None
    error: str | None = None


def worker_count(files: int, requested: int | None = None) -> int:
    """Processes to re-score `files` files in: as requested, else one per core this process may use, but no more
    than one per FILES_PER_WORKER files (1: in this process)."""
    if requested is not None:
        return max(1, min(requested, files))
    return max(1, min(available_cores(), files // FILES_PER_WORKER))


def rescore_files(paths: Sequence[Path], files: SetupFiles, setup: DeriveSetup, *, write: bool,
                  out: Path | None = None, workers: int = 1,
                  advance: Callable[[int], None] | None = None) -> Iterator[FileRescore]:
    """Re-score each result file, yielding in the order of `paths`.

    Args:
        paths: result files.
        files: where `setup` was loaded from, for worker processes to load it too.
        setup: the loaded setup (used in this process when `workers` is 1).
        write: write each re-scored result (in place, or into `out`); False: compare only.
        workers: processes; 1 re-scores in this process.
        advance: called with the number of files done since it was last called (for a progress bar).
    """
    if workers <= 1:
        for path in paths:
            yield rescore_file(path, setup, write=write, out=out)
            if advance:
                advance(1)
        return
    # "spawn": a fresh interpreter per worker, never a fork of this one with whatever threads it holds.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(files,)) as pool:
        for outcome in pool.map(_rescore_in_worker, paths, [write] * len(paths), [out] * len(paths),
                                chunksize=_CHUNK):
            yield outcome
            if advance:
                advance(1)


def rescore_file(path: Path, setup: DeriveSetup, *, write: bool, out: Path | None = None) -> FileRescore:
    """Read one result, derive it again with `setup` (people's reviews kept), compare, and write it if asked."""
    try:
        before = read_result(path)
        reviews = reviews_of(path, before)
    except CallqaError as error:
        return FileRescore(path, error=str(error))
    after = derive(Transcript.from_result(before), setup, reviews)
    if write:
        write_text_atomic((out / path.name) if out else path, after.to_json())
    return FileRescore(path, difference=diff_results(before, after))


def reviews_of(path: Path, result: CallResult) -> list[Review]:
    """People's reviews of the call, which re-scoring keeps: a result in a folder store (`calls/<id>/result.json`)
    has the whole list beside it (`reviews.json`); a result file elsewhere, those it applied."""
    beside = path.parent / "reviews.json"
    if path.name == "result.json" and beside.is_file():
        return parse_reviews(beside.read_bytes(), where=str(beside))
    return reviews_in(result)


_worker_setup: DeriveSetup | None = None  # a worker process's own setup, loaded once by _start_worker


def _start_worker(files: SetupFiles) -> None:
    global _worker_setup
    _worker_setup = files.load()
    settle_for_batch()  # what was loaded lives as long as the process: keep it out of the collector's scans


def _rescore_in_worker(path: Path, write: bool, out: Path | None) -> FileRescore:
    assert _worker_setup is not None, "a worker process re-scores only after _start_worker"
    return rescore_file(path, _worker_setup, write=write, out=out)
