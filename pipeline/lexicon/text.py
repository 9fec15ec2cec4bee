"""Russian text normalisation shared by lexicon matching and evaluation.

Text is split by spaCy's Russian tokenizer (`spacy.blank("ru")`, no trained model), then each token is
lower-cased with ё as е, punctuation is dropped and numbers are spelled out in Russian words ("180" -> "сто
восемьдесят"): Whisper writes numbers as digits while people write scripts and lexicons in words, so both sides
meet in words. `lemma` reduces a word to its dictionary form with pymorphy3 (its C DAWG backend), cached per
word form: a night of calls repeats the same few thousand forms, and the analyser is the slow part.

Most texts tokenised are one word: a recognised word ("Здравствуйте,", "кто-то", "7%.") or a word of a lexicon's
phrase. For a plain word spaCy's answer is known without it (`_plain_surfaces`, checked against spaCy itself in
tests/test_lexicon_text.py): spaCy, a second of CPU to load, is loaded only for a text of another shape.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import re
import sys
import threading
from collections.abc import Iterator
from importlib import metadata
from typing import NamedTuple

from num2words import num2words

__all__ = ["Token", "cache_statistics", "is_known_word", "lemma", "lemmas", "normalise_words", "part_of_speech",
           "tokenize",
           "warm_up", "warm_up_in_background"]


class Token(NamedTuple):
    """One normalised word: its lower-cased surface form (ё as е) and its lemma."""

    surface: str
    lemma: str


# spaCy and pymorphy3 load on first use (importing spaCy is about 0.7 s; most texts never need it). pymorphy3
# may be loaded by `warm_up` in a background thread while the caller does other work, and a text that is not a
# plain word may ask for spaCy from any thread: each loader runs once, whoever asks first.
_tokenizer_lock = threading.Lock()
_morph_lock = threading.Lock()


def _tokenizer():
    with _tokenizer_lock:
        return _load_tokenizer()


def _morph():
    with _morph_lock:
        return _load_morph()


@functools.cache
def _load_tokenizer():
    with _torch_hidden_from_this_thread():
        import spacy

        return spacy.blank("ru").tokenizer


class _NoTorch(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.thread = threading.get_ident()

    def find_spec(self, fullname, path, target=None):
        if threading.get_ident() == self.thread and (fullname == "torch" or fullname.startswith("torch.")):
            raise ModuleNotFoundError(f"{fullname} is not needed to tokenise", name=fullname)
        return None


@contextlib.contextmanager
def _torch_hidden_from_this_thread() -> Iterator[None]:
    """While spaCy loads: thinc, its array library, imports torch whenever it is installed (it is, for the
    diarizer) and asks CUDA for its devices, which costs 1.3 s and 585 MB per process for a tokenizer that uses
    neither. Only imports made by this thread are refused, and a torch another part already loaded is kept."""
    if "torch" in sys.modules:
        yield
        return
    finder = _NoTorch()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


@functools.cache
def _load_morph():
    import pymorphy3

    return pymorphy3.MorphAnalyzer(lang="ru")


def warm_up() -> None:
    """Load the morphological analyser now, as a word to match would. Not spaCy: a recognised word seldom needs
    it (`_plain_surfaces`), and it loads when one does."""
    tokenize("прогреть")


_warming: list[threading.Thread] = []


def warm_up_in_background() -> None:
    """Start `warm_up` in a daemon thread, once per process: the caller's next seconds (decoding, recognition,
    which release the GIL) hide pymorphy3's loading, and matching later finds it loaded."""
    with _morph_lock:
        if _warming or _load_morph.cache_info().currsize:
            return
        _warming.append(threading.Thread(target=warm_up, name="callqa-text-warm-up", daemon=True))
    _warming[0].start()


def _spell_number(token: str) -> list[str]:
    try:
        value = float(token.replace(",", ".")) if ("." in token or "," in token) else int(token)
        return num2words(value, lang="ru").replace("-", " ").split()
    except (ValueError, OverflowError, NotImplementedError):
        return [token]


# A word of letters (its parts joined by hyphens, or one part after a hyphen: Whisper's "-то"), or of digits
# (a percent sign after them), in quotes or brackets, followed by sentence punctuation: spaCy splits the quotes,
# brackets, punctuation and the percent sign off as tokens of their own, which have no letter or digit and are
# dropped, and splits the word at its inner hyphens.
_PLAIN_WORD = re.compile(r"[«\"„“(]*(?P<word>-?[а-яa-z]+(?:-[а-яa-z]+)*|[0-9]+%?)[»\"“”),.!?…;:]*")
# spaCy's Russian special cases (lower-case) of that shape for which spaCy's answer is not the rule's: it keeps
# them whole ("тыс.", "г-н", the emoticon "8)") where the rule would split them. A text in which one may be found
# goes to spaCy. tests/test_lexicon_text.py derives this set from the installed spaCy and fails when it changes.
_KEPT_WHOLE = frozenset("""
    (o: 8) a. b. c. coop. d. e. f. g. h. i. j. k. l. m. n. o. p. q. r. s. t. u. v. w. x. y. z. авг. ак. акад.
    ал. апр. асп. б-г б-р в-ки взв. взд. влд. воскр. вс. вскр. вт. г-да г-ж г-жа г-к г-н г. гг. гп. д-р д. двлд.
    дек. дир. долл. дор. доц. з-ка зд. ззд. зим. им. июл. июн. к-цо к. кв-л кв. киш. ком. кот. кп. лн. м-ко мар.
    мгстр. мкр. мрт. наб. наст. нбр. ноя. нояб. обл. окт. октб. ост-в оф. п-б п-к п. пав. пгт. пер-д пер. пл-ка
    пл. платф. пн. подв. помещ. пос. пр-д пр-к пр-ка пр-кт пр-лок прим. проул. проф. пт. р-н респ. рзд. рп. руб.
    с-к с-р с. сб. сбт. сен. сент. сзд. скл. сл. см. сокр. ср. ст-ца ст. стр. тер. тов. туп. тыс. у. ул. ус.
    фев. февр. х. чел. чт. чтв. ш. ю. янв.
""".split())


# The spaCy release `_KEPT_WHOLE` was derived from. With another one installed (pyproject.toml allows 3.7 to 3.x;
# requirements.lock pins this one), its special cases may differ, so every text goes to spaCy.
_KEPT_WHOLE_SPACY = "3.8.18"


@functools.cache
def _plain_rule_applies() -> bool:
    try:
        return metadata.version("spacy") == _KEPT_WHOLE_SPACY
    except metadata.PackageNotFoundError:
        return False


def _plain_rule(text: str) -> tuple[tuple[str, ...], int, int] | None:
    """The surfaces of `text` (lower-case, ё as е, no outer spaces) by the plain-word rule, with where its word
    starts and ends; None when it is not a plain word. Special cases are not looked at here."""
    found = _PLAIN_WORD.fullmatch(text)
    if found is None:
        return None
    word, (start, end) = found["word"], found.span("word")
    if word[0].isdigit():
        return tuple(_spell_number(word.rstrip("%"))), start, end
    if word[0] == "-":
        return ((word,), start, end) if "-" not in word[1:] else None
    return tuple(word.split("-")), start, end


def _plain_surfaces(lowered: str) -> tuple[str, ...] | None:
    """What spaCy's tokenizer and `_surfaces` make of `lowered` (lower-case, ё as е) when it is a plain word
    (`_PLAIN_WORD`) that holds none of `_KEPT_WHOLE` (spaCy looks for special cases in the word with any of the
    quotes and punctuation around it), or has no letter or digit at all; None for any other text."""
    if not any(ch.isalnum() for ch in lowered):
        return ()  # every token of it would be dropped
    text = lowered.strip(" ")
    rule = _plain_rule(text)
    if rule is None:
        return None
    surfaces, start, end = rule
    if any(text[first:last] in _KEPT_WHOLE for first in range(start + 1) for last in range(end, len(text) + 1)):
        return None
    return surfaces


@functools.lru_cache(maxsize=100_000)
def _surfaces(text: str) -> tuple[str, ...]:
    lowered = text.lower().replace("ё", "е")
    plain = _plain_surfaces(lowered) if _plain_rule_applies() else None
    return plain if plain is not None else _spacy_surfaces(lowered)


def _spacy_surfaces(lowered: str) -> tuple[str, ...]:
    """The words of `lowered` (lower-case, ё as е) by spaCy's tokenizer: punctuation dropped, numbers spelled."""
    words: list[str] = []
    for token in _tokenizer()(lowered):
        if token.is_punct or token.is_space or not any(ch.isalnum() for ch in token.text):
            continue
        if token.text[0].isdigit() and token.like_num:
            words.extend(_spell_number(token.text))
        else:
            words.append(token.text.strip("«»\"'„“”"))
    return tuple(word for word in words if word)


@functools.lru_cache(maxsize=200_000)
def lemma(word: str) -> str:
    """The dictionary form of a lower-case word (pymorphy3's most likely parse), ё as е."""
    return _morph().parse(word)[0].normal_form.replace("ё", "е")


@functools.lru_cache(maxsize=200_000)
def is_known_word(word: str) -> bool:
    """Whether a lower-case word is in pymorphy3's dictionary (a word the recogniser made up is not)."""
    return bool(_morph().word_is_known(word))


def part_of_speech(word: str) -> str | None:
    """pymorphy3's part of speech of a lower-case word in its most likely reading ("PREP", "VERB", ...)."""
    return _morph().parse(word)[0].tag.POS


@functools.lru_cache(maxsize=100_000)
def tokenize(text: str) -> tuple[Token, ...]:
    """Normalised tokens of `text` (a phrase, an example, or one recognised word with its punctuation)."""
    return tuple(Token(surface, lemma(surface)) for surface in _surfaces(text))


def normalise_words(text: str) -> list[str]:
    """Lower-case words of `text` with ё as е, punctuation dropped and numbers spelled out in Russian."""
    return list(_surfaces(text))


def lemmas(text: str) -> list[str]:
    return [token.lemma for token in tokenize(text)]


def cache_statistics() -> dict[str, float]:
    """Hit rates of the per-text token cache and the per-word-form lemma cache (for benchmarks)."""
    statistics = {}
    for name, cached in (("tokens", tokenize), ("lemmas", lemma)):
        info = cached.cache_info()
        calls = info.hits + info.misses
        statistics[f"{name}_hit_rate"] = info.hits / calls if calls else 0.0
        statistics[f"{name}_cached"] = info.currsize
    return statistics
