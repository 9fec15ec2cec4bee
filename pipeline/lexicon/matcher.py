"""Finding lexicon phrases in what each party said.

Phrases are compiled into patterns of word tests (a lemma, an exact word form, or a prefix for `дорог*`) and
indexed by their first word, so each word of a call is looked up once instead of tried against every phrase: a
five-minute call is matched in about a millisecond. A phrase matches inside one turn (never across speakers),
its words in order with at most `gap` other words between two of them.

A pattern of a term marked `fuzzy` is also tried where its first word is only close to a heard word (fuzzy.py),
looked up by rapidfuzz among all fuzzy first words once per distinct word form, and walked with the tolerances:
a heard word close to a phrase word, two heard words joined into one phrase word ("авта сервис"), one heard word
holding two ("искомпании"), one short function word of the phrase missing. A fuzzy match never displaces an
exact one of the same term.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import NamedTuple

from pydantic import TypeAdapter
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from pipeline.lexicon.fuzzy import (
    DEFAULT_SIMILARITY,
    MIN_FUZZY_LETTERS,
    is_skippable,
    phonetic_key,
    resemblance,
    similarity,
    similarity_rejoined,
)
from pipeline.lexicon.model import LexiconFile, PhraseSpec, Scope, Term, Window, fuzzy_threshold, phrase_words
from pipeline.lexicon.text import Token, is_known_word, part_of_speech, tokenize
from pipeline.schema import Hit, Role, Turn, Word, roles_known

__all__ = ["CallMatches", "Matcher", "Pattern", "Segment", "TextHit", "fuzzy_note", "segments_of"]

PREFIX_KEY = 3  # prefixes are indexed by their first three letters (wildcards need at least three)
# How far under its threshold a phrase may be found and still count as "nearly said" (a near miss): at 0.8,
# down to 0.65, two wrong letters in six.
NEAR_MISS_MARGIN = 0.15
# ... and only where the recogniser itself was unsure of a word of it: "из камня" heard clearly is not a garbled
# "из компании".
NEAR_MISS_MAX_PROB = 0.8
# A made-up word of at least GARBLED_MIN_LETTERS this close to a phrase word (fuzzy.resemblance) may be it,
# garbled: "Патлев" for "Атлет" is 0.67; shorter made-up words resemble too many words to mean anything.
GARBLED_RESEMBLANCE = 0.6
GARBLED_MIN_LETTERS = 6

_HITS = TypeAdapter(list[Hit])


@dataclass(frozen=True)
class _WordTest:
    kind: str  # "lemma" | "surface" | "prefix"
    value: str
    written: str = ""  # the word as the phrase writes it (normalised): what a fuzzy match compares spelling with
    skippable: bool = False  # a short function word a fuzzy match may find missing

    def matches(self, token: Token) -> bool:
        if self.kind == "lemma":
            return token.lemma == self.value
        if self.kind == "surface":
            return token.surface == self.value
        return token.surface.startswith(self.value) or token.lemma.startswith(self.value)

    def closeness(self, token: Token) -> float:
        """1.0 for a match, else how close the heard word is in spelling or sound (0.0 for wildcards)."""
        if self.matches(token):
            return 1.0
        if self.kind == "prefix":
            return 0.0
        if self.kind == "surface":
            return similarity(token.surface, self.value)
        return max(similarity(token.surface, self.written), similarity(token.lemma, self.value))


@dataclass(frozen=True)
class Pattern:
    """One compiled phrase of a term (or one of its exclusions)."""

    lexicon: str
    term: str
    phrase: str
    tests: tuple[_WordTest, ...]
    gap: int
    exclusion: bool = False
    # The exact words and lemmas its later words need: a turn that lacks one cannot complete the phrase, which
    # one set comparison tells before walking the tokens (most words that start a phrase start no match).
    needs: frozenset[str] = frozenset()
    fuzzy: float | None = None  # the least word similarity of a fuzzy match; None: exact only
    # For a fuzzy walk: per later word that cannot be missing, the forms any of which the turn must hold, exactly
    # or nearly (the word as written, its lemma, or it written together with a neighbour): most walks are
    # ruled out by a few set lookups.
    fuzzy_needs: tuple[frozenset[str], ...] = ()


class _Match(NamedTuple):
    """A pattern found at tokens first..last; similarity 1.0 and no missing word for an exact match."""

    first: int
    last: int
    phrase: str
    similarity: float = 1.0
    missing: str | None = None
    fuzzy: bool = False


class TextHit(NamedTuple):
    """A hit in free text (`Matcher.text_hits`): what `callqa lexicon try` shows.

    `first` and `last` are the indices of its first and last word in `tokenize(text)`.
    """

    lexicon: str
    term: str
    phrase: str
    words: str
    similarity: float = 1.0
    missing: str | None = None
    fuzzy: bool = False
    first: int = 0
    last: int = 0

    def how(self) -> str:
        return fuzzy_note(self.similarity, self.missing) if self.fuzzy else ""


def fuzzy_note(similarity: float, missing: str | None) -> str:
    """How a fuzzy match matched, for QA leads: "нечётко 0.91", and the function word it did without."""
    return f"нечётко {similarity:.2f}" + (f", без «{missing}»" if missing else "")


@dataclass(frozen=True)
class CompiledTerm:
    lexicon: str
    term: Term
    scope: Scope
    window: Window | None


@dataclass
class Segment:
    """The words of one turn (one speaker), with its role and the turn's index."""

    words: list[Word]
    role: Role
    turn: int | None


@dataclass
class _TokenStream:
    """All segments' tokens in one flat list, so a call is matched in one pass.

    `word_of[i]` is (segment index, word index in the segment) of token i; `bounds[s]` is (index of the first
    token, index after the last) of segment s: a phrase never runs past it; `vocabulary[s]` holds every surface
    form and lemma of segment s, and `roles[s]` its role.
    """

    tokens: list[Token] = field(default_factory=list)
    word_of: list[tuple[int, int]] = field(default_factory=list)
    bounds: list[tuple[int, int]] = field(default_factory=list)
    vocabulary: list[frozenset[str]] = field(default_factory=list)
    roles: list[Role] = field(default_factory=list)

    @classmethod
    def of(cls, segments: Sequence[Segment]) -> _TokenStream:
        stream = cls()
        tokens, word_of = stream.tokens, stream.word_of
        for segment_index, segment in enumerate(segments):
            first = len(tokens)
            for word_index, word in enumerate(segment.words):
                found = tokenize(word.text)
                tokens += found
                word_of += [(segment_index, word_index)] * len(found)
            stream.bounds.append((first, len(tokens)))
            stream.vocabulary.append(frozenset(chain.from_iterable(tokens[first:])))
            stream.roles.append(segment.role)
        return stream


@dataclass(frozen=True)
class CallMatches:
    """A call's matches of every term in each of its turns (`Matcher.call_matches`), before speaker scopes and
    time windows: `Matcher.hits_in` makes them hits. `by_role`: the turns were searched only for the terms their
    role may say (the call's roles were known)."""

    segments: list[Segment]
    stream: _TokenStream
    spans: dict[tuple[str, str, int], list[_Match]]
    by_role: bool


def segments_of(words: Sequence[Word], turns: Sequence[Turn]) -> list[Segment]:
    """Split a call's words into the turns they belong to (a turn holds its speaker's words within its span)."""
    by_speaker: dict[str, list[Word]] = {}
    for word in words:
        by_speaker.setdefault(word.speaker, []).append(word)
    starts = {speaker: [word.start for word in own] for speaker, own in by_speaker.items()}
    position = dict.fromkeys(by_speaker, 0)
    segments = []
    for index, turn in enumerate(turns):
        own = by_speaker.get(turn.speaker, [])
        own_starts = starts.get(turn.speaker, [])
        first = position.get(turn.speaker, 0)
        last, end = first, turn.end
        while last < len(own_starts) and own_starts[last] <= end:
            last += 1
        position[turn.speaker] = last
        if last > first:
            segments.append(Segment(own[first:last], turn.role, index))
    return segments


def _compile_phrase(lexicon: LexiconFile, lexicon_id: str, term: Term, phrase: str | PhraseSpec, *,
                    exclusion: bool = False) -> Pattern:
    spec = phrase if isinstance(phrase, PhraseSpec) else None
    text = spec.text if spec else str(phrase)
    gap = spec.gap if spec and spec.gap is not None else term.gap
    exact = spec.exact if spec and spec.exact is not None else term.exact
    tests = []
    for kind, value in phrase_words(text):
        if kind == "prefix":
            tests.append(_WordTest("prefix", value, value))
            continue
        written = tokenize(value)[0].surface
        skippable = is_skippable(written, part_of_speech(written))
        if exact:
            tests.append(_WordTest("surface", value, written, skippable))
        else:
            tests.append(_WordTest("lemma", tokenize(value)[0].lemma, written, skippable))
    return Pattern(lexicon=lexicon_id, term=term.id, phrase=text, tests=tuple(tests), gap=gap,
                   exclusion=exclusion, needs=frozenset(test.value for test in tests[1:] if test.kind != "prefix"),
                   fuzzy=fuzzy_threshold(spec.fuzzy if spec else None, term.fuzzy, lexicon.fuzzy),
                   fuzzy_needs=_fuzzy_needs(tests))


def _pair_joins(tests: Sequence[_WordTest]) -> list[str]:
    """Each two neighbouring words written together ("из" + "компании"), "" where one is a wildcard."""
    return ["" if "prefix" in (a.kind, b.kind) else a.written + b.written for a, b in zip(tests, tests[1:])]


def _fuzzy_needs(tests: Sequence[_WordTest]) -> tuple[frozenset[str], ...]:
    joins = _pair_joins(tests)
    needs = []
    for index, test in enumerate(tests):
        if index == 0 or test.skippable or test.kind == "prefix":
            continue
        forms = {test.written, test.value, joins[index - 1], joins[index] if index < len(joins) else ""}
        needs.append(frozenset(forms - {""}))
    return tuple(needs)


@functools.lru_cache(maxsize=200_000)
def _closeness(test: _WordTest, token: Token) -> float:
    return test.closeness(token)


def _steps(tests: Sequence[_WordTest], j: int, token: Token,
           following: str | None) -> list[tuple[float, bool, int, int]]:
    """The ways phrase word `j` may have been heard at `token` (`following`: the next heard word of the segment,
    None at its end), each as (similarity, exact, phrase words taken, heard words taken)."""
    test = tests[j]
    steps = [(_closeness(test, token), test.matches(token), 1, 1)]
    if test.kind == "prefix":
        return steps
    pair = (token.surface, following) if following is not None else None
    joined = "".join(pair).replace("-", "") if pair else ""
    if pair:  # two heard words written as one phrase word: "авта -сервис"
        steps.append((max(similarity_rejoined(joined, test.written, pair, pair),
                          similarity_rejoined(joined, test.value, pair, pair)), False, 1, 2))
    if j + 1 < len(tests) and tests[j + 1].kind != "prefix":
        meant = (test.written, tests[j + 1].written)
        both = "".join(meant)
        steps.append((similarity_rejoined(token.surface, both, meant), False, 2, 1))  # "искомпании"
        if pair:  # the same words cut elsewhere: "и скомпания" for "из компании"
            steps.append((similarity_rejoined(joined, both, (*pair, *meant)), False, 2, 2))
    return steps


def _may_start(pattern: Pattern, token: Token, following: str | None) -> bool:
    """Whether a fuzzy match of `pattern` may begin at `token`: its first word heard there closely enough, by the
    walk's own rules (the rapidfuzz index that proposes the pattern knows only spelling)."""
    threshold = pattern.fuzzy or 1.0
    return any(step[0] >= threshold for step in _steps(pattern.tests, 0, token, following))


def _fuzzy_walk(pattern: Pattern, tokens: list[Token], first: int, end: int) -> _Match | None:
    """The best fuzzy match of `pattern` starting at token `first` (its first word at `first` exactly, not after
    a gap), or None: the match whose least word similarity is highest, then the shortest. A match that needed
    no tolerance at all comes back as an exact one (similarity 1.0, nothing missing)."""
    tests, threshold = pattern.tests, pattern.fuzzy or 1.0
    # An option: (least similarity, exact throughout, -last token, last token, missing word)
    Option = tuple[float, bool, int, int, str | None]

    def walk(j: int, i: int, skipped: str | None) -> Option | None:
        if j == len(tests):
            return 1.0, skipped is None, -(i - 1), i - 1, skipped
        options: list[Option] = []

        def go(closeness: float, exact: bool, next_j: int, next_i: int) -> None:
            if closeness >= threshold:
                rest = walk(next_j, next_i, skipped)
                if rest is not None:
                    options.append((min(closeness, rest[0]), exact and rest[1], *rest[2:]))

        for position in range(i, min(end, i + 1 + (pattern.gap if j else 0))):
            following = tokens[position + 1].surface if position + 1 < end else None
            for closeness, exact, words_meant, words_heard in _steps(tests, j, tokens[position], following):
                go(closeness, exact, j + words_meant, position + words_heard)
        if skipped is None and 0 < j < len(tests) - 1 and tests[j].skippable:
            rest = walk(j + 1, i, tests[j].written)
            if rest is not None:
                options.append(rest)
        return max(options, key=lambda option: option[:3]) if options else None

    found = walk(0, first, None)
    if found is None:
        return None
    least, exact, _, last, missing = found
    return _Match(first, last, pattern.phrase, round(least, 3), missing, fuzzy=not exact)


def _may_walk(pattern: Pattern, forms: frozenset[str] | None) -> bool:
    """Whether a turn holds, exactly or nearly (`forms`: Matcher._segment_forms), every later word of `pattern`
    that cannot be missing: a necessary condition of a fuzzy match, checked with set lookups before walking."""
    for needed in pattern.fuzzy_needs:
        if forms is None or needed.isdisjoint(forms):
            return False
    return True


class _FuzzyIndex:
    """The first words of the fuzzy patterns, to find the patterns a heard word may start (a superset: the walk
    decides). Its word forms, lemmas and the first two words written together, and the phonetic keys of each."""

    def __init__(self, patterns: list[Pattern]) -> None:
        self.patterns: list[Pattern] = []
        self.units: list[str] = []
        for pattern in patterns:
            first = pattern.tests[0]
            if first.kind == "prefix":
                continue
            units = {first.written, first.value}
            if len(pattern.tests) > 1 and pattern.tests[1].kind != "prefix":
                units.add(first.written + pattern.tests[1].written)
            for unit in units:
                if len(unit) >= MIN_FUZZY_LETTERS:
                    self.patterns.append(pattern)
                    self.units.append(unit)
        self.keys = [phonetic_key(unit) for unit in self.units]
        # rapidfuzz applies a cutoff to the distance, 1 - similarity, so a word exactly at the threshold (one
        # letter in five at 0.8) would fall out by a rounding error; the walk decides at the threshold itself.
        self.least = min((p.fuzzy or 1.0 for p in self.patterns), default=1.0) - 1e-6
        forms = {form for pattern in patterns for needed in pattern.fuzzy_needs for form in needed}
        self.forms = sorted(form for form in forms if len(form) >= MIN_FUZZY_LETTERS)
        self.form_keys = [phonetic_key(form) for form in self.forms]

    def forms_near(self, heard: str) -> frozenset[str]:
        """The phrase forms of any fuzzy pattern (fuzzy_needs) that `heard` may stand for (a superset)."""
        if len(heard) < MIN_FUZZY_LETTERS or not self.forms:
            return frozenset()
        near: set[str] = set()
        for query, choices in ((heard, self.forms), (phonetic_key(heard), self.form_keys)):
            near.update(self.forms[index] for _, _, index in process.extract(
                query, choices, scorer=Levenshtein.normalized_similarity, score_cutoff=self.least, limit=None))
        return frozenset(near)

    def patterns_near(self, heard: str) -> tuple[Pattern, ...]:
        if len(heard) < MIN_FUZZY_LETTERS or not self.units:
            return ()
        near: dict[int, Pattern] = {}
        for query, choices in ((heard, self.units), (phonetic_key(heard), self.keys)):
            for _, score, index in process.extract(query, choices, scorer=Levenshtein.normalized_similarity,
                                                   score_cutoff=self.least, limit=None):
                pattern = self.patterns[index]
                if score >= (pattern.fuzzy or 1.0):
                    near[id(pattern)] = pattern
        return tuple(near.values())


class Matcher:
    """Matches a set of lexicons against calls, texts and examples."""

    def __init__(self, lexicons: dict[str, LexiconFile]) -> None:
        self.terms: dict[tuple[str, str], CompiledTerm] = {}
        patterns: list[Pattern] = []
        for lexicon_id, lexicon in lexicons.items():
            for term in lexicon.terms:
                self.terms[(lexicon_id, term.id)] = CompiledTerm(
                    lexicon=lexicon_id, term=term, scope=term.speaker or lexicon.speaker,
                    window=term.within or lexicon.within)
                patterns += [_compile_phrase(lexicon, lexicon_id, term, phrase) for phrase in term.phrases]
                patterns += [_compile_phrase(lexicon, lexicon_id, term, phrase, exclusion=True)
                             for phrase in term.exclude]
        for lexicon_id, lexicon in lexicons.items():
            for term in lexicon.terms:
                for included in term.include:  # checked by the loader: an existing term that includes none
                    source_id, source_term_id = included.split("/")
                    source = lexicons[source_id]
                    source_term = next(t for t in source.terms if t.id == source_term_id)
                    for phrase, exclusion in [*((p, False) for p in source_term.phrases),
                                              *((p, True) for p in source_term.exclude)]:
                        pattern = _compile_phrase(source, source_id, source_term, phrase, exclusion=exclusion)
                        patterns.append(dataclasses.replace(pattern, lexicon=lexicon_id, term=term.id))
        self._build(patterns)
        self._near_miss_matchers: dict[tuple[str, str], Matcher] = {}

    def _of_patterns(self, patterns: list[Pattern]) -> Matcher:
        """A matcher of these patterns only, over this one's terms (their scopes and windows)."""
        other = Matcher.__new__(Matcher)
        other.terms = self.terms
        other._near_miss_matchers = {}
        other._build(patterns)
        return other

    def _build(self, patterns: list[Pattern]) -> None:
        self.patterns = patterns
        self._by_lemma: dict[str, list[Pattern]] = {}
        self._by_surface: dict[str, list[Pattern]] = {}
        self._by_prefix: dict[str, list[Pattern]] = {}
        self._candidate_cache: dict[Token, tuple[Pattern, ...]] = {}
        self._fuzzy_cache: dict[str, tuple[Pattern, ...]] = {}
        self._forms_cache: dict[str, frozenset[str]] = {}
        # Per role (None: any), (token, the next word's surface or None) -> (patterns it starts exactly, fuzzy
        # patterns it may start that are not among those): one lookup per word of a call in the hot loop.
        self._start_cache: dict[Role | None, dict[tuple[Token, str | None],
                                                  tuple[tuple[Pattern, ...], tuple[Pattern, ...]]]] = {}
        self._token_forms_cache: dict[tuple[Token, str | None], frozenset[str]] = {}
        for pattern in patterns:
            self._index(pattern)
        self._fuzzy = _FuzzyIndex([pattern for pattern in patterns if pattern.fuzzy])

    def near_misses(self, words: Sequence[Word], turns: Sequence[Turn], duration_s: float, lexicon: str,
                    term: str | None) -> list[Hit]:
        """What may have been the term (every term of `lexicon` if None) said and not recognised, as hits with
        `match` "fuzzy" and how similar they are:

        - its phrases found with a similarity up to NEAR_MISS_MARGIN under their threshold
          (fuzzy.DEFAULT_SIMILARITY for a term that is not fuzzy), in words one of which the recogniser gave a
          probability under NEAR_MISS_MAX_PROB ("из камня" heard clearly is not a garbled "из компании");
        - a word the recogniser made up (no Russian word, probability under NEAR_MISS_MAX_PROB) that sounds
          half like a long word of its phrases ("Патлев" for "Атлет", "лимбельград" for "мебельград").

        The term's speaker applies; the caller applies time windows.
        """
        key = (lexicon, term or "")
        near = self._near_miss_matchers.get(key)
        if near is None:
            near = self._near_miss_matchers[key] = self._of_patterns(
                [dataclasses.replace(p, fuzzy=(p.fuzzy or DEFAULT_SIMILARITY) - NEAR_MISS_MARGIN)
                 for p in self.patterns if p.lexicon == lexicon and (term is None or p.term == term)])
        found = [hit for hit in near.find_hits(words, turns, duration_s) if hit.match == "fuzzy"
                 and any(word.prob < NEAR_MISS_MAX_PROB for word in words
                         if word.role == hit.role and hit.start <= word.start and word.end <= hit.end)]
        return sorted(found + near._garbled(words, turns), key=lambda hit: (hit.start, hit.term))

    def _garbled(self, words: Sequence[Word], turns: Sequence[Turn]) -> list[Hit]:
        """Made-up words of low probability that sound half like a long word of this matcher's phrases."""
        long_words = self._long_words
        if not long_words:
            return []
        known = roles_known(words)
        hits = []
        for segment in segments_of(words, turns):
            for word in segment.words:
                if word.prob >= NEAR_MISS_MAX_PROB:
                    continue
                for token in tokenize(word.text):
                    if len(token.surface) < GARBLED_MIN_LETTERS or is_known_word(token.surface):
                        continue
                    best = max(long_words, key=lambda written: resemblance(token.surface, written))
                    pattern = long_words[best]
                    scope = self.terms[(pattern.lexicon, pattern.term)].scope
                    if resemblance(token.surface, best) < GARBLED_RESEMBLANCE or (
                            known and scope != "any" and segment.role != scope):
                        continue
                    hits.append(Hit(lexicon=pattern.lexicon, term=pattern.term, role=segment.role,
                                    start=word.start, end=word.end, text=word.text, turn=segment.turn,
                                    phrase=pattern.phrase, match="fuzzy",
                                    similarity=round(resemblance(token.surface, best), 3)))
                    break
        return hits

    @functools.cached_property
    def _long_words(self) -> dict[str, Pattern]:
        """The long words of this matcher's phrases as written, each with (the last) pattern holding it: what
        `_garbled` compares made-up words with, once per matcher rather than per call and criterion."""
        return {test.written: pattern for pattern in self.patterns if not pattern.exclusion
                for test in pattern.tests if test.kind != "prefix" and len(test.written) >= MIN_FUZZY_LETTERS}

    def _index(self, pattern: Pattern) -> None:
        first = pattern.tests[0]
        if first.kind == "lemma":
            self._by_lemma.setdefault(first.value, []).append(pattern)
        elif first.kind == "surface":
            self._by_surface.setdefault(first.value, []).append(pattern)
        else:
            self._by_prefix.setdefault(first.value[:PREFIX_KEY], []).append(pattern)

    def _candidates(self, token: Token) -> tuple[Pattern, ...]:
        """Patterns whose first word matches `token`; cached per token, since calls repeat the same words."""
        found = self._candidate_cache.get(token)
        if found is None:
            listed = self._by_lemma.get(token.lemma, []) + self._by_surface.get(token.surface, [])
            for key in {token.surface[:PREFIX_KEY], token.lemma[:PREFIX_KEY]}:
                listed += [p for p in self._by_prefix.get(key, []) if p.tests[0].matches(token)]
            found = self._candidate_cache[token] = tuple(listed)
        return found

    def _fuzzy_candidates(self, heard: str) -> tuple[Pattern, ...]:
        """Fuzzy patterns whose first word (or first two words) is close to `heard`; cached per word form."""
        found = self._fuzzy_cache.get(heard)
        if found is None:
            found = self._fuzzy_cache[heard] = self._fuzzy.patterns_near(heard)
        return found

    @staticmethod
    def _extend(pattern: Pattern, tokens: list[Token], first: int, end: int) -> int | None:
        """Index of the last token of `pattern` matched from `first` on (before `end`), or None."""
        position = first
        for test in pattern.tests[1:]:
            for candidate in range(position + 1, min(end, position + 2 + pattern.gap)):
                if test.matches(tokens[candidate]):
                    position = candidate
                    break
            else:
                return None
        return position

    def _term_spans(self, stream: _TokenStream, *, by_role: bool = False) -> dict[tuple[str, str, int], list[_Match]]:
        """Per (lexicon, term, segment), the non-overlapping matches of the term, exclusions applied. `by_role`
        (the call's roles are known): a segment is matched only against the terms its role may say, since the
        others' hits would be dropped (`hits_in`); most terms belong to one party."""
        found: dict[tuple[str, str, int], list[_Match]] = {}
        excluded: dict[tuple[str, str, int], list[_Match]] = {}
        tokens, vocabulary = stream.tokens, stream.vocabulary
        fuzzy = bool(self._fuzzy.units)
        for segment, (first, end) in enumerate(stream.bounds):
            role = stream.roles[segment] if by_role else None
            cache = self._start_cache.get(role)
            if cache is None:
                cache = self._start_cache[role] = {}
            cached = cache.get  # the hot loop: most words start no phrase at all
            # Per pattern id, the segment's `_may_walk` answer, and what its words may stand for.
            walkable: dict[int, bool] = {}
            forms: frozenset[str] | None = None
            for index in range(first, end):
                token = tokens[index]
                following = tokens[index + 1].surface if fuzzy and index + 1 < end else None
                starts = cached((token, following))
                if starts is None:
                    starts = cache[(token, following)] = self._starts(token, following, role)
                candidates, near = starts
                if not candidates and not near:
                    continue
                for pattern in candidates:
                    match: _Match | None = None
                    if len(pattern.tests) == 1:
                        match = _Match(index, index, pattern.phrase)
                    elif pattern.needs <= vocabulary[segment]:
                        last = self._extend(pattern, tokens, index, end)
                        match = None if last is None else _Match(index, last, pattern.phrase)
                    if match is None and pattern.fuzzy:
                        possible = walkable.get(id(pattern))
                        if possible is None:
                            if forms is None and pattern.fuzzy_needs:
                                forms = self._segment_forms(stream, segment)
                            possible = walkable[id(pattern)] = _may_walk(pattern, forms)
                        if possible:
                            match = _fuzzy_walk(pattern, tokens, index, end)
                    if match is not None:
                        key = (pattern.lexicon, pattern.term, segment)
                        (excluded if pattern.exclusion else found).setdefault(key, []).append(match)
                for pattern in near:
                    possible = walkable.get(id(pattern))
                    if possible is None:
                        if forms is None and pattern.fuzzy_needs:
                            forms = self._segment_forms(stream, segment)
                        possible = walkable[id(pattern)] = _may_walk(pattern, forms)
                    if not possible:
                        continue
                    match = _fuzzy_walk(pattern, tokens, index, end)
                    if match is not None:
                        key = (pattern.lexicon, pattern.term, segment)
                        (excluded if pattern.exclusion else found).setdefault(key, []).append(match)
        spans = {}
        for key, matches in found.items():
            kept: list[_Match] = []
            # Exact before fuzzy, then earliest first, the longer of two that start together; a match that
            # overlaps one kept adds nothing.
            for match in sorted(matches, key=lambda m: (m.fuzzy, m.first, -(m.last - m.first), -m.similarity)):
                if any(other.first <= match.last and match.first <= other.last for other in kept):
                    continue
                if any(e.first <= match.last and match.first <= e.last for e in excluded.get(key, ())):
                    continue
                kept.append(match)
            if kept:
                spans[key] = sorted(kept)
        return spans

    def _starts(self, token: Token, following: str | None,
                role: Role | None = None) -> tuple[tuple[Pattern, ...], tuple[Pattern, ...]]:
        """The patterns `token` starts exactly (`_candidates`), and the fuzzy ones whose first word is only close
        to it or to it written with `following` (`_fuzzy_near`), each once and not among the first; with `role`,
        only those of terms that role may say. `_term_spans` caches it per pair and role, as calls repeat their
        words."""
        candidates = self._candidates(token)
        exact = {id(pattern) for pattern in candidates}
        near: dict[int, Pattern] = {}
        if self._fuzzy.units:
            for pattern in self._fuzzy_near(token, following):
                if id(pattern) not in exact and id(pattern) not in near and _may_start(pattern, token, following):
                    near[id(pattern)] = pattern
        if role is None:
            return candidates, tuple(near.values())
        return (tuple(pattern for pattern in candidates if self._said_by(pattern, role)),
                tuple(pattern for pattern in near.values() if self._said_by(pattern, role)))

    def _said_by(self, pattern: Pattern, role: Role) -> bool:
        """Whether a hit of `pattern` counts when `role` says it (its term's speaker scope)."""
        return self.terms[(pattern.lexicon, pattern.term)].scope in ("any", role)

    def _segment_forms(self, stream: _TokenStream, segment: int) -> frozenset[str]:
        """Every phrase form of a fuzzy pattern that a word of the segment (its form, its lemma, it written
        together with the next word) is, or may stand for (`_may_walk`)."""
        first, end = stream.bounds[segment]
        near: set[str] = set(stream.vocabulary[segment])
        for position in range(first, end):
            token = stream.tokens[position]
            following = stream.tokens[position + 1].surface if position + 1 < end else None
            near |= self._token_forms(token, following)
        return frozenset(near)

    def _token_forms(self, token: Token, following: str | None) -> frozenset[str]:
        """`_forms_near` of the token's form, its lemma and it written with the next word, cached per pair."""
        key = (token, following)
        found = self._token_forms_cache.get(key)
        if found is None:
            found = self._forms_near(token.surface) | self._forms_near(token.lemma)
            if following is not None:
                found |= self._forms_near((token.surface + following).replace("-", ""))
            self._token_forms_cache[key] = found
        return found

    def _forms_near(self, heard: str) -> frozenset[str]:
        found = self._forms_cache.get(heard)
        if found is None:
            found = self._forms_cache[heard] = self._fuzzy.forms_near(heard)
        return found

    def _fuzzy_near(self, token: Token, following: str | None) -> tuple[Pattern, ...]:
        """Fuzzy patterns whose first word is close to `token` (its form or lemma), or to it written together
        with the word that follows ("авта" + "сервис"); `_starts` caches it per pair."""
        near = self._fuzzy_candidates(token.surface)
        if token.lemma != token.surface:
            near += self._fuzzy_candidates(token.lemma)
        if following is not None:
            near += self._fuzzy_candidates((token.surface + following).replace("-", ""))
        return near

    def call_matches(self, words: Sequence[Word], turns: Sequence[Turn]) -> CallMatches:
        """Every term's matches in each turn of a call, before speaker scopes and time windows (`hits_in`). Where
        the call's roles are known, a turn is searched only for the terms its role may say."""
        segments = segments_of(words, turns)
        stream = _TokenStream.of(segments)
        by_role = roles_known(words)
        return CallMatches(segments, stream, self._term_spans(stream, by_role=by_role), by_role)

    def hits_in(self, matches: CallMatches, duration_s: float | None,
                roles: Mapping[str, Role] | None = None) -> list[Hit]:
        """The hits of `call_matches`, in time order, filtered by each term's speaker scope and time window.

        `roles`: each speaker's role, where the call was searched before its roles were known (a diarized mono
        call is searched once, for its role cues, and its hits are these matches with the roles found): the
        turns' words carry the same times and texts either way, and a search of turns whose role is unknown
        finds every term's matches. None: the roles of the words searched.
        """
        segments, stream = matches.segments, matches.stream
        if roles is None:
            segment_roles, known = [segment.role for segment in segments], matches.by_role
        elif matches.by_role:
            raise ValueError("hits_in: a call searched by its roles cannot take other roles")
        else:
            segment_roles = [roles.get(segment.words[0].speaker, "unknown") for segment in segments]
            known = bool(segments) and "unknown" not in segment_roles  # every word is in a segment
        hits: list[dict] = []
        for (lexicon, term_id, segment_index), spans in matches.spans.items():
            compiled = self.terms[(lexicon, term_id)]
            segment, role = segments[segment_index], segment_roles[segment_index]
            if known and compiled.scope != "any" and role != compiled.scope:
                continue
            for match in spans:
                words = segment.words[stream.word_of[match.first][1] : stream.word_of[match.last][1] + 1]
                start, end = words[0].start, words[-1].end
                if compiled.window and duration_s is not None and not compiled.window.contains(start, end,
                                                                                              duration_s):
                    continue
                hits.append({"lexicon": lexicon, "term": term_id, "role": role, "start": start, "end": end,
                             "text": " ".join([word.text for word in words]), "turn": segment.turn,
                             "phrase": match.phrase, "match": "fuzzy" if match.fuzzy else "lemma",
                             "similarity": match.similarity, "missing": match.missing})
        # Validated as one list, strictly (the values are the words' and the matcher's own): about half the time
        # of building each Hit on its own.
        found = _HITS.validate_python(hits, strict=True)
        return sorted(found, key=lambda hit: (hit.start, hit.lexicon, hit.term))

    def find_hits(self, words: Sequence[Word], turns: Sequence[Turn], duration_s: float) -> list[Hit]:
        """All hits in a call, in time order, filtered by each term's speaker scope and time window.

        Where roles are unknown (a mono call before diarization), terms scoped to a role still match, with the
        hit's role "unknown": a QA lead sees what was said, and scoring knows it cannot judge who said it.
        """
        return self.hits_in(self.call_matches(words, turns), duration_s)

    def _text_spans(self, text: str) -> tuple[_TokenStream, dict]:
        words = [Word(start=0.0, end=0.0, text=text, speaker="text", role="unknown", prob=1.0)]
        stream = _TokenStream.of([Segment(words, "unknown", None)])
        return stream, self._term_spans(stream)

    def matches_text(self, text: str, lexicon: str, term: str) -> bool:
        """Does `term` match somewhere in `text` (speaker scope and time window ignored)? For examples."""
        return self.match_text(text, lexicon, term) is not None

    def match_text(self, text: str, lexicon: str, term: str) -> TextHit | None:
        """The first hit of `term` in `text` (scope and window ignored), or None."""
        return next((hit for hit in self.text_hits(text) if (hit.lexicon, hit.term) == (lexicon, term)), None)

    def text_hits(self, text: str) -> list[TextHit]:
        """Each hit in free text, scope and window ignored."""
        stream, spans = self._text_spans(text)
        return [TextHit(lexicon, term, match.phrase,
                        " ".join(t.surface for t in stream.tokens[match.first : match.last + 1]),
                        match.similarity, match.missing, match.fuzzy, match.first, match.last)
                for (lexicon, term, _), found in sorted(spans.items())
                for match in found]
