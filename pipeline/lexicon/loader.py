"""Loading a folder of lexicon files: all or nothing, every problem with its file and line.

A broken folder is refused as a whole before any call is touched: half a lexicon set would score calls against
rules nobody wrote. The set's `version` is a content hash of its files, recorded in every result it scores.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipeline.errors import DefinitionError
from pipeline.lexicon.compiled import compiled_key, read_compiled, write_compiled
from pipeline.lexicon.matcher import Matcher
from pipeline.lexicon.model import LexiconFile
from pipeline.support.yamlfile import Problem, YamlDocument, load_yaml, validate

__all__ = ["ExampleOutcome", "LexiconSet", "content_version", "lexicon_files", "load_lexicons", "run_examples"]


def content_version(paths: list[Path]) -> str:
    """A short content hash of files (names and bytes), stable across machines and checkouts."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class LexiconSet:
    folder: Path
    lexicons: dict[str, LexiconFile]
    documents: dict[str, YamlDocument]
    version: str
    matcher: Matcher = field(repr=False)

    @functools.cached_property
    def ids(self) -> set[str]:
        return set(self.lexicons)

    @functools.cached_property
    def role_cues(self) -> dict[tuple[str, str], tuple[Literal["manager", "client"], float]]:
        """(lexicon, term) -> (manager or client, weight) for the terms marked `role_cue` (mono role detection)."""
        cues: dict[tuple[str, str], tuple[Literal["manager", "client"], float]] = {}
        for lexicon_id, lexicon in self.lexicons.items():
            for term in lexicon.terms:
                weight = lexicon.role_cue_of(term)
                scope = term.speaker or lexicon.speaker
                if weight > 0 and scope != "any":
                    cues[(lexicon_id, term.id)] = (scope, weight)
        return cues

    def hotwords(self, max_chars: int = 400, lexicons: Collection[str] | None = None) -> str:
        """The lexicons' phrases as a faster-whisper `hotwords` prompt (wildcards cut to their stem): of every
        lexicon, or of those named in `lexicons` that the set has.

        Whisper's prompt holds about 220 tokens, so the list is cut at `max_chars`, in file order.
        """
        phrases: list[str] = []
        for lexicon_id, lexicon in self.lexicons.items():
            if lexicons is not None and lexicon_id not in lexicons:
                continue
            for term in lexicon.terms:
                for phrase in term.phrases:
                    text = (phrase if isinstance(phrase, str) else phrase.text).replace("*", "")
                    if text not in phrases:
                        phrases.append(text)
        prompt = ""
        for text in phrases:
            candidate = f"{prompt}, {text}" if prompt else text
            if len(candidate) > max_chars:
                break
            prompt = candidate
        return prompt


def lexicon_files(folder: Path) -> list[Path]:
    """The files `load_lexicons` reads: the folder's *.yaml and *.yml (not its subfolders), sorted."""
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])


def load_lexicons(folder: str | Path, *, keep_compiled: bool = True) -> LexiconSet:
    """Load and check every lexicon file in `folder` (not its subfolders).

    A folder checked before, unchanged, is read back compiled (`compiled.py`): no spaCy import, no YAML.
    `keep_compiled=False` neither reads nor keeps a compiled set: for a folder checked once and thrown away
    (the temporary copy an edit is checked in, `edit.py`), which would only fill the cache.

    Raises:
        DefinitionError: with every problem found in every file (file, line, what is wrong).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DefinitionError([Problem(folder, 1, "lexicon folder not found")])
    paths = lexicon_files(folder)
    if not paths:
        raise DefinitionError([Problem(folder, 1, "no lexicon files (*.yaml) in the folder")])
    if not keep_compiled:
        return _check(folder, paths)
    key = compiled_key(folder, content_version(paths))
    kept = read_compiled(key)
    if kept is not None:
        return kept
    lexicon_set = _check(folder, paths)
    write_compiled(key, lexicon_set)
    return lexicon_set


def _check(folder: Path, paths: list[Path]) -> LexiconSet:
    problems: list[Problem] = []
    lexicons: dict[str, LexiconFile] = {}
    documents: dict[str, YamlDocument] = {}
    for path in paths:
        try:
            document = load_yaml(path)
            lexicon = validate(document, LexiconFile)
        except DefinitionError as error:
            problems += error.problems
            continue
        lexicon_id = lexicon.lexicon or path.stem
        if lexicon_id in lexicons:
            problems.append(Problem(path, document.line_of(("lexicon",)),
                                    f"lexicon id {lexicon_id!r} is already used by {documents[lexicon_id].path.name}"))
            continue
        seen: set[str] = set()
        for index, term in enumerate(lexicon.terms):
            if term.id in seen:
                problems.append(Problem(path, document.line_of(("terms", index, "id")),
                                        f"terms[{index}].id: duplicate term id {term.id!r}"))
            seen.add(term.id)
            if lexicon.role_cue_of(term) > 0 and (term.speaker or lexicon.speaker) == "any":
                where = ("terms", index, "role_cue") if term.role_cue is not None else ("role_cue",)
                problems.append(Problem(path, document.line_of(where),
                                        f"terms[{index}] ({term.id}): a role cue needs speaker manager or client"))
        lexicons[lexicon_id] = lexicon
        documents[lexicon_id] = document
    problems += _include_problems(lexicons, documents)
    if problems:
        raise DefinitionError(problems)
    return LexiconSet(folder=folder, lexicons=lexicons, documents=documents, version=content_version(paths),
                      matcher=Matcher(lexicons))


def _include_problems(lexicons: dict[str, LexiconFile], documents: dict[str, YamlDocument]) -> list[Problem]:
    """A term may include another lexicon's term that exists and includes none itself (one level, no cycles)."""
    problems = []
    terms = {(lexicon_id, term.id): term for lexicon_id, lexicon in lexicons.items() for term in lexicon.terms}
    for lexicon_id, lexicon in lexicons.items():
        for index, term in enumerate(lexicon.terms):
            for position, included in enumerate(term.include):
                source = tuple(included.split("/"))
                line = documents[lexicon_id].line_of(("terms", index, "include", position))
                if source not in terms:
                    problems.append(Problem(documents[lexicon_id].path, line,
                                            f"terms[{index}].include: no term {included!r} in the folder"))
                elif source == (lexicon_id, term.id) or terms[source].include:
                    problems.append(Problem(documents[lexicon_id].path, line,
                                            f"terms[{index}].include: {included!r} includes terms itself (or is "
                                            "this term); include only terms that include none"))
    return problems


@dataclass(frozen=True)
class ExampleOutcome:
    path: Path
    line: int
    lexicon: str
    term: str
    text: str
    should_match: bool
    matched: bool
    fuzzy: str = ""  # how a match needed the term's tolerance ("нечётко 0.91"), "" for an exact one

    @property
    def passed(self) -> bool:
        return self.should_match == self.matched

    def __str__(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        expectation = "example" if self.should_match else "counterexample"
        outcome = "matches" if self.matched else "does not match"
        outcome += f" (fuzzy: {self.fuzzy})" if self.fuzzy else ""
        return (f"{self.path}:{self.line}: {verdict}: {self.lexicon}/{self.term} {expectation} "
                f"{self.text!r} {outcome}")


def run_examples(lexicon_set: LexiconSet) -> list[ExampleOutcome]:
    """Check every term's examples (must match) and counterexamples (must not), speaker and window ignored."""
    outcomes = []
    for lexicon_id, lexicon in lexicon_set.lexicons.items():
        document = lexicon_set.documents[lexicon_id]
        for index, term in enumerate(lexicon.terms):
            for key, should_match in (("examples", True), ("counterexamples", False)):
                for position, text in enumerate(getattr(term, key)):
                    hit = lexicon_set.matcher.match_text(text, lexicon_id, term.id)
                    outcomes.append(ExampleOutcome(
                        path=document.path, line=document.line_of(("terms", index, key, position)),
                        lexicon=lexicon_id, term=term.id, text=text, should_match=should_match,
                        matched=hit is not None, fuzzy=hit.how() if hit else ""))
    return outcomes
