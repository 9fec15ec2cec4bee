"""How close a recognised word is to a lexicon word, in spelling and in sound: recognition-tolerant matching.

whisper-base misspells what it half hears, mostly in names and long words: "Стамутология" for "Стоматология",
"Мибельград" for "МебельГрад", "Авта -сервис" for "автосервис", "Искомпании" for "из компании". Speech-analytics
systems have long matched keywords by how they sound rather than by how the recogniser spelt them; this module
does both, for the words of a lexicon term marked `fuzzy`:

- spelling: Levenshtein distance scaled to the longer word (rapidfuzz), on the word forms and on the lemmas;
- sound: the same on a Russian phonetic key (`phonetic_key`): unstressed о/а and е/и/я/э/ы merge, voiced
  consonants at the end of a word or before a voiceless one are devoiced, doubled letters and ь/ъ vanish, тс/дс
  and ться/тся sound as ц.

The best of the four similarities counts. Words shorter than `MIN_FUZZY_LETTERS` on either side stay exact:
between "дом" and "дым" one letter is a third of the word, and short words are where recognition is best. Words
must begin with the same sound (не- and other prefixes change the meaning), and a heard word that is itself in
the dictionary needs `KNOWN_WORD_SIMILARITY` ("доброго" is not a misheard "дорого").
"""

from __future__ import annotations

import functools
import re

from rapidfuzz.distance import Levenshtein

from pipeline.lexicon.text import is_known_word
from pipeline.support.russian import NEGATIONS

__all__ = ["DEFAULT_SIMILARITY", "MIN_FUZZY_LETTERS", "is_skippable", "phonetic_key", "resemblance",
           "similarity", "similarity_rejoined"]

# `fuzzy: true`, as the lexicon contract says: one wrong letter in five, two in ten; a phonetic key equal counts
# as 1.0. What keeps "форму" from passing for "фирма" is KNOWN_WORD_SIMILARITY below: a letter that changes the
# sound of a real five-letter word makes another word, while a made-up word ("средут") is a mis-hearing.
DEFAULT_SIMILARITY = 0.8
MIN_FUZZY_LETTERS = 5
# A heard word that is itself a Russian word must be this close (or sound the same): recognition errors mostly
# make non-words ("Стамутология"), and a real word one letter off is often just another word.
KNOWN_WORD_SIMILARITY = 0.9

_VOWELS = str.maketrans({"о": "а", "ё": "и", "е": "и", "я": "и", "э": "и", "ы": "и", "ю": "у", "й": "и"})
_DEVOICED = {"б": "п", "в": "ф", "г": "к", "д": "т", "ж": "ш", "з": "с"}
_VOICELESS = set("пфктшсхцчщ")
_SOUNDS = ((re.compile(r"т?ь?ся$"), "ца"), (re.compile(r"[тд]с"), "ц"), (re.compile(r"сч|зч|жч"), "щ"),
           (re.compile(r"[ьъ]"), ""))


@functools.lru_cache(maxsize=200_000)
def phonetic_key(word: str) -> str:
    """A coarse key of how a lower-case Russian word sounds: words that sound alike share it.

    >>> phonetic_key("стоматология") == phonetic_key("стаматалогия")
    True
    """
    key = word.replace("ё", "е")
    for pattern, sound in _SOUNDS:
        key = pattern.sub(sound, key)
    letters = list(key)
    for index, letter in enumerate(letters):
        following = letters[index + 1] if index + 1 < len(letters) else None
        if letter in _DEVOICED and (following is None or following in _VOICELESS):
            letters[index] = _DEVOICED[letter]
    key = "".join(letters).translate(_VOWELS)
    return re.sub(r"(.)\1+", r"\1", key)


@functools.lru_cache(maxsize=200_000)  # a night repeats the same few thousand heard forms against the same phrases
def similarity(heard: str, meant: str) -> float:
    """Similarity in [0, 1] of a heard word form to a lexicon word form, in spelling or in sound (the better).

    0.0 where either is shorter than MIN_FUZZY_LETTERS letters and they differ (short words stay exact), or
    where they do not begin with the same sound (a prefix such as не- changes the meaning).
    """
    if heard == meant:
        return 1.0
    if len(heard) < MIN_FUZZY_LETTERS or len(meant) < MIN_FUZZY_LETTERS:
        return 0.0
    if phonetic_key(heard)[:1] != phonetic_key(meant)[:1]:
        return 0.0  # words begin alike: "интересно" is not "неинтересно", nor "удобно" "неудобно"
    found = max(Levenshtein.normalized_similarity(heard, meant),
                Levenshtein.normalized_similarity(phonetic_key(heard), phonetic_key(meant)))
    if found < KNOWN_WORD_SIMILARITY and is_known_word(heard):
        return 0.0  # a real word heard clearly as itself: "доброго" is not a misheard "дорого"
    return found


# A word a recogniser drops without changing what was meant: prepositions, conjunctions, particles and the
# shortest adverbs ("уже", "еще", "там"); never a negation.
_SKIPPABLE_PARTS = {"PREP", "CONJ", "PRCL"}


def is_skippable(surface: str, part_of_speech: str | None) -> bool:
    """Whether a phrase word may be missing from a fuzzy match (one at most, never the first or the last)."""
    if surface in NEGATIONS:
        return False
    return part_of_speech in _SKIPPABLE_PARTS or (part_of_speech == "ADVB" and len(surface) <= 3)


def resemblance(heard: str, meant: str) -> float:
    """A looser `similarity` for doubts, not matches: the better of spelling and sound, any length, any first
    sound ("лимбельград" half resembles "мебельград")."""
    return max(Levenshtein.normalized_similarity(heard, meant),
               Levenshtein.normalized_similarity(phonetic_key(heard), phonetic_key(meant)))


@functools.lru_cache(maxsize=200_000)
def similarity_rejoined(heard: str, meant: str, parts: tuple[str, ...], heard_parts: tuple[str, ...] = ()) -> float:
    """`similarity` of words cut differently by the recogniser and the lexicon ("искомпании" for "из компании",
    "авта -сервис" for "автосервис"): `heard` and `meant` are the joined forms, `parts` every word joined on
    either side, `heard_parts` the heard words joined. 0.0 where a negation would be absorbed ("интересно" is not
    "не интересно"), and heard words that are each a Russian word need `KNOWN_WORD_SIMILARITY`, as one such word
    does: "сто, это" sounds nearly like "стоит" but was heard clearly as two words."""
    if NEGATIONS.intersection(parts):
        return 0.0
    found = similarity(heard, meant)
    if found < KNOWN_WORD_SIMILARITY and len(heard_parts) > 1 and all(map(is_known_word, heard_parts)):
        return 0.0
    return found
