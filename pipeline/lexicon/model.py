"""The lexicon file format (contract core in docs/lexicons.md), as pydantic models.

One YAML file per lexicon. The core (`lexicon`, `title`, `speaker`, `terms[].id`, `terms[].phrases`) is the
design's contract; everything else extends it: wildcards (`дорог*`), gaps inside phrases, exact word forms,
exclusions, time windows, a speaker per term, and examples that must or must not match.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from pipeline.lexicon.text import tokenize

__all__ = ["ID_PATTERN", "Fuzzy", "LexiconFile", "PhraseSpec", "Scope", "Term", "Window", "fuzzy_threshold",
           "phrase_words"]

Scope = Literal["manager", "client", "any"]
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
INCLUDE_PATTERN = r"^[a-z0-9][a-z0-9_-]*/[a-z0-9][a-z0-9_-]*$"
MIN_PREFIX = 3
FUZZY_HELP = ("tolerate recognition errors: true (similarity 0.8) or the least similarity, 0.5-1, of a heard word "
              "to a lexicon word of five letters or more, in spelling or in sound; also joins and splits of words "
              "and one missing short function word inside the phrase")


def _fuzzy_value(value: object) -> object:
    # One clear message instead of one per member of the union.
    if isinstance(value, bool) or (isinstance(value, int | float) and 0.5 <= value <= 1.0):
        return value
    raise ValueError(f"fuzzy must be true, false or a similarity from 0.5 to 1, not {value!r}")


# `fuzzy: true`, `fuzzy: false`, or a threshold (`fuzzy: 0.85`); a bare 1 reads as the threshold 1.0.
Fuzzy = Annotated[bool | Annotated[float, Field(ge=0.5, le=1.0)], BeforeValidator(_fuzzy_value)]
ROLE_CUE_HELP = ("In a mono call, how strongly saying this tells that the speaker is the one named in `speaker` "
                 "(manager or client): log-odds points, counted once per speaker and term.")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Window(_Strict):
    """Where in the call a hit must be: its start in the first `first_s` seconds, or its end in the last `last_s`."""

    first_s: float | None = Field(None, gt=0, description="the hit starts within the first N seconds of the call")
    last_s: float | None = Field(None, gt=0, description="the hit ends within the last N seconds of the call")

    @model_validator(mode="after")
    def _one_bound(self) -> Window:
        if (self.first_s is None) == (self.last_s is None):
            raise ValueError("give exactly one of first_s or last_s")
        return self

    def contains(self, start: float, end: float, duration_s: float) -> bool:
        if self.first_s is not None:
            return start <= self.first_s
        return end >= duration_s - (self.last_s or 0.0)

    def describe(self) -> str:
        return f"в первые {self.first_s:g} с" if self.first_s is not None else f"в последние {self.last_s:g} с"


def phrase_words(text: str) -> list[tuple[str, str]]:
    """Split a phrase into (kind, value) words: ("prefix", "дорог") for `дорог*`, else ("word", token text).

    Raises:
        ValueError: the phrase has no words, or a wildcard is misplaced or too short.
    """
    words: list[tuple[str, str]] = []
    for chunk in text.split():
        if chunk.endswith("*"):
            stem = chunk[:-1].lower().replace("ё", "е")
            if "*" in stem or not stem.isalpha():
                raise ValueError(f"wildcard {chunk!r}: '*' goes at the end of a word made of letters")
            if len(stem) < MIN_PREFIX:
                raise ValueError(f"wildcard {chunk!r}: at least {MIN_PREFIX} letters before '*'")
            words.append(("prefix", stem))
        else:
            if "*" in chunk:
                raise ValueError(f"{chunk!r}: '*' is only allowed at the end of a word")
            words += [("word", token.surface) for token in tokenize(chunk)]
    if not words:
        raise ValueError(f"phrase {text!r} has no words")
    return words


def _check_phrase(text: str) -> str:
    if not text.strip():
        raise ValueError("empty phrase")
    phrase_words(text)
    return text


PhraseText = Annotated[str, AfterValidator(_check_phrase)]


class PhraseSpec(_Strict):
    """A phrase with its own settings (a plain string takes the term's)."""

    text: PhraseText
    gap: int | None = Field(None, ge=0, le=10, description="other words allowed between two words of the phrase")
    exact: bool | None = Field(None, description="match these word forms only, not every form of the lemmas")
    fuzzy: Fuzzy | None = Field(None, description=FUZZY_HELP + ". Default: the term's.")


class Term(_Strict):
    id: str = Field(pattern=ID_PATTERN, description="unique in its lexicon")
    title: str | None = Field(None, description="what reports show (Russian)")
    phrases: list[PhraseText | PhraseSpec] = Field(min_length=1, description="any of them makes a hit")
    exclude: list[PhraseText] = Field([], description="phrases that cancel a hit they overlap (negation: 'не дорого')")
    include: list[Annotated[str, Field(pattern=INCLUDE_PATTERN)]] = Field(
        [], description="other terms, as 'lexicon/term', whose phrases count as this term's (with their own "
                        "options): the company's names kept in one file and used by the greeting")
    gap: int = Field(0, ge=0, le=10, description="other words allowed between two words of a phrase")
    exact: bool = Field(False, description="match the word forms as written, not every form of their lemmas")
    fuzzy: Fuzzy | None = Field(None, description=FUZZY_HELP + ". Default: the lexicon's.")
    within: Window | None = None
    speaker: Scope | None = Field(None, description="who must say it; default: the lexicon's speaker")
    role_cue: float | None = Field(None, ge=0, le=5, description=ROLE_CUE_HELP + " Default: the lexicon's.")
    examples: list[str] = Field([], description="phrases this term must match (the lexicon's own tests)")
    counterexamples: list[str] = Field([], description="phrases this term must not match")


class LexiconFile(_Strict):
    """One lexicon file."""

    lexicon: str | None = Field(None, pattern=ID_PATTERN, description="id, unique in the folder (default: file name)")
    title: str = Field(description="what managers and reports show (Russian)")
    description: str | None = None
    speaker: Scope = Field("any", description="who must say the terms: manager, client or any")
    within: Window | None = Field(None, description="default time window of the terms")
    role_cue: float = Field(0, ge=0, le=5, description=ROLE_CUE_HELP + " Default 0: not a cue.")
    fuzzy: Fuzzy = Field(False, description=FUZZY_HELP + ". Default false: words match as written or by lemma.")
    terms: list[Term] = Field(min_length=1)

    def role_cue_of(self, term: Term) -> float:
        return self.role_cue if term.role_cue is None else term.role_cue


def fuzzy_threshold(*options: Fuzzy | None) -> float | None:
    """The least word similarity of a fuzzy match, from the most specific option given (phrase, term, lexicon),
    or None where matching is exact."""
    from pipeline.lexicon.fuzzy import DEFAULT_SIMILARITY

    for option in options:
        if option is None:
            continue
        if option is True:
            return DEFAULT_SIMILARITY
        return None if option is False else float(option)
    return None
