"""The workbench's lexicon page: try a phrase, check and preview an edit on stored calls, save it with history.

    explanation = explain_phrase(load_lexicons(folder), "У конкурента дешевле")
    preview = preview_lexicon_edit(folder, "objections.yaml", text, [(call_id, transcript, reviews), ...])
    if not preview.errors:
        save_lexicon(folder, "objections.yaml", text, author="olga", now=datetime.now(UTC))

An edit is checked exactly as the loader would check the folder with the file replaced: in a temporary copy of
the folder's lexicon files, so nothing in the folder changes until `save_lexicon`. A problem is blocking when it
is in the edited file, or is new to the folder (a lexicon id taken twice, an `include` or a scorecard criterion
left without its term); problems other files already had are reported apart and do not block, so a folder broken
by hand can be mended one file at a time.

`explain_phrase` is pure. `preview_lexicon_edit` reads the folder and writes only its temporary copy.
`save_lexicon` is the one writer: the replaced version goes to `<folder>/.history/` first, then the file is
replaced atomically. The folder's layout: lexicon files at its top (the loader reads no subfolder), `scorecards/`
and `schema/` beside them, which these functions never touch.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import re
import shutil
import tempfile
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pipeline.derive import DeriveSetup, derive
from pipeline.errors import DefinitionError
from pipeline.lexicon.loader import LexiconSet, lexicon_files, load_lexicons
from pipeline.lexicon.matcher import fuzzy_note
from pipeline.lexicon.model import Scope
from pipeline.lexicon.text import Token, tokenize
from pipeline.scoring import DEFAULT_SCORECARD, Scorecard, load_scorecard
from pipeline.scoring.diff import ResultDiff, diff_results
from pipeline.support.fileio import write_bytes_atomic
from pipeline.transcript import Transcript

if TYPE_CHECKING:
    from pipeline.reviews import Review
    from pipeline.settings import Settings

__all__ = ["HISTORY_FOLDER", "EditProblem", "HistoryEntry", "LexiconEditError", "LexiconPreview", "PhraseExplanation",
           "PhraseHit", "SavedLexicon", "explain_phrase", "lexicon_history", "list_lexicon_files",
           "preview_lexicon_edit", "read_lexicon", "save_lexicon"]

logger = logging.getLogger(__name__)

HISTORY_FOLDER = ".history"  # under the lexicon folder; hidden, so neither the loader nor its version sees it
SUFFIX = ".yaml"
_AUTHOR_MAX = 40
_STAMP = "%Y%m%dT%H%M%SZ"
# <stem>.<UTC time>[-<n>].<author>.yaml: the version of <stem>.yaml that <author> replaced at that time (n counts
# saves within one second).
_HISTORY_NAME = re.compile(r"^(?P<stem>.+)\.(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<n>\d+))?\.(?P<author>[^./]+)\.yaml$")


@dataclass(frozen=True)
class EditProblem:
    """One problem of an edit, for a page to show: the file (its name in the lexicon folder, the scorecard's
    path, "" for the folder itself), the 1-based line (0: the file's name is the problem), what is wrong."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}" if where else self.message


class LexiconEditError(DefinitionError):
    """An edit refused: `problems` lists each as an EditProblem (file, line, message); nothing was written."""

    problems: list[EditProblem]


# --- trying a phrase ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhraseHit:
    """One hit in a phrase and why.

    Attributes:
        speaker: whose words the term counts in a call (manager, client, any); not applied to a phrase.
        window: the term's time window in words ("в первые 20 с"), None if none; not applied to a phrase.
        phrase: the lexicon phrase that matched (of this term, or of a term it includes).
        match: "lemma" (as written: lemmas, word forms, wildcards) or "fuzzy" (needed the term's tolerance).
        similarity: the least similarity of a heard word to its phrase word (1.0 for a lemma match).
        missing: the short function word a fuzzy match did without, else None.
        words: the matched words as normalised; `first`, `last`: their indices in PhraseExplanation.words.
    """

    lexicon: str
    term: str
    title: str | None
    speaker: Scope
    window: str | None
    phrase: str
    match: Literal["lemma", "fuzzy"]
    similarity: float
    missing: str | None
    words: tuple[str, ...]
    first: int
    last: int

    @property
    def note(self) -> str:
        """How a fuzzy match matched ("нечётко 0.91, без «уже»"), "" for a lemma match."""
        return fuzzy_note(self.similarity, self.missing) if self.match == "fuzzy" else ""


@dataclass(frozen=True)
class PhraseExplanation:
    """What the lexicons find in a phrase: its words as matched (`Token`: surface form -> lemma) and the hits."""

    text: str
    words: tuple[Token, ...]
    hits: tuple[PhraseHit, ...]


def explain_phrase(lexicons: LexiconSet, text: str) -> PhraseExplanation:
    """Everything in `lexicons` that matches `text` (what `callqa lexicon try` prints), and why.

    The phrase is matched as `callqa lexicon test` matches examples: as one turn, with every term's speaker
    scope and time window ignored; each hit says whose words it would count in, and when.

        explain_phrase(load_lexicons("lexicons"), "У конкурента дешевле").hits[0].phrase   # "у конкурентов"
    """
    words = tokenize(text)  # the tokens text_hits matches, so a hit's first and last index them
    hits = []
    for found in lexicons.matcher.text_hits(text):
        compiled = lexicons.matcher.terms[(found.lexicon, found.term)]
        hits.append(PhraseHit(
            lexicon=found.lexicon, term=found.term, title=compiled.term.title, speaker=compiled.scope,
            window=compiled.window.describe() if compiled.window else None, phrase=found.phrase,
            match="fuzzy" if found.fuzzy else "lemma", similarity=found.similarity, missing=found.missing,
            words=tuple(token.surface for token in words[found.first : found.last + 1]), first=found.first,
            last=found.last))
    return PhraseExplanation(text=text, words=words, hits=tuple(hits))


# --- checking and previewing an edit --------------------------------------------------------------------------


@dataclass(frozen=True)
class LexiconPreview:
    """An edit checked and, where the folder with it loads, tried on stored calls.

    Attributes:
        errors: what blocks saving the edit (in the edited file, or new to the folder); empty: it may be saved.
        other_errors: other files' problems the folder already had: nothing is scored until they are mended.
        version_before, version_after: the folder's lexicon version now and with the edit (None: it fails).
        diffs: per call given, in order, what the edit changes (`callqa rescore --diff`), both sides derived
            from the transcript; `call_id` is the caller's. Empty while the edit or the folder has problems.
    """

    filename: str
    errors: tuple[EditProblem, ...]
    other_errors: tuple[EditProblem, ...] = ()
    version_before: str | None = None
    version_after: str | None = None
    diffs: tuple[ResultDiff, ...] = ()

    @property
    def changed(self) -> tuple[ResultDiff, ...]:
        """The calls the edit changes."""
        return tuple(diff for diff in self.diffs if diff.changed)


CallToPreview = tuple[str, Transcript] | tuple[str, Transcript, "Sequence[Review]"]


def preview_lexicon_edit(folder: str | Path, filename: str, new_text: str, transcripts: Iterable[CallToPreview], *,
                         scorecard: str | Path | Scorecard | None = None,
                         settings: Settings | None = None) -> LexiconPreview:
    """Check `new_text` as `filename` of `folder` and, if the folder then loads, derive each stored call with the
    lexicons as they are and as edited, and tell the difference. Writes nothing to the folder.

    Checking costs about 0.3 s; each call is derived twice (about 4 ms each for a one-minute sample call, more
    for longer calls): the caller limits the calls to what a page can wait for (a few hundred at most: recent
    ones, or those of one manager). With no calls it only checks the edit.

    Args:
        folder: the lexicon folder.
        filename: the edited file's name in it ("objections.yaml"); a new name adds a lexicon.
        new_text: the file's whole new text.
        transcripts: (call id, stored transcript) or (call id, transcript, its reviews, passed to `derive`,
            so both sides carry them and only the edit differs).
        scorecard: a loaded Scorecard or its file; default: `settings.scorecard`, else the shipped one. Its
            criteria that the edit leaves without their lexicon or term are blocking problems.
        settings: the reading half's options (roles, metrics, quality), as `callqa rescore` takes them.

    Raises:
        DefinitionError: the scorecard itself is broken (not a problem of the edit).

    Example:
        preview_lexicon_edit("lexicons", "greeting.yaml", text, [("c1", transcript)]).changed[0].flipped
    """
    folder = Path(folder)
    try:
        _lexicon_path(folder, filename)
    except LexiconEditError as error:
        return LexiconPreview(filename=filename, errors=tuple(error.problems))
    card = _scorecard(scorecard, settings)
    current = _current(folder)
    edited, problems, other = _check_edit(folder, filename, new_text.encode("utf-8"), current, card)
    before = current[0]
    preview = LexiconPreview(filename=filename, errors=tuple(problems), other_errors=tuple(other),
                             version_before=before.version if before else None,
                             version_after=edited.version if edited else None)
    if edited is None or before is None or problems:
        return preview
    options = DeriveSetup.options_of(settings)
    setups = [DeriveSetup(lexicons=lexicons, scorecard=card, missing=tuple(card.missing_from(lexicons)), **options)
              for lexicons in (before, edited)]
    started = time.perf_counter()
    diffs = []
    for call_id, transcript, *rest in transcripts:
        reviews: Sequence[Review] = rest[0] if rest else ()
        old, new = (derive(transcript, setup, reviews) for setup in setups)
        diffs.append(dataclasses.replace(diff_results(old, new), call_id=call_id))
    logger.debug("previewed %s on %s calls in %.2f s", filename, len(diffs), time.perf_counter() - started)
    return dataclasses.replace(preview, diffs=tuple(diffs))


def _scorecard(scorecard: str | Path | Scorecard | None, settings: Settings | None) -> Scorecard:
    if isinstance(scorecard, Scorecard):
        return scorecard
    return load_scorecard(scorecard or (settings.scorecard if settings else None) or DEFAULT_SCORECARD)


def _current(folder: Path) -> tuple[LexiconSet | None, list[EditProblem]]:
    """The folder's lexicons as they are, or its problems."""
    try:
        return load_lexicons(folder), []
    except DefinitionError as error:
        return None, _edit_problems(error.problems, folder)


def _edit_problems(problems: Sequence[object], folder: Path) -> list[EditProblem]:
    """The loader's problems (yamlfile.Problem) with their paths relative to `folder` where they lie in it."""
    found = []
    for problem in problems:
        path, line, message = (getattr(problem, name, None) for name in ("path", "line", "message"))
        if path is None or message is None:
            found.append(EditProblem("", 0, str(problem)))
            continue
        path = Path(path)
        file = path.relative_to(folder).as_posix() if path.is_relative_to(folder) else str(path)
        found.append(EditProblem("" if file == "." else file, int(line or 0), str(message)))
    return found


def _check_edit(folder: Path, filename: str, data: bytes, current: tuple[LexiconSet | None, list[EditProblem]],
                scorecard: Scorecard | None) -> tuple[LexiconSet | None, list[EditProblem], list[EditProblem]]:
    """The folder's lexicons with the edit (None if they fail), the blocking problems and the others."""
    with tempfile.TemporaryDirectory(prefix="callqa-lexicon-edit-") as temporary:
        copy = Path(temporary)
        for path in lexicon_files(folder):
            if path.name != filename:
                shutil.copyfile(path, copy / path.name)
        (copy / filename).write_bytes(data)
        try:
            # Not kept compiled: the copy's path is new every time, so the cache would only grow.
            edited: LexiconSet | None = load_lexicons(copy, keep_compiled=False)
            problems = []
        except DefinitionError as error:
            edited, problems = None, _edit_problems(error.problems, copy)
    before, before_problems = current
    if edited is not None:
        edited = dataclasses.replace(edited, folder=folder)  # what scorecard messages and warnings name
        if scorecard is not None:
            problems += _scorecard_problems(scorecard, before, edited, folder)
    known = set(before_problems)
    blocking = [problem for problem in problems if problem.file == filename or problem not in known]
    return edited, blocking, [problem for problem in problems if problem not in blocking]


def _scorecard_problems(scorecard: Scorecard, before: LexiconSet | None, edited: LexiconSet,
                        folder: Path) -> list[EditProblem]:
    """The scorecard's criteria that find their lexicon or term now and would not with the edit."""

    def problems_with(lexicons: LexiconSet | None) -> list[EditProblem]:
        if lexicons is None:
            return []
        try:
            scorecard.check_against(lexicons)
        except DefinitionError as error:
            return _edit_problems(error.problems, folder)
        return []

    lines_before = {problem.line for problem in problems_with(before)}
    return [dataclasses.replace(problem, message=f"{problem.message} (the edit removes it)")
            for problem in problems_with(edited) if problem.line not in lines_before]


# --- files, history, saving (the only writes) -----------------------------------------------------------------


def _lexicon_path(folder: Path, filename: str) -> Path:
    """`folder / filename` for a plain lexicon file name in the folder itself.

    Raises:
        LexiconEditError: a name with a folder in it ("../x.yaml", "/etc/x.yaml", "scorecards/sales.yaml"), a
            hidden one, one not ending in .yaml, a link, or a folder that does not exist.
    """
    why = None
    if not filename or filename != filename.strip() or any(ch in filename for ch in "/\\\0"):
        why = "give a file name without a folder: lexicon files lie at the top of the lexicon folder"
    elif filename.startswith("."):
        why = "a lexicon file name may not start with a dot"
    elif not filename.endswith(SUFFIX) or filename == SUFFIX:
        why = f"a lexicon file name ends in {SUFFIX}"
    elif any(unicodedata.category(ch).startswith("C") for ch in filename):
        why = "a lexicon file name may not hold control characters"
    if why:
        raise LexiconEditError([EditProblem(filename, 0, why)])
    if not folder.is_dir():
        raise LexiconEditError([EditProblem("", 0, f"lexicon folder not found: {folder}")])
    path = folder / filename
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise LexiconEditError([EditProblem(filename, 0, "not a plain file in the lexicon folder")])
    return path


def list_lexicon_files(folder: str | Path) -> list[Path]:
    """The lexicon files the page can edit, sorted by name (the loader also reads *.yml: rename those)."""
    return [path for path in lexicon_files(Path(folder)) if path.suffix == SUFFIX and not path.is_symlink()]


def read_lexicon(folder: str | Path, filename: str) -> str:
    """The current text of a lexicon file, its name checked as `save_lexicon` checks it.

    Raises:
        LexiconEditError: a name that is not a lexicon file's in the folder, or no such file.
    """
    path = _lexicon_path(Path(folder), filename)
    if not path.is_file():
        raise LexiconEditError([EditProblem(filename, 0, "no such lexicon file")])
    return path.read_text(encoding="utf-8")


@dataclass(frozen=True)
class HistoryEntry:
    """A version of a lexicon file that a save replaced: what the file held until `author` saved at `replaced_at`."""

    path: Path
    replaced_at: datetime  # UTC
    author: str  # filename-safe, as `save_lexicon` wrote it

    @property
    def name(self) -> str:
        return self.path.name


def lexicon_history(folder: str | Path, filename: str) -> list[HistoryEntry]:
    """The kept versions of a lexicon file, newest first (read one with `entry.path.read_text()`).

    Raises:
        LexiconEditError: `filename` is not a lexicon file name (see `save_lexicon`).
    """
    folder = Path(folder)
    stem = _lexicon_path(folder, filename).stem
    entries = []
    for path in (folder / HISTORY_FOLDER).glob(f"*{SUFFIX}"):
        found = _HISTORY_NAME.match(path.name)
        if found and found["stem"] == stem:
            replaced_at = datetime.strptime(found["stamp"], _STAMP).replace(tzinfo=UTC)
            entries.append((replaced_at, int(found["n"] or 1), HistoryEntry(path, replaced_at, found["author"])))
    return [entry for *_, entry in sorted(entries, key=lambda item: item[:2], reverse=True)]


@dataclass(frozen=True)
class SavedLexicon:
    """A saved edit.

    Attributes:
        path: the lexicon file written.
        previous: where the version it replaced was kept (None: a new file, or the text was unchanged).
        lexicon_version: the folder's lexicon version now (None while other files have problems): results
            scored from now on carry it; processes holding the old set must reload it.
        other_errors: other files' problems, which did not block the save.
    """

    path: Path
    previous: Path | None
    lexicon_version: str | None
    other_errors: tuple[EditProblem, ...] = ()


def save_lexicon(folder: str | Path, filename: str, new_text: str, *, author: str, now: datetime,
                 scorecard: str | Path | Scorecard | None = None, settings: Settings | None = None) -> SavedLexicon:
    """Check an edit as `preview_lexicon_edit` does and, if nothing blocks it, keep the file's current version
    in `<folder>/.history/<stem>.<UTC time>.<author>.yaml` and replace the file atomically (a reader sees the
    old file or the new one, never half of one). Saving the same text again writes nothing.

    Args:
        folder: the lexicon folder.
        filename: the file's name in it ("objections.yaml"); no folder, not hidden, ending in .yaml.
        new_text: the file's whole new text.
        author: who saves (a login or a name); made filename-safe for the history.
        now: the time of the save, timezone-aware (the clock is the caller's).
        scorecard, settings: the scorecard whose criteria must keep their lexicons, as for the preview.

    Raises:
        LexiconEditError: the name is refused or the edit has blocking problems; nothing was written.
        DefinitionError: the scorecard itself is broken.
        OSError: the folder cannot be written (the file is then unchanged).

    Example:
        save_lexicon("lexicons", "farewell.yaml", text, author="olga@example.ru", now=datetime.now(UTC))
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("save_lexicon: `now` must be timezone-aware")
    folder = Path(folder)
    path = _lexicon_path(folder, filename)
    data = new_text.encode("utf-8")
    current = _current(folder)
    edited, problems, other = _check_edit(folder, filename, data, current, _scorecard(scorecard, settings))
    if problems:
        raise LexiconEditError(problems)
    version = edited.version if edited else None
    old = path.read_bytes() if path.is_file() else None
    if old == data:
        return SavedLexicon(path=path, previous=None, lexicon_version=version, other_errors=tuple(other))
    previous = None
    mode = path.stat().st_mode & 0o777 if old is not None else 0o644
    if old is not None:
        previous = write_bytes_atomic(_history_path(folder, path.stem, author, now), old)
    write_bytes_atomic(path, data)
    path.chmod(mode)  # the nightly run may read the folder as another user: keep the file's permissions
    logger.info("lexicon %s saved by %s (previous version kept as %s)", path, author, previous)
    return SavedLexicon(path=path, previous=previous, lexicon_version=version, other_errors=tuple(other))


def _safe_author(author: str) -> str:
    """`author` as a file name part: letters (any alphabet), digits, "-" and "_"; the rest as "_"."""
    safe = re.sub(r"[^\w-]+", "_", unicodedata.normalize("NFKC", author)).strip("_-")[:_AUTHOR_MAX].strip("_-")
    return safe or "unknown"


def _history_path(folder: Path, stem: str, author: str, now: datetime) -> Path:
    """A new history name; saves within one second are numbered (-2, -3, ...) whoever made them, so that
    `lexicon_history` orders them."""
    history = folder / HISTORY_FOLDER
    stamp = now.astimezone(UTC).strftime(_STAMP)
    count = 1
    while True:
        kept = f"{stem}.{stamp}{f'-{count}' if count > 1 else ''}"
        if not any(history.glob(f"{glob.escape(kept)}.*{SUFFIX}")):
            return history / f"{kept}.{_safe_author(author)}{SUFFIX}"
        count += 1
