"""Tokenising without spaCy where spaCy's answer is known (pipeline/lexicon/text.py, `_plain_surfaces`): the rule
gives exactly what spaCy's Russian tokenizer gives, on every text it takes, and a fresh process that tokenises
recognised words of the usual shapes never imports spaCy."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.lexicon import text
from pipeline.lexicon.text import _KEPT_WHOLE, _plain_rule, _plain_rule_applies, _plain_surfaces, _tokenizer
from pipeline.lexicon.text import _spacy_surfaces as spacy_surfaces  # every text through spaCy, as before the rule

REPO = Path(__file__).resolve().parents[1]

# What Whisper writes around a word, and what people write around one in lexicons and scripts.
BEFORE = ["", "«", "\"", "(", "„", " ", "-"]
AFTER = ["", ",", ".", "!", "?", "…", ":", ";", "»", "\"", ")", "%", "...", "?!", ".»", "».", "%.", "),", " "]
# Shapes seen in recognised words, among them every one the rule takes.
WHISPER_WORDS = ["Здравствуйте,", " Алло!", "кто-то", "-то", "-за", "по-моему.", "7%.", "15%,", "«Транслын».",
                 "–", "%?", "180", "2024", "007", "ok.", "e-mail", "Ёлки", "тыс.", "г-н", "руб.", "10:30", "1-й",
                 "т.е.", "н.э.", "8)", "(o:", "а-а-а", "вс", "вс.", "ряд.", "кв-л,", "2к15"]


def _corpus() -> set[str]:
    words = set(WHISPER_WORDS) | set(_tokenizer().rules)
    for path in (REPO / "tests" / "data" / "calls").glob("*.truth.json"):
        for utterance in json.loads(path.read_text(encoding="utf-8"))["utterances"]:
            words.update(utterance["text"].split())
    for path in (REPO / "lexicons").glob("*.yaml"):
        words.update(re.findall(r"[\w-]+", path.read_text(encoding="utf-8")))
    # Each also bare, so that every quote and punctuation mark in BEFORE and AFTER meets every word.
    return words | {re.sub(r"^[«\"„“(]+|[»\"“”),.!?…;:%]+$", "", word) for word in words}


def test_the_plain_word_rule_gives_what_spacy_gives_on_every_text_it_takes() -> None:
    taken = checked = 0
    mismatches = []
    for word in sorted(_corpus()):
        for before in BEFORE:
            for after in AFTER:
                lowered = (before + word + after).lower().replace("ё", "е")
                checked += 1
                plain = _plain_surfaces(lowered)
                if plain is None:
                    continue
                taken += 1
                if plain != spacy_surfaces(lowered):
                    mismatches.append((lowered, plain, spacy_surfaces(lowered)))
    assert not mismatches, mismatches[:20]
    assert taken > 0.5 * checked  # the rule does the work; spaCy is the exception


@pytest.mark.parametrize(("word", "surfaces"), [
    ("Здравствуйте,", ("здравствуйте",)), ("кто-то", ("кто", "то")), ("-то", ("-то",)), ("7%.", ("семь",)),
    ("«Транслын».", ("транслын",)), ("–", ()), ("180", ("сто", "восемьдесят")), ("Ёлки", ("елки",)),
])
def test_the_usual_shapes_of_recognised_words_need_no_spacy(word: str, surfaces: tuple[str, ...]) -> None:
    assert _plain_surfaces(word.lower().replace("ё", "е")) == surfaces


@pytest.mark.parametrize("word", ["тыс.", "г-н", "8)", "(o:", "«руб.»", "10:30", "1-й", "т.е.", "2к15"])
def test_what_spacy_keeps_whole_or_splits_otherwise_goes_to_spacy(word: str) -> None:
    assert _plain_surfaces(word) is None
    assert text._surfaces(word) == spacy_surfaces(word)


def test_the_special_cases_kept_whole_are_those_of_the_installed_spacy() -> None:
    """`_KEPT_WHOLE` is written out in text.py so that spaCy need not be loaded to read it: a spaCy whose special
    cases differ fails here, and the set is written out again from this derivation (with the release in
    `_KEPT_WHOLE_SPACY`: under any other release the rule is not used)."""
    derived = set()
    for key in _tokenizer().rules:
        if key != key.lower() or "ё" in key:  # texts are lower-cased with ё as е before they are looked up
            continue
        rule = _plain_rule(key)
        if rule is not None and rule[0] != spacy_surfaces(key):
            derived.add(key)
    assert derived == set(_KEPT_WHOLE), sorted(derived ^ set(_KEPT_WHOLE))
    assert _plain_rule_applies()  # the installed spaCy is the release the set was derived from


def test_a_fresh_process_tokenises_recognised_words_without_importing_spacy() -> None:
    script = """
import json, sys
from pipeline.lexicon import text
usual = [text.tokenize(word) for word in sys.argv[1:]]
before = "spacy" in sys.modules
odd = text.tokenize("в 10:30")
print(json.dumps({"usual": usual, "spacy_before": before, "odd": odd, "spacy_after": "spacy" in sys.modules}))
"""
    words = ["Здравствуйте,", "Алло!", "кто-то", "-то", "7%.", "«Транслын».", "–", "180", "по-моему."]
    done = json.loads(subprocess.run([sys.executable, "-c", script, *words], capture_output=True, text=True,
                                     check=True, cwd=REPO).stdout)
    assert done["spacy_before"] is False
    assert [[surface for surface, _ in tokens] for tokens in done["usual"]] == [
        list(spacy_surfaces(word.lower().replace("ё", "е"))) for word in words]
    assert done["spacy_after"] is True and [surface for surface, _ in done["odd"]] == ["в", "10:30"]


def test_under_another_spacy_release_every_text_goes_to_spacy(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    monkeypatch.setattr(text, "_KEPT_WHOLE_SPACY", "0.0.0")
    monkeypatch.setattr(text, "_spacy_surfaces", lambda lowered: asked.append(lowered) or ("spacy",))
    text._plain_rule_applies.cache_clear()
    text._surfaces.cache_clear()
    try:
        assert text._surfaces("Здравствуйте,") == ("spacy",) and asked == ["здравствуйте,"]
    finally:
        text._plain_rule_applies.cache_clear()
        text._surfaces.cache_clear()
        text.tokenize.cache_clear()
