"""Finding lexicon phrases in what each party said.

Phrases are compiled into patterns of word tests (a lemma, an exact word form, or a prefix for `дорог*`) and
indexed by their first word, so each word of a call is looked up once instead of tried against every phrase: a
five-minute call is matched in about a millisecond. A phrase matches inside one turn (never across speakers),
its words in order with at most `gap` other words between two of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain

from pipeline.lexicon.model import LexiconFile, PhraseSpec, Scope, Term, Window, phrase_words
from pipeline.lexicon.text import Token, tokenize
from pipeline.schema import Hit, Role, Turn, Word, roles_known

__all__ = ["Matcher", "Pattern", "Segment", "segments_of"]

PREFIX_KEY = 3  # prefixes are indexed by their first three letters (wildcards need at least three)


@dataclass(frozen=True)
class _WordTest:
    kind: str  # "lemma" | "surface" | "prefix"
    value: str

    def matches(self, token: Token) -> bool:
        if self.kind == "lemma":
            return token.lemma == self.value
        if self.kind == "surface":
            return token.surface == self.value
        return token.surface.startswith(self.value) or token.lemma.startswith(self.value)


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

    `word_of[i]` is (segment index, word index in the segment) of token i; `segment_end[i]` is the index after
    the last token of token i's segment: a phrase never runs past it; `vocabulary[s]` holds every surface form
    and lemma of segment s.
    """

    tokens: list[Token] = field(default_factory=list)
    word_of: list[tuple[int, int]] = field(default_factory=list)
    segment_end: list[int] = field(default_factory=list)
    vocabulary: list[frozenset[str]] = field(default_factory=list)

    @classmethod
    def of(cls, segments: Sequence[Segment]) -> _TokenStream:
        stream = cls()
        for segment_index, segment in enumerate(segments):
            first = len(stream.tokens)
            for word_index, word in enumerate(segment.words):
                for token in tokenize(word.text):
                    stream.tokens.append(token)
                    stream.word_of.append((segment_index, word_index))
            stream.segment_end += [len(stream.tokens)] * (len(stream.tokens) - first)
            stream.vocabulary.append(frozenset(chain.from_iterable(stream.tokens[first:])))
        return stream


def segments_of(words: Sequence[Word], turns: Sequence[Turn]) -> list[Segment]:
    """Split a call's words into the turns they belong to (a turn holds its speaker's words within its span)."""
    by_speaker: dict[str, list[Word]] = {}
    for word in words:
        by_speaker.setdefault(word.speaker, []).append(word)
    position = dict.fromkeys(by_speaker, 0)
    segments = []
    for index, turn in enumerate(turns):
        own = by_speaker.get(turn.speaker, [])
        first = position.get(turn.speaker, 0)
        last = first
        while last < len(own) and own[last].start <= turn.end:
            last += 1
        position[turn.speaker] = last
        if last > first:
            segments.append(Segment(own[first:last], turn.role, index))
    return segments


def _compile_phrase(lexicon: str, term: Term, phrase: str | PhraseSpec, *, exclusion: bool = False) -> Pattern:
    text = phrase.text if isinstance(phrase, PhraseSpec) else phrase
    gap = phrase.gap if isinstance(phrase, PhraseSpec) and phrase.gap is not None else term.gap
    exact = phrase.exact if isinstance(phrase, PhraseSpec) and phrase.exact is not None else term.exact
    tests = []
    for kind, value in phrase_words(text):
        if kind == "prefix":
            tests.append(_WordTest("prefix", value))
        elif exact:
            tests.append(_WordTest("surface", value))
        else:
            tests.append(_WordTest("lemma", tokenize(value)[0].lemma))
    return Pattern(lexicon=lexicon, term=term.id, phrase=text, tests=tuple(tests), gap=gap,
                   exclusion=exclusion, needs=frozenset(test.value for test in tests[1:] if test.kind != "prefix"))


class Matcher:
    """Matches a set of lexicons against calls, texts and examples."""

    def __init__(self, lexicons: dict[str, LexiconFile]) -> None:
        self.terms: dict[tuple[str, str], CompiledTerm] = {}
        self._by_lemma: dict[str, list[Pattern]] = {}
        self._by_surface: dict[str, list[Pattern]] = {}
        self._by_prefix: dict[str, list[Pattern]] = {}
        self._candidate_cache: dict[Token, tuple[Pattern, ...]] = {}
        for lexicon_id, lexicon in lexicons.items():
            for term in lexicon.terms:
                self.terms[(lexicon_id, term.id)] = CompiledTerm(
                    lexicon=lexicon_id, term=term, scope=term.speaker or lexicon.speaker,
                    window=term.within or lexicon.within)
                for phrase in term.phrases:
                    self._index(_compile_phrase(lexicon_id, term, phrase))
                for phrase in term.exclude:
                    self._index(_compile_phrase(lexicon_id, term, phrase, exclusion=True))

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

    def _term_spans(self, stream: _TokenStream) -> dict[tuple[str, str, int], list[tuple[int, int, str]]]:
        """Per (lexicon, term, segment), the non-overlapping token spans it matches, exclusions applied."""
        found: dict[tuple[str, str, int], list[tuple[int, int, str]]] = {}
        excluded: dict[tuple[str, str, int], list[tuple[int, int]]] = {}
        tokens, segment_end, vocabulary = stream.tokens, stream.segment_end, stream.vocabulary
        cached = self._candidate_cache.get  # the hot loop: most words start no phrase at all
        for index, token in enumerate(tokens):
            candidates = cached(token)
            if candidates is None:
                candidates = self._candidates(token)
            if not candidates:
                continue
            segment = stream.word_of[index][0]
            for pattern in candidates:
                if len(pattern.tests) == 1:
                    last: int | None = index
                elif pattern.needs <= vocabulary[segment]:
                    last = self._extend(pattern, tokens, index, segment_end[index])
                else:
                    continue
                if last is None:
                    continue
                key = (pattern.lexicon, pattern.term, segment)
                if pattern.exclusion:
                    excluded.setdefault(key, []).append((index, last))
                else:
                    found.setdefault(key, []).append((index, last, pattern.phrase))
        spans = {}
        for key, matches in found.items():
            kept: list[tuple[int, int, str]] = []
            # Earliest first, the longer of two that start together; an overlapped later match adds nothing.
            for first, last, phrase in sorted(matches, key=lambda c: (c[0], -(c[1] - c[0]))):
                if kept and first <= kept[-1][1]:
                    continue
                if any(e_first <= last and first <= e_last for e_first, e_last in excluded.get(key, ())):
                    continue
                kept.append((first, last, phrase))
            if kept:
                spans[key] = kept
        return spans

    def _hits(self, segments: list[Segment], *, duration_s: float | None, roles_known: bool) -> list[Hit]:
        stream = _TokenStream.of(segments)
        hits = []
        for (lexicon, term_id, segment_index), spans in self._term_spans(stream).items():
            compiled = self.terms[(lexicon, term_id)]
            segment = segments[segment_index]
            if roles_known and compiled.scope != "any" and segment.role != compiled.scope:
                continue
            for first, last, phrase in spans:
                words = segment.words[stream.word_of[first][1] : stream.word_of[last][1] + 1]
                start, end = words[0].start, words[-1].end
                if compiled.window and duration_s is not None and not compiled.window.contains(start, end,
                                                                                              duration_s):
                    continue
                hits.append(Hit(lexicon=lexicon, term=term_id, role=segment.role, start=start,
                                                end=end, text=" ".join(word.text for word in words),
                                                turn=segment.turn, phrase=phrase))
        return hits

    def find_hits(self, words: Sequence[Word], turns: Sequence[Turn], duration_s: float) -> list[Hit]:
        """All hits in a call, in time order, filtered by each term's speaker scope and time window.

        Where roles are unknown (a mono call before diarization), terms scoped to a role still match, with the
        hit's role "unknown": a QA lead sees what was said, and scoring knows it cannot judge who said it.
        """
        known = roles_known(words)
        hits = self._hits(segments_of(words, turns), duration_s=duration_s, roles_known=known)
        return sorted(hits, key=lambda hit: (hit.start, hit.lexicon, hit.term))

    def _text_spans(self, text: str) -> tuple[_TokenStream, dict]:
        words = [Word(start=0.0, end=0.0, text=text, speaker="text", role="unknown", prob=1.0)]
        stream = _TokenStream.of([Segment(words, "unknown", None)])
        return stream, self._term_spans(stream)

    def matches_text(self, text: str, lexicon: str, term: str) -> bool:
        """Does `term` match somewhere in `text` (speaker scope and time window ignored)? For examples."""
        return (lexicon, term, 0) in self._text_spans(text)[1]

    def text_hits(self, text: str) -> list[tuple[str, str, str, str]]:
        """(lexicon, term, phrase, matched words) for each hit in free text, scope and window ignored."""
        stream, spans = self._text_spans(text)
        return [(lexicon, term, phrase, " ".join(t.surface for t in stream.tokens[first : last + 1]))
                for (lexicon, term, _), found in sorted(spans.items())
                for first, last, phrase in found]
