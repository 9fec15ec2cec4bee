"""Russian text normalisation shared by lexicon matching and evaluation.

Words are lower-cased with ё as е, punctuation dropped and digits spelled out in Russian words ("180" -> "сто
восемьдесят"), since Whisper writes numbers as digits while people write scripts and lexicons in words. `lemma`
reduces a word to its dictionary form with pymorphy3, cached per word form (the analyser is the slow part).
"""

from __future__ import annotations

import functools
import re

from num2words import num2words

__all__ = ["lemma", "lemmas", "normalise_words"]

_TOKEN = re.compile(r"\d+(?:[.,]\d+)?|[^\W\d_]+(?:-[^\W\d_]+)*", re.UNICODE)


def _spell_number(token: str) -> list[str]:
    try:
        value = float(token.replace(",", ".")) if ("." in token or "," in token) else int(token)
        return num2words(value, lang="ru").replace("-", " ").split()
    except (ValueError, OverflowError, NotImplementedError):
        return [token]


def normalise_words(text: str) -> list[str]:
    """Lower-case words of `text` with ё as е, punctuation dropped and digits spelled out in Russian."""
    words: list[str] = []
    for token in _TOKEN.findall(text.lower().replace("ё", "е")):
        words.extend(_spell_number(token) if token[0].isdigit() else [token])
    return words


@functools.cache
def _morph():
    import pymorphy3

    return pymorphy3.MorphAnalyzer(lang="ru")


@functools.lru_cache(maxsize=200_000)
def lemma(word: str) -> str:
    return _morph().parse(word)[0].normal_form.replace("ё", "е")


def lemmas(text: str) -> list[str]:
    return [lemma(word) for word in normalise_words(text)]
